#include "absl/status/status.h"
#include "node/common/strings.h"
#include "node/sendmail/address_list.h"
#include "node/sendmail/header_block.h"

namespace zm::submit {
namespace {

// A field name is printable US-ASCII except ':' (RFC 5322 ftext); white
// space before the colon is the obsolete form and still accepted.
size_t FieldNameLength(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && line[i] > 32 && line[i] < 127 && line[i] != ':') {
    ++i;
  }
  if (i == 0) return 0;
  size_t j = i;
  while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
  return (j < line.size() && line[j] == ':') ? i : 0;
}

bool IsContinuation(std::string_view line) {
  return !line.empty() && (line[0] == ' ' || line[0] == '\t');
}

}  // namespace

bool HeaderBlock::Has(std::string_view name) const {
  for (const auto& f : fields) {
    if (EqualsIgnoreCase(f.name, name)) return true;
  }
  return false;
}

absl::StatusOr<HeaderBlock> ParseHeaderBlock(std::string_view text, bool at_eof,
                                             const HeaderLimits& limits) {
  HeaderBlock hb;
  size_t pos = 0;
  auto too_large = [&] {
    return absl::InvalidArgumentError(StrCat(
        "header section larger than ", limits.max_header_bytes, " bytes"));
  };
  while (pos < text.size()) {
    if (pos > limits.max_header_bytes) return too_large();
    size_t nl = text.find('\n', pos);
    bool complete = nl != std::string_view::npos;
    if (!complete && !at_eof) return too_large();
    size_t next = complete ? nl + 1 : text.size();
    std::string_view line = text.substr(pos, (complete ? nl : next) - pos);
    if (line.empty() || line == "\r") {  // the separating empty line
      hb.blank_line = true;
      pos = next;
      break;
    }
    if (IsContinuation(line) && !hb.fields.empty()) {
      HeaderField& f = hb.fields.back();
      if (f.raw.size() + (next - pos) > limits.max_field_bytes) {
        return absl::InvalidArgumentError(
            StrCat(f.name, ": header field larger than ",
                   limits.max_field_bytes, " bytes"));
      }
      f.raw.append(text.substr(pos, next - pos));
      f.value.append(line);
      pos = next;
      continue;
    }
    size_t name_len = FieldNameLength(line);
    if (name_len == 0) break;  // not a header field: the body starts here
    if (hb.fields.size() >= limits.max_fields) {
      return absl::InvalidArgumentError(
          StrCat("more than ", limits.max_fields, " header fields"));
    }
    if (next - pos > limits.max_field_bytes) {
      return absl::InvalidArgumentError(
          StrCat(line.substr(0, name_len), ": header field larger than ",
                 limits.max_field_bytes, " bytes"));
    }
    HeaderField f;
    f.name = std::string(line.substr(0, name_len));
    f.value = std::string(line.substr(line.find(':') + 1));
    f.raw = std::string(text.substr(pos, next - pos));
    if (!complete) f.raw += '\n';
    hb.fields.push_back(std::move(f));
    pos = next;
  }
  if (pos > limits.max_header_bytes) return too_large();
  hb.end = pos;
  return hb;
}

bool IsBlindField(std::string_view name) {
  return EqualsIgnoreCase(name, "Bcc") || EqualsIgnoreCase(name, "Resent-Bcc");
}

absl::StatusOr<std::vector<std::string>> HeaderRecipients(
    const HeaderBlock& block) {
  static constexpr std::string_view kPlain[] = {"To", "Cc", "Bcc"};
  static constexpr std::string_view kResent[] = {"Resent-To", "Resent-Cc",
                                                 "Resent-Bcc"};
  bool resent = false;
  for (std::string_view n : kResent) resent = resent || block.Has(n);
  const auto& names = resent ? kResent : kPlain;
  std::vector<std::string> out;
  for (const auto& f : block.fields) {
    bool wanted = false;
    for (std::string_view n : names)
      wanted = wanted || EqualsIgnoreCase(f.name, n);
    if (!wanted) continue;
    auto list = ParseAddressList(f.value);
    if (!list.ok()) {
      return absl::InvalidArgumentError(
          StrCat(f.name, ": header: ", Message(list.status())));
    }
    for (auto& m : *list) out.push_back(std::move(m.address));
  }
  return out;
}

}  // namespace zm::submit
