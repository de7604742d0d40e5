// zm::spool::GroupCommitter: durable hand-over of many concurrent
// submissions with shared disk flushes (group commit).
//
// Each Submission::Commit() pays two flushes: an fsync of its file, then
// one of router/ after the rename. Under load the smtpserver instead hands
// finished submissions to one GroupCommitter, whose first thread takes
// everything queued so far as a batch: it writes each file's data to the
// device and waits until it is there (sync_file_range(2): no cache or
// journal flush), then renames each into router/. Its second thread then
// makes every batch renamed meanwhile durable with ONE flush (on ext4 with
// a journal an fsync of router/, elsewhere syncfs(2); see BatchFlush) and
// only then reports each of their messages done. The stages
// overlap: the next batch is written out and renamed while the previous
// one's flush runs. A message is never reported committed before a flush
// that started after its rename has returned, so invariant 1 holds
// message by message.
//
// Why the data goes out before the rename: a crash before the flush may
// still leave some renames durable (the file system commits its journal by
// itself too). On ext4 and XFS a rename is committed no earlier than the
// extent records of data that was on the device before it, so such a file
// in router/ is complete; it was never acknowledged, and the router routes
// it (the client, told nothing, may send it again: a duplicate). On a file
// system without a journal (ext2, ext4 without one), which after a power
// cut promises nothing of any file until fsck, such an unacknowledged file
// may be torn; the router's envelope and size checks send a truncated or
// zeroed one to postman/.
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
#include <string_view>
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

// The one flush that makes a written-out, renamed batch durable.
enum class BatchFlush {
  // fsync(2) of router/: one journal commit, which on ext4 with a journal
  // also carries every earlier change, the files' extents and sizes among
  // them; their data is on the device already (stage 1), and the commit's
  // cache flush makes it durable (ext4 flushes the file system's device
  // itself when the journal is on another).
  kFolder,
  // syncfs(2): everything else (ext2, ext4 without a journal, XFS, btrfs,
  // overlayfs, tmpfs, unknown). It also writes back every dirty page and
  // metadata block of the file system, which ext4's journal does not
  // need. XFS is here because its directory fsync only forces the log: with
  // the log on a device of its own, the data device's cache would stay
  // unflushed.
  kSyncFs,
};
// Which of the two the file system holding `folder` needs. Whatever
// cannot be established (no /proc, no /sys) gives kSyncFs.
BatchFlush BatchFlushFor(const std::string& folder);
std::string_view BatchFlushName(BatchFlush flush);

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

  BatchFlush flush() const { return flush_; }
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
  // Stage 1: write out and rename a batch; failures are reported here,
  // the renamed ones go to renamed_.
  void CommitBatch(std::deque<Request>& batch);
  // Stage 2: one flush (flush_) for everything renamed, then `done`s.
  void RunFlush();

  const Spool& spool_;
  const size_t max_batch_;
  const BatchFlush flush_;
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
  std::thread flush_thread_;
  std::thread thread_;
};

}  // namespace zm::spool

#endif  // ZM_SPOOL_GROUP_COMMIT_H_
