// zm::scheduler::Remover: unlinks finished messages' files on a thread of
// its own, off the scheduler's poll loop.
//
// An unlink(2) updates the folder, the inode table and the bitmaps, and
// shares the folder's lock with the router's renames into transport/; the
// poll loop feeds every transport agent, so two or three of them per
// finished message there delay every agent's next job. The loop hands a
// message over and forgets it; the thread removes queue/<id> first, then
// transport/<id> (then retry/<id>), the order crash recovery relies on
// (docs/scheduler.md), and reports each message back through an eventfd
// the loop polls.
//
//   Remover r(log);
//   r.Add({qid, queue_path, control_path, retry_path_or_empty});
//   ... poll(r.fd(), POLLIN) ...
//   for (const Remover::Done& d : r.TakeDone()) { d.qid, d.ok }
//   r.Stop();   // removes what is queued, then joins (also ~Remover)
//
// Thread-safe: Add/TakeDone/Stop from one thread (the loop), the work on
// the remover's own.
#ifndef ZM_SCHEDULER_SCHEDULER_REMOVER_H_
#define ZM_SCHEDULER_SCHEDULER_REMOVER_H_

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "node/common/fs.h"
#include "node/common/log.h"

namespace zm::scheduler {

class Remover {
 public:
  struct Item {
    std::string qid;
    std::string queue_path;    // "" = nothing to remove there (kept)
    std::string control_path;  // transport/<id>
    std::string retry_path;    // "" = no retry file
  };
  struct Done {
    std::string qid;
    // false: queue/<id> could not be removed (logged); the control file
    // was left too, so the message must not be loaded again in this run.
    bool ok = true;
  };

  explicit Remover(Logger& log);
  ~Remover();
  Remover(const Remover&) = delete;
  Remover& operator=(const Remover&) = delete;

  // Starts the thread and the eventfd; an error if either cannot be made.
  absl::Status Start();
  // Queues `item` (FIFO); before Start() or after Stop() it is removed on
  // the caller's thread instead. Reported by TakeDone() either way.
  void Add(Item item);
  // Readable when TakeDone() has something.
  int fd() const { return event_.get(); }
  std::vector<Done> TakeDone();
  // Removes everything queued, then ends the thread (idempotent).
  void Stop();

 private:
  void Run();
  Done Remove(const Item& item);
  void Signal();  // makes fd() readable

  Logger& log_;
  fs::UniqueFd event_;
  std::thread thread_;
  absl::Mutex mu_;
  std::deque<Item> todo_ ABSL_GUARDED_BY(mu_);
  std::vector<Done> done_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace zm::scheduler

#endif  // ZM_SCHEDULER_SCHEDULER_REMOVER_H_
