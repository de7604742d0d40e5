// zm::spool::GroupCommitter: durable hand-over of many concurrent
// submissions with shared disk flushes (group commit).
//
// Each Submission::Commit() pays an fsync of its file and one of router/.
// Under load the smtpserver instead hands finished submissions to one
// GroupCommitter, whose first thread takes everything queued so far as a
// batch: it writes each file out, makes all of them durable with one
// syncfs(2) (one fsync when the batch holds a single message) and renames
// each into router/. Its second thread then fsyncs router/ once for every
// batch renamed meanwhile and only then reports each of their messages
// done. The two stages overlap: the next batch's data flush runs while the
// previous one's folder flush does, so a message no longer waits for a
// whole batch ahead of it to pass both flushes. A message is never
// reported committed before both flushes that cover it have returned (the
// folder's one started after its rename), so invariant 1 holds message by
// message.
//
//   zm::spool::GroupCommitter committer(spool);
//   committer.Submit(std::move(sub), [](absl::Status s) { /* reply 250 */ },
//                    std::move(last_bytes));
//
// `done` runs on one of the committer's threads; post from it to your own
// executor. Thread-safe. The destructor commits what is queued, then joins.
//
// SyncFilesData() flushes a batch file by file instead (the router's
// control files):
//
//   if (auto s = zm::spool::SyncFilesData(fds); !s.ok()) return s;
#ifndef ZM_SPOOL_GROUP_COMMIT_H_
#define ZM_SPOOL_GROUP_COMMIT_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "node/spool/spool.h"

namespace zm::spool {

// Makes the data of every file in `fds` durable: starts the write-out of
// all of them (sync_file_range), then fdatasync(2)s them from up to
// `threads` threads at once, so that the disk serves them together.
// Unlike syncfs(2) it writes back only these files, not every dirty page
// of the file system (other programs' spool files, builds, logs), and it
// does not wait for another process's syncfs of the same file system.
// Returns the first error; OK means every file's data and size are on
// disk (its name is the caller's: fsync the folder it is renamed into).
absl::Status SyncFilesData(std::span<const int> fds, int threads = 4);

class GroupCommitter {
 public:
  using Done = std::function<void(absl::Status)>;

  // `max_batch` bounds how many messages share one flush.
  explicit GroupCommitter(const Spool& spool, size_t max_batch = 256);
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues a finished submission. `tail`, if any, are the message's last
  // bytes, appended by the committer before it writes the file out (so
  // that the submitter need not do file I/O itself). `done` gets OK once
  // the message is durably in router/, or the error; on error the
  // submission's temporary file is removed.
  void Submit(std::shared_ptr<Submission> sub, Done done,
              std::string tail = {});

  // Totals since start, for logs and benchmarks.
  uint64_t batches() const;
  uint64_t messages() const;

 private:
  struct Request {
    std::shared_ptr<Submission> sub;
    Done done;
    std::string tail;
  };
  void Run();
  // Stage 1: write, flush and rename a batch; failures are reported here,
  // the renamed ones go to renamed_.
  void CommitBatch(std::deque<Request>& batch);
  // Stage 2: one fsync of router/ for everything renamed, then `done`s.
  void RunDirSync();

  const Spool& spool_;
  const size_t max_batch_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request> queue_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  uint64_t batches_ = 0;       // guarded by mu_
  uint64_t messages_ = 0;      // guarded by mu_
  std::mutex renamed_mu_;
  std::condition_variable renamed_cv_;
  std::deque<Request> renamed_;  // guarded by renamed_mu_
  bool renames_over_ = false;    // guarded by renamed_mu_
  std::thread dir_thread_;
  std::thread thread_;
};

}  // namespace zm::spool

#endif  // ZM_SPOOL_GROUP_COMMIT_H_
