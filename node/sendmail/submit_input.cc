#include "absl/status/status.h"
#include "node/common/strings.h"
#include "node/sendmail/input.h"

namespace zm::submit {

void InputNormalizer::Emit(char c, std::string* out) {
  out->push_back(c);
  emitted_ = true;
  last_ = c;
  at_line_start_ = c == '\n';
}

void InputNormalizer::Feed(std::string_view in, std::string* out) {
  for (char c : in) {
    if (done_) return;
    if (pending_dot_ == 1) {
      if (c == '\n') {
        done_ = true;
        return;
      }
      if (c == '\r') {
        pending_dot_ = 2;
        continue;
      }
      pending_dot_ = 0;
      Emit('.', out);
    } else if (pending_dot_ == 2) {
      if (c == '\n') {
        done_ = true;
        return;
      }
      pending_dot_ = 0;
      Emit('.', out);
      // The held CR is not followed by LF: keep it and look at c afresh.
      pending_cr_ = true;
    }
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {
        Emit('\n', out);
        continue;
      }
      Emit('\r', out);
    }
    if (c == '\r') {
      pending_cr_ = true;
    } else if (c == '.' && at_line_start_ && dot_terminates_) {
      pending_dot_ = 1;
      at_line_start_ = false;
    } else {
      Emit(c, out);
    }
  }
}

void InputNormalizer::Finish(std::string* out) {
  if (done_) return;
  if (pending_dot_ >= 1) Emit('.', out);
  if (pending_dot_ == 2 || pending_cr_) Emit('\r', out);
  pending_dot_ = 0;
  pending_cr_ = false;
  if (emitted_ && last_ != '\n') Emit('\n', out);
}

size_t LeadingFromLineLength(std::string_view text) {
  if (!text.starts_with("From ")) return 0;
  size_t nl = text.find('\n');
  return nl == std::string_view::npos ? text.size() : nl + 1;
}

absl::StatusOr<UucpFrom> ParseUucpFromLines(std::string_view text) {
  if (!text.starts_with("From ")) {
    return absl::NotFoundError("no UUCP \"From \" line");
  }
  UucpFrom out;
  std::string path;
  std::string user;
  size_t pos = 0;
  bool first = true;
  // Bounded by the text, which the caller read with a size limit.
  while (pos < text.size()) {
    std::string_view rest = text.substr(pos);
    std::string_view prefix = first ? "From " : ">From ";
    if (!rest.starts_with(prefix)) break;
    size_t nl = rest.find('\n');
    std::string_view line =
        rest.substr(0, nl == std::string_view::npos ? rest.size() : nl);
    pos += nl == std::string_view::npos ? rest.size() : nl + 1;
    first = false;
    line.remove_prefix(prefix.size());
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto words = SplitWhitespace(line);
    if (words.empty()) {
      return absl::InvalidArgumentError("UUCP From line without a sender");
    }
    user = std::string(words[0]);
    if (user.size() >= 2 && user.front() == '<' && user.back() == '>') {
      user = user.substr(1, user.size() - 2);
    }
    // "... remote from host": the last three words.
    size_t n = words.size();
    if (n >= 4 && words[n - 3] == "remote" && words[n - 2] == "from") {
      StrAppend(&path, words[n - 1], "!");
    }
  }
  out.sender = path + user;
  out.length = pos;
  return out;
}

}  // namespace zm::submit
