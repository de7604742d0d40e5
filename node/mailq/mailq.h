// mailq: the node's queue as the scheduler sees it (docs/scheduler.md).
//
//   mailq              per-message listing grouped by channel/host
//   mailq -Q / -QQ     thread overview / two-line summary
//   mailq -s / -ss     program and spool health (-ss: only that; works
//                      with the scheduler down)
//   mailq --json       one JSON object per message per line
//   options: -c channel -h host, -U user/pass, -C DIR
//
// Exit codes: 0, 64 usage, 69 scheduler unreachable, 77 login refused.
#ifndef ZM_MAILQ_MAILQ_H_
#define ZM_MAILQ_MAILQ_H_

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

}  // namespace zm::mailq

#endif  // ZM_MAILQ_MAILQ_H_
