#include "node/mail/address.h"

#include "node/common/strings.h"

namespace zm::mail {
namespace {

bool IsDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

absl::Status Bad(std::string_view why) {
  return absl::InvalidArgumentError(std::string(why));
}

absl::Status CheckDomain(std::string_view d) {
  if (d.empty()) return Bad("empty domain");
  if (d.size() > kMaxDomain) return Bad("domain too long");
  if (d.front() == '[') {
    if (d.back() != ']' || d.size() < 3) return Bad("bad domain literal");
    for (char c : d.substr(1, d.size() - 2)) {
      if (c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '\\') {
        return Bad("bad domain literal");
      }
    }
    return absl::OkStatus();
  }
  if (d.front() == '.' || d.find("..") != std::string_view::npos) {
    return Bad("empty label in domain");
  }
  for (char c : d) {
    // Bytes >= 0x80 are allowed for SMTPUTF8 (U-labels).
    if (!IsDomainChar(c) && static_cast<unsigned char>(c) < 0x80) {
      return Bad("bad character in domain");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string Address::ToString() const {
  if (null) return "";
  if (domain.empty()) return local;
  return StrCat(local, "@", domain);
}

std::string UnquoteLocalPart(std::string_view local) {
  if (local.size() < 2 || local.front() != '"' || local.back() != '"') {
    return std::string(local);
  }
  std::string out;
  for (size_t i = 1; i + 1 < local.size(); ++i) {
    if (local[i] == '\\' && i + 2 < local.size()) ++i;
    out += local[i];
  }
  return out;
}

absl::StatusOr<Address> ParseAddress(std::string_view text) {
  std::string_view s = Trim(text);
  if (!s.empty() && s.front() == '<') {
    if (s.back() != '>') return Bad("missing '>'");
    s = Trim(s.substr(1, s.size() - 2));
  } else if (!s.empty() && s.back() == '>') {
    return Bad("missing '<'");
  }
  // Bounded inside the brackets: "<x>" and "x" are the same address.
  if (s.size() > kMaxAddress) return Bad("address too long");
  Address a;
  if (s.empty()) {
    a.null = true;
    return a;
  }
  // Source route: "@a,@b:" before the mailbox.
  if (s.front() == '@') {
    size_t colon = s.find(':');
    if (colon == std::string_view::npos) return Bad("bad source route");
    for (std::string_view hop : Split(s.substr(0, colon), ',')) {
      hop = Trim(hop);
      if (hop.size() < 2 || hop.front() != '@') return Bad("bad source route");
      if (auto st = CheckDomain(hop.substr(1)); !st.ok()) {
        return Bad("bad source route");
      }
      a.source_route.push_back(ToLower(hop.substr(1)));
    }
    s = s.substr(colon + 1);
    if (s.empty()) return Bad("empty address after source route");
  }
  // Scan once: quotes, escapes, control characters, the last '@' outside
  // quotes.
  bool in_quote = false;
  size_t at = std::string_view::npos;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    unsigned char uc = static_cast<unsigned char>(c);
    if (uc < 0x20 || uc == 0x7f) return Bad("control character in address");
    if (in_quote) {
      if (c == '\\') {
        if (i + 1 >= s.size()) return Bad("unbalanced quote");
        ++i;
      } else if (c == '"') {
        in_quote = false;
      }
      continue;
    }
    if (c == '"') {
      in_quote = true;
    } else if (c == '@') {
      at = i;
    } else if (c == ' ' || c == '\t' || c == '<' || c == '>' || c == ',') {
      return Bad(StrCat("'", std::string(1, c), "' outside quotes"));
    }
  }
  if (in_quote) return Bad("unbalanced quote");
  std::string_view local = s;
  std::string_view domain;
  if (at != std::string_view::npos) {
    local = s.substr(0, at);
    domain = s.substr(at + 1);
    if (!domain.empty() && domain.back() == '.' && domain.size() > 1) {
      domain.remove_suffix(1);
      // Only one trailing dot is the root: "p.." has an empty label.
      if (domain.back() == '.') return Bad("empty label in domain");
    }
    if (auto st = CheckDomain(domain); !st.ok()) return st;
  }
  if (local.empty()) return Bad("empty local part");
  // An unquoted local part starting with '@' would read back as a source
  // route ("<@r:@x@y>"): not an address.
  if (local.front() == '@') return Bad("'@' at the start of the local part");
  if (local.size() > kMaxLocalPart) return Bad("local part too long");
  // A quote may only open a local part that is one whole quoted string.
  if (local.find('"') != std::string_view::npos &&
      (local.front() != '"' || local.back() != '"' || local.size() < 2)) {
    return Bad("quote inside an unquoted local part");
  }
  a.local = std::string(local);
  a.domain = ToLower(domain);
  return a;
}

}  // namespace zm::mail
