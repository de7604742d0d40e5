#include "node/relations/dbases_conf.h"

#include <set>

#include "node/common/strings.h"
#include "node/config/config_file.h"

namespace zm::relations {
namespace {

bool ValidName(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return n.front() != '-';
}

bool FileDbType(std::string_view t) {
  static constexpr std::string_view kTypes[] = {
      "rocksdb", "btree", "hash", "bhash", "ndbm", "gdbm", "dbm"};
  for (auto k : kTypes) {
    if (t == k) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<RelationSpec>> ParseDbasesConf(
    const std::string& path, const NodeDir& node) {
  auto lines = config::ReadLines(path);
  if (!lines.ok()) return lines.status();
  std::vector<RelationSpec> out;
  std::set<std::string> seen;
  for (const config::Line& l : *lines) {
    auto err = [&](std::string_view what) {
      return config::Error(path, l.number, what);
    };
    if (l.text.front() == ' ' || l.text.front() == '\t') {
      return err("a relation line must start at the beginning of the line");
    }
    std::vector<std::string_view> tok = SplitWhitespace(l.text);
    if (tok.size() < 5) {
      return err("expected: relation dbtype priv newdb-options file [flags]");
    }
    RelationSpec spec;
    spec.conf_file = path;
    spec.conf_line = l.number;
    spec.name = std::string(tok[0]);
    if (!ValidName(spec.name)) {
      return err(StrCat("bad relation name '", spec.name,
                        "' (letters, digits, '_' and '-' only)"));
    }
    if (!seen.insert(spec.name).second) {
      return err(StrCat("relation '", spec.name, "' listed twice"));
    }
    auto type = config::ExpandVariables(tok[1], node);
    if (!type.ok()) return err(Message(type.status()));
    spec.dbtype = *type;
    std::string base = spec.dbtype.substr(0, spec.dbtype.find(','));
    if (!FileDbType(base)) {
      return err(StrCat("unsupported dbtype '", spec.dbtype,
                        "' (rocksdb, btree, hash, bhash, ndbm, gdbm, dbm)"));
    }
    // tok[2]: ZMailer's privilege variable name; nothing to check.
    std::string_view opts = tok[3];
    if (opts != "-") {
      if (opts.size() < 2 || opts.front() != '-') {
        return err(StrCat("bad newdb options '", opts, "'"));
      }
      for (char c : opts.substr(1)) {
        if (c == 'l')
          spec.lowercase_keys = true;
        else if (c == 'a')
          spec.aliases_syntax = true;
        else
          return err(StrCat("unknown newdb option '-", std::string(1, c), "'"));
      }
    }
    if (tok[4] == "-") {
      return err(StrCat("relation '", spec.name, "' needs a source file"));
    }
    auto file = config::ExpandVariables(tok[4], node);
    if (!file.ok()) return err(Message(file.status()));
    if (file->empty()) {
      return err(StrCat("relation '", spec.name, "' needs a source file ('",
                        tok[4], "' is empty)"));
    }
    spec.source = file->front() == '/' ? *file : node.etc() + "/" + *file;
    for (size_t i = 5; i < tok.size(); ++i) {
      std::string_view f = tok[i];
      if (f == "-") continue;
      if (f.size() < 2 || f.front() != '-') {
        return err(StrCat("bad flag '", f, "'"));
      }
      for (char c : f.substr(1)) {
        if (c == 'l')
          spec.lowercase_lookups = true;
        else if (c == 'm')
          spec.reload_on_change = true;
        else
          return err(StrCat("unknown flag '-", std::string(1, c), "'"));
      }
    }
    out.push_back(std::move(spec));
  }
  return out;
}

}  // namespace zm::relations
