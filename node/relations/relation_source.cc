#include "node/relations/relation_source.h"

#include <map>

#include "node/common/strings.h"
#include "node/config/config_file.h"
#include "node/mail/address.h"

namespace zm::relations {
namespace {

struct RawLine {
  int number;
  std::string text;  // comment stripped, trailing space removed
};

// Numbered lines with comments removed; empty lines dropped.
absl::StatusOr<std::vector<RawLine>> Lines(std::string_view text,
                                           std::string_view file) {
  std::vector<RawLine> out;
  int number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++number;
    if (line.size() > kMaxSourceLine) {
      return config::Error(
          file, number, StrCat("line longer than ", kMaxSourceLine, " bytes"));
    }
    std::string stripped = config::StripComment(line);
    if (Trim(stripped).empty()) continue;
    out.push_back({number, std::move(stripped)});
  }
  return out;
}

bool StartsWithSpace(std::string_view s) {
  return !s.empty() && (s.front() == ' ' || s.front() == '\t');
}

}  // namespace

std::vector<std::string> SplitTargetList(std::string_view list) {
  std::vector<std::string> out;
  std::string cur;
  bool in_quote = false;
  for (size_t i = 0; i < list.size(); ++i) {
    char c = list[i];
    if (in_quote && c == '\\' && i + 1 < list.size()) {
      cur += c;
      cur += list[++i];
      continue;
    }
    if (c == '"') in_quote = !in_quote;
    if (c == ',' && !in_quote) {
      out.emplace_back(Trim(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  std::string_view last = Trim(cur);
  if (!last.empty() || out.empty()) out.emplace_back(last);
  return out;
}

absl::StatusOr<std::string> NormalizeAliasTarget(std::string_view target) {
  std::string_view t = Trim(target);
  if (t.empty()) return absl::InvalidArgumentError("empty target");
  std::string unquoted;
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"' &&
      (t[1] == '|' || t[1] == '/')) {
    unquoted = mail::UnquoteLocalPart(t);
    t = unquoted;
  }
  if (t.front() == '|') {
    if (Trim(t.substr(1)).empty()) {
      return absl::InvalidArgumentError("empty command after '|'");
    }
    return std::string(t);
  }
  if (t.front() == '/') {
    for (char c : t) {
      if (static_cast<unsigned char>(c) < 0x20) {
        return absl::InvalidArgumentError("control character in file name");
      }
    }
    return std::string(t);
  }
  std::string_view rest = t;
  if (ConsumePrefix(&rest, ":include:")) {
    rest = Trim(rest);
    if (rest.empty() || rest.front() != '/') {
      return absl::InvalidArgumentError(
          ":include: needs an absolute file name");
    }
    return StrCat(":include:", rest);
  }
  rest = t;
  bool no_alias = ConsumePrefix(&rest, "\\");
  auto a = mail::ParseAddress(rest);
  if (!a.ok()) {
    return absl::InvalidArgumentError(
        StrCat("bad address '", t, "': ", Message(a.status())));
  }
  if (a->null) return absl::InvalidArgumentError("empty target <>");
  return StrCat(no_alias ? "\\" : "", a->ToString());
}

absl::StatusOr<std::vector<SourceEntry>> ParsePlainSource(std::string_view text,
                                                          std::string_view file,
                                                          bool lowercase_keys) {
  auto lines = Lines(text, file);
  if (!lines.ok()) return lines.status();
  std::vector<SourceEntry> out;
  std::map<std::string, int> first_line;
  for (const RawLine& l : *lines) {
    std::string_view s = Trim(l.text);
    size_t sp = s.find_first_of(" \t");
    std::string_view key = s.substr(0, sp);
    std::string_view value =
        sp == std::string_view::npos ? std::string_view() : Trim(s.substr(sp));
    SourceEntry e{lowercase_keys ? ToLower(key) : std::string(key),
                  std::string(value), l.number};
    auto [it, fresh] = first_line.emplace(e.key, l.number);
    if (!fresh) {
      return config::Error(file, l.number,
                           StrCat("duplicate key '", e.key, "' (first at line ",
                                  it->second, ")"));
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<SourceEntry>> ParseAliasesSource(
    std::string_view text, std::string_view file, bool lowercase_keys) {
  auto lines = Lines(text, file);
  if (!lines.ok()) return lines.status();
  std::vector<SourceEntry> out;
  std::vector<std::string> targets;
  std::map<std::string, int> first_line;
  bool open = false;

  auto finish = [&]() -> absl::Status {
    if (!open) return absl::OkStatus();
    open = false;
    if (targets.empty()) {
      return config::Error(
          file, out.back().line,
          StrCat("alias '", out.back().key, "' has no targets"));
    }
    out.back().value = JoinTargets(targets);
    targets.clear();
    return absl::OkStatus();
  };
  auto add_targets = [&](std::string_view list, int number) -> absl::Status {
    std::vector<std::string> pieces = SplitTargetList(list);
    if (pieces.size() == 1 && pieces[0].empty()) return absl::OkStatus();
    for (const std::string& p : pieces) {
      auto t = NormalizeAliasTarget(p);
      if (!t.ok()) {
        return config::Error(
            file, number,
            StrCat("alias '", out.back().key, "': ", Message(t.status())));
      }
      targets.push_back(*std::move(t));
    }
    return absl::OkStatus();
  };

  for (const RawLine& l : *lines) {
    if (StartsWithSpace(l.text)) {
      if (!open) {
        return config::Error(file, l.number,
                             "continuation line without an alias before it");
      }
      if (auto s = add_targets(l.text, l.number); !s.ok()) return s;
      continue;
    }
    if (auto s = finish(); !s.ok()) return s;
    size_t colon = l.text.find(':');
    if (colon == std::string::npos) {
      return config::Error(file, l.number, "expected 'name: target, ...'");
    }
    std::string_view key = Trim(std::string_view(l.text).substr(0, colon));
    if (key.empty()) return config::Error(file, l.number, "empty alias name");
    if (key.find_first_of(" \t\",") != std::string_view::npos) {
      return config::Error(file, l.number,
                           StrCat("bad alias name '", key, "'"));
    }
    std::string k = lowercase_keys ? ToLower(key) : std::string(key);
    auto [it, fresh] = first_line.emplace(k, l.number);
    if (!fresh) {
      return config::Error(
          file, l.number,
          StrCat("duplicate alias '", k, "' (first at line ", it->second, ")"));
    }
    out.push_back({k, "", l.number});
    open = true;
    if (auto s =
            add_targets(std::string_view(l.text).substr(colon + 1), l.number);
        !s.ok()) {
      return s;
    }
  }
  if (auto s = finish(); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseIncludeFile(
    std::string_view text, std::string_view file) {
  auto lines = Lines(text, file);
  if (!lines.ok()) return lines.status();
  std::vector<std::string> out;
  for (const RawLine& l : *lines) {
    std::vector<std::string> pieces = SplitTargetList(l.text);
    if (pieces.size() == 1 && pieces[0].empty()) continue;
    for (const std::string& p : pieces) {
      auto t = NormalizeAliasTarget(p);
      if (!t.ok()) return config::Error(file, l.number, Message(t.status()));
      out.push_back(*std::move(t));
    }
  }
  return out;
}

std::string JoinTargets(const std::vector<std::string>& targets) {
  std::string out;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (i) out += '\n';
    out += targets[i];
  }
  return out;
}

std::vector<std::string> SplitStoredTargets(std::string_view value) {
  std::vector<std::string> out;
  for (std::string_view t : Split(value, '\n', /*skip_empty=*/true)) {
    out.emplace_back(t);
  }
  return out;
}

}  // namespace zm::relations
