// mailq: the node's queue as the scheduler sees it (docs/scheduler.md).
//
//   mailq              per-message listing grouped by channel/host
//   mailq -Q / -QQ     thread overview / two-line summary
//   mailq -s / -ss     program and spool health (-ss: only that; works
//                      with the scheduler down)
//   mailq --json       one JSON object per message per line
//   (the listing and --json also show spool/freezer/ and spool/postman/,
//   read from the spool directly: queue_name "hold" and "corrupt")
//   options: -c channel -h host, -U user/pass, -C DIR, -p [host:]port
//   (the scheduler's gRPC admin service, docs/admin-protocol.md: on
//   run/scheduler.sock, or on TCP with -p; --cafile FILE: TLS to -p, the
//   scheduler's certificate verified against FILE)
//
// Exit codes: 0, 64 usage, 69 scheduler unreachable, 77 login refused.
#ifndef ZM_MAILQ_MAILQ_H_
#define ZM_MAILQ_MAILQ_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace zm::mailq {

int Main(const std::vector<std::string>& args, std::ostream& out,
         std::ostream& err);

// Renders SHOW MESSAGES lines (JSON) in ZMailer's per-message format;
// `channel`/`host` ("" = any) filter. Exposed for tests.
std::string RenderListing(const std::vector<std::string>& json_lines,
                          const std::string& channel, const std::string& host,
                          long long now);

// A file in spool/freezer/ or spool/postman/: "<id>.<cause>".
struct HeldFile {
  std::string folder;  // "freezer", "postman"
  std::string name;
  std::string queue_id, cause;
  uint64_t size = 0;
  long long mtime = 0;
};
std::vector<HeldFile> ListHeld(const std::string& spool_dir);
// "Frozen (spool/freezer/):" and "Postman (spool/postman/):" sections;
// "" when both are empty.
std::string RenderHeld(const std::vector<HeldFile>& files, long long now);
// One --json object per file (queue_name "hold" / "corrupt").
std::string HeldJson(const HeldFile& f, const std::string& node_tag);

}  // namespace zm::mailq

#endif  // ZM_MAILQ_MAILQ_H_
