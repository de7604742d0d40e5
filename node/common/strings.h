// Small string helpers on std::string_view.
//
// Debian's Abseil is built with its own absl::string_view (not
// std::string_view), so absl::StrCat/StrSplit do not accept our
// std::string_view values; we use these helpers and fmt::format instead,
// and absl only for Status, StatusOr and synchronization.
#ifndef ZM_COMMON_STRINGS_H_
#define ZM_COMMON_STRINGS_H_

#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace zm {

// Splits on `sep`; with skip_empty, drops empty pieces.
std::vector<std::string_view> Split(std::string_view s, char sep,
                                    bool skip_empty = false);
// Splits on runs of spaces and tabs.
std::vector<std::string_view> SplitWhitespace(std::string_view s);

std::string_view Trim(std::string_view s);
std::string ToLower(std::string_view s);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix);
// Removes `prefix` from the front of *s if present.
bool ConsumePrefix(std::string_view* s, std::string_view prefix);
// A DNS name without its trailing dots: "example.org." -> "example.org".
inline std::string_view StripTrailingDots(std::string_view s) {
  while (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

// Whole-string decimal parse into any integer type; false on junk or overflow.
template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::optional<int64_t> ParseInt(std::string_view s);
std::optional<uint64_t> ParseUint(std::string_view s);

// Concatenates anything fmt can format (strings, string_views, numbers).
template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  (fmt::format_to(std::back_inserter(*out), "{}", args), ...);
}
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  StrAppend(&out, args...);
  return out;
}

// The message of a status as a std::string.
inline std::string Message(const absl::Status& s) {
  return std::string(s.message());
}

}  // namespace zm

#endif  // ZM_COMMON_STRINGS_H_
