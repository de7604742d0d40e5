// admind's HTTP(S) listener (cpp-httplib): routes, Basic auth, bounds.
//
//   AdminServer server(conf, &api, &hub, log);
//   if (auto s = server.Init(); !s.ok()) ...;   // TLS files unreadable
//   std::thread t([&] { server.Run(); });       // binds (retrying), serves
//   ...
//   server.Stop(); t.join();
//
// Routes: GET /healthz, /readyz, /metrics, /api/v1/events (SSE),
// GET|POST|DELETE /api/v1/..., GET / and the dashboard's files. POST and
// DELETE always need a scheduler.auth user; GET needs one when
// conf.ReadNeedsAuth() (except /healthz and /readyz, for probes).
// Bounds: request body (max-body), header lines (max-headers), SSE clients
// (max-events-clients), worker threads (SSE clients + 8), read/write
// timeouts 10 s.
#ifndef ZM_ADMIND_ADMIND_SERVER_H_
#define ZM_ADMIND_ADMIND_SERVER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "node/admind/admind_api.h"
#include "node/admind/admind_auth.h"
#include "node/admind/admind_config.h"
#include "node/admind/admind_events.h"
#include "node/common/log.h"

namespace httplib {
class Server;
}

namespace zm::admind {

class AdminServer {
 public:
  AdminServer(NodeDir node, AdminConfig conf, Api* api, EventHub* hub,
              Logger* log);
  ~AdminServer();

  // Makes the server (loads the TLS certificate and key when configured).
  absl::Status Init();
  // Binds (retrying every 5 s while the address is taken) and serves until
  // Stop().
  void Run();
  void Stop();
  // True once the listener is bound.
  bool listening() const { return listening_.load(); }
  // True once Run() returned.
  bool finished() const { return finished_.load(); }

 private:
  void Routes();

  const NodeDir node_;
  const AdminConfig conf_;
  Api* const api_;
  EventHub* const hub_;
  Logger* const log_;
  Authenticator auth_;
  std::unique_ptr<httplib::Server> server_;
  std::atomic<bool> listening_{false};
  std::atomic<bool> finished_{false};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace zm::admind

#endif  // ZM_ADMIND_ADMIND_SERVER_H_
