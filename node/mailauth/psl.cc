// The Public Suffix List (https://publicsuffix.org/list/): rules, wildcards
// and exceptions, and the organizational domain RFC 7489 section 3.2
// derives from them.
#include <string>
#include <unordered_set>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mailauth/mailauth.h"

namespace zm::mailauth {

PublicSuffixList PublicSuffixList::Parse(std::string_view text) {
  PublicSuffixList psl;
  for (std::string_view line : Split(text, '\n')) {
    // A rule is the first word of a line; "//" starts a comment.
    auto words = SplitWhitespace(line);
    if (words.empty() || words[0].starts_with("//")) continue;
    std::string rule = ToLower(StripTrailingDots(words[0]));
    if (rule.empty()) continue;
    if (rule.front() == '!') {
      psl.exceptions_.insert(rule.substr(1));
    } else if (rule.starts_with("*.")) {
      psl.wildcards_.insert(rule.substr(2));
    } else {
      psl.rules_.insert(std::move(rule));
    }
  }
  return psl;
}

absl::StatusOr<PublicSuffixList> PublicSuffixList::Load(
    const std::string& path) {
  auto text = fs::ReadFile(path, 16u << 20);
  if (!text.ok()) return text.status();
  return Parse(*text);
}

std::string PublicSuffixList::OrganizationalDomain(
    std::string_view domain) const {
  std::string d = ToLower(StripTrailingDots(domain));
  if (d.empty()) return d;
  // The labels of d from the right: suffix(i) is the name made of the
  // last i labels. The public suffix is the longest matching rule (an
  // exception beats both, and names the suffix one label shorter); the
  // implicit rule "*" makes the last label a suffix at least.
  std::vector<size_t> starts;  // where each suffix starts, 1 label first
  for (size_t i = d.size(); i > 0; --i) {
    if (d[i - 1] == '.') starts.push_back(i);
  }
  starts.push_back(0);
  auto suffix = [&](size_t labels) {
    return std::string_view(d).substr(starts[labels - 1]);
  };
  size_t n = starts.size();
  size_t public_labels = 1;
  for (size_t i = 1; i <= n; ++i) {
    std::string s(suffix(i));
    if (exceptions_.contains(s)) {
      public_labels = i - 1;
      break;
    }
    if (rules_.contains(s)) public_labels = i;
    // "*.ck" makes every name directly under ck a public suffix.
    if (i < n && wildcards_.contains(s)) public_labels = i + 1;
  }
  if (public_labels >= n) return d;  // a public suffix itself
  return std::string(suffix(public_labels + 1));
}

}  // namespace zm::mailauth
