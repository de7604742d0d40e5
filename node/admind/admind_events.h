// Server-sent events for GET /api/v1/events: one producer thread computes
// the six topics (members, rates, queues, history, policy, etrn: each the
// JSON of the GET of that name) every 2 s while somebody listens, or at
// once after Poke(); each client waits for a new snapshot and sends the
// topics that changed since it last sent them (all of them on connect).
//
//   EventHub hub(&api, conf.max_events_clients);
//   hub.Start();
//   if (!hub.Acquire()) ...503...;          // bounded number of clients
//   auto snap = hub.Wait(seen_version, 2000);
//   ...
//   hub.Release();
//   hub.Stop();                              // wakes every client, joins
#ifndef ZM_ADMIND_ADMIND_EVENTS_H_
#define ZM_ADMIND_ADMIND_EVENTS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "node/admind/admind_api.h"

namespace zm::admind {

struct EventSnapshot {
  uint64_t version = 0;  // 0: none yet
  bool stopped = false;
  std::shared_ptr<const std::map<std::string, std::string>> topics;
};

class EventHub {
 public:
  EventHub(Api* api, int max_clients, int interval_ms = 2000)
      : api_(api), max_clients_(max_clients), interval_ms_(interval_ms) {}
  ~EventHub() { Stop(); }

  void Start();
  void Stop();

  // Takes a client slot; false when max_clients listen already.
  bool Acquire();
  void Release();
  int clients();

  // Something changed (policy, etrn): recompute now.
  void Poke();

  // The newest snapshot once its version is above `seen`, or after
  // `timeout_ms` (then maybe the same version), or at Stop().
  EventSnapshot Wait(uint64_t seen, int timeout_ms);

  // SSE text for one topic: "event: NAME\ndata: JSON\n\n".
  static std::string Format(const std::string& name, const std::string& data);

 private:
  void Loop();
  std::map<std::string, std::string> Compute();

  Api* const api_;
  const int max_clients_;
  const int interval_ms_;
  std::thread thread_;
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool poke_ ABSL_GUARDED_BY(mu_) = false;
  int clients_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const std::map<std::string, std::string>> topics_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace zm::admind

#endif  // ZM_ADMIND_ADMIND_EVENTS_H_
