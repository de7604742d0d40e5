// zm::relations::NewDb: compiles the node's relations (etc/dbases.conf)
// into RocksDB databases under db/.
//
// Used by `zmailer newdb` (all relations) and `zmailer newaliases` /
// `sendmail -bi` (only "aliases"):
//
//   std::string report;
//   absl::Status s = zm::relations::NewDb(node, "", &report);
//   if (!s.ok()) { std::cerr << zm::Message(s) << "\n"; return 1; }
//   std::cout << report;
//
// Each relation is built aside in db/<relation>.<generation>/ and then made
// current by renaming a fresh symlink over db/<relation>, so a reader
// (the router) never sees half a database. The previous generation is
// kept (a reader may still have it open); older ones are deleted.
// Thread-compatible: run one NewDb per node at a time.
#ifndef ZM_RELATIONS_NEWDB_H_
#define ZM_RELATIONS_NEWDB_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "node/common/node_dir.h"

namespace zm::relations {

// Compiles the relations of etc/dbases.conf into db/ (all of them, or only
// `only` if non-empty, e.g. "aliases" for newaliases). `report` (may be
// null) gets one line per relation ("aliases: 12 keys from /x/etc/aliases").
// Errors: InvalidArgument "file:line: what" for bad config or source lines,
// NotFound naming the file for a missing source, NotFound naming `only` if
// dbases.conf does not list it. On error no database is swapped for the
// failing relation (earlier ones may have been).
[[nodiscard]] absl::Status NewDb(const NodeDir& node, std::string_view only,
                                 std::string* report);

}  // namespace zm::relations

#endif  // ZM_RELATIONS_NEWDB_H_
