// zm::spool::GroupCommitter: durable hand-over of many concurrent
// submissions with shared disk flushes (group commit).
//
// Each Submission::Commit() pays an fsync of its file and one of router/.
// Under load the smtpserver instead hands finished submissions to one
// GroupCommitter, whose thread takes everything queued so far as a batch:
// it writes each file out, makes all of them durable with one syncfs(2)
// (one fsync when the batch holds a single message), renames each into
// router/, fsyncs router/ once, and only then reports every one of them
// done. A message is never reported committed before both flushes that
// cover it have returned, so invariant 1 holds message by message.
//
//   zm::spool::GroupCommitter committer(spool);
//   committer.Submit(std::move(sub), [](absl::Status s) { /* reply 250 */ });
//
// `done` runs on the committer's thread; post from it to your own executor.
// Thread-safe. The destructor commits what is queued, then joins.
#ifndef ZM_SPOOL_GROUP_COMMIT_H_
#define ZM_SPOOL_GROUP_COMMIT_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "node/spool/spool.h"

namespace zm::spool {

class GroupCommitter {
 public:
  using Done = std::function<void(absl::Status)>;

  // `max_batch` bounds how many messages share one flush.
  explicit GroupCommitter(const Spool& spool, size_t max_batch = 256);
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues a finished submission (all data appended). `done` gets OK once
  // the message is durably in router/, or the error; on error the
  // submission's temporary file is removed.
  void Submit(std::shared_ptr<Submission> sub, Done done);

  // Totals since start, for logs and benchmarks.
  uint64_t batches() const;
  uint64_t messages() const;

 private:
  struct Request {
    std::shared_ptr<Submission> sub;
    Done done;
  };
  void Run();
  void CommitBatch(std::deque<Request>& batch);

  const Spool& spool_;
  const size_t max_batch_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request> queue_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  uint64_t batches_ = 0;       // guarded by mu_
  uint64_t messages_ = 0;      // guarded by mu_
  std::thread thread_;
};

}  // namespace zm::spool

#endif  // ZM_SPOOL_GROUP_COMMIT_H_
