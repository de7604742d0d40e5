// etc/dbases.conf: which relations a node has and how each is compiled.
//
// ZMailer's layout, one relation per line:
//
//   #relation   dbtype  priv  newdb-options  source-file        flags
//   aliases     $DBTYPE priv  -la            $MAILVAR/aliases   -lm
//   routesdb    $DBTYPE -     -l             $MAILVAR/routes    -lm
//
// dbtype: rocksdb, or one of ZMailer's file types btree, hash, bhash, ndbm,
// gdbm, dbm (optionally ",subtype"), all compiled into RocksDB here.
// priv: ZMailer's privilege variable (accepted, unused).
// newdb-options: "-" or "-" + letters: l (lower-case keys), a (aliases
// syntax). flags: "-" or "-" + letters: l (lower-case lookups), m (reload
// when the compiled database changes); anything else is an error.
// `$VAR` values are expanded with zm::config::ExpandVariables; a relative
// source path is relative to etc/.
#ifndef ZM_RELATIONS_DBASES_CONF_H_
#define ZM_RELATIONS_DBASES_CONF_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::relations {

struct RelationSpec {
  std::string name;                // [A-Za-z0-9_-]+: db/<name> is its database
  std::string dbtype;              // as written, after expansion
  bool lowercase_keys = false;     // newdb option -l
  bool aliases_syntax = false;     // newdb option -a
  bool lowercase_lookups = false;  // flag -l
  bool reload_on_change = false;   // flag -m
  std::string source;              // absolute path of the source text file
  std::string conf_file;           // where this spec was read (for errors)
  int conf_line = 0;
};

// Parses dbases.conf. Errors: InvalidArgument "file:line: what"; NotFound
// naming the file if it does not exist. Duplicate relation names are
// errors.
absl::StatusOr<std::vector<RelationSpec>> ParseDbasesConf(
    const std::string& path, const NodeDir& node);

inline absl::StatusOr<std::vector<RelationSpec>> LoadDbasesConf(
    const NodeDir& node) {
  return ParseDbasesConf(node.etc_file("dbases.conf"), node);
}

}  // namespace zm::relations

#endif  // ZM_RELATIONS_DBASES_CONF_H_
