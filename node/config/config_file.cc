#include "node/config/config_file.h"

#include <cstdlib>

#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::config {

absl::Status Error(std::string_view file, int line, std::string_view what) {
  return absl::InvalidArgumentError(StrCat(file, ":", line, ": ", what));
}

absl::StatusOr<std::vector<Line>> ReadAllLines(const std::string& path) {
  auto data = fs::ReadFile(path, 16u << 20);
  if (!data.ok()) return data.status();
  std::vector<Line> out;
  int n = 0;
  for (std::string_view l : Split(*data, '\n')) {
    ++n;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    out.push_back({n, std::string(l)});
  }
  if (!out.empty() && out.back().text.empty()) out.pop_back();
  return out;
}

std::string StripComment(std::string_view text) {
  char quote = 0;
  size_t end = text.size();
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote) {
      if (c == '\\' && i + 1 < text.size()) {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
    } else if (c == '"') {
      quote = c;
    } else if (c == '#') {
      end = i;
      break;
    }
  }
  std::string_view kept = text.substr(0, end);
  while (!kept.empty() && (kept.back() == ' ' || kept.back() == '\t')) {
    kept.remove_suffix(1);
  }
  return std::string(kept);
}

absl::StatusOr<std::vector<Line>> ReadLines(const std::string& path) {
  auto all = ReadAllLines(path);
  if (!all.ok()) return all.status();
  std::vector<Line> out;
  for (auto& l : *all) {
    std::string t = StripComment(l.text);
    if (Trim(t).empty()) continue;
    out.push_back({l.number, std::move(t)});
  }
  return out;
}

absl::StatusOr<std::string> ExpandVariables(std::string_view value,
                                            const NodeDir& node) {
  auto lookup = [&](std::string_view name, std::string* out) {
    if (name == "MAILHOME")
      *out = node.home;
    else if (name == "MAILVAR" || name == "MAILSHARE")
      *out = node.etc();
    else if (name == "POSTOFFICE")
      *out = node.spool();
    else if (name == "LOGDIR")
      *out = node.log();
    else if (name == "DBDIR")
      *out = node.db();
    else if (name == "MAILBOX")
      *out = node.mail();
    else if (name == "MAILBIN")
      *out = SelfBinDir();
    else if (name == "DBTYPE")
      *out = "rocksdb";
    else if (const char* env = std::getenv(std::string(name).c_str()))
      *out = env;
    else
      return false;
    return true;
  };
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '$') {
      out += value[i];
      continue;
    }
    std::string_view name;
    if (i + 1 < value.size() && value[i + 1] == '{') {
      size_t close = value.find('}', i + 2);
      if (close == std::string_view::npos) {
        return absl::InvalidArgumentError("unterminated ${ in '" +
                                          std::string(value) + "'");
      }
      name = value.substr(i + 2, close - i - 2);
      i = close;
    } else {
      size_t j = i + 1;
      while (
          j < value.size() &&
          (isalnum(static_cast<unsigned char>(value[j])) || value[j] == '_')) {
        ++j;
      }
      name = value.substr(i + 1, j - i - 1);
      i = j - 1;
    }
    std::string v;
    if (name.empty() || !lookup(name, &v)) {
      return absl::InvalidArgumentError(
          StrCat("unknown variable '$", name, "'"));
    }
    out += v;
  }
  return out;
}

}  // namespace zm::config
