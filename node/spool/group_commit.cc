#include "node/spool/group_commit.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <vector>

#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::spool {
namespace {

// ext2, ext3 and ext4 share one magic number, and all are served by the
// ext4 driver; only a mount with a journal lists a data= mode among the
// options in /proc/fs/ext4/<device>/options.
bool Ext4HasJournal(const std::string& folder) {
  struct stat st {};
  if (::stat(folder.c_str(), &st) != 0) return false;
  std::error_code ec;
  auto device = std::filesystem::read_symlink(
      StrCat("/sys/dev/block/", major(st.st_dev), ":", minor(st.st_dev)), ec);
  if (ec) return false;
  auto options = fs::ReadFile(
      StrCat("/proc/fs/ext4/", device.filename().string(), "/options"));
  if (!options.ok()) return false;
  for (std::string_view mode : {"data=ordered", "data=journal",
                                "data=writeback"}) {
    if (options->find(mode) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

BatchFlush BatchFlushFor(const std::string& folder) {
  struct statfs sfs {};
  if (::statfs(folder.c_str(), &sfs) != 0) return BatchFlush::kSyncFs;
  if (sfs.f_type == EXT4_SUPER_MAGIC && Ext4HasJournal(folder)) {
    return BatchFlush::kFolder;
  }
  return BatchFlush::kSyncFs;
}

std::string_view BatchFlushName(BatchFlush flush) {
  return flush == BatchFlush::kFolder ? "fsync of router/" : "syncfs";
}

absl::Status SyncFilesData(std::span<const int> fds, int threads) {
  // Queue every file's pages for writing first: their blocks are then
  // allocated in the journal's running transaction together, and the
  // first fdatasync's commit carries the others' too.
  // A failure here is only a lost hint: fdatasync reports real errors.
  for (int fd : fds) ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  std::atomic<size_t> next{0};
  std::mutex mu;
  absl::Status first;  // guarded by mu
  auto drain = [&] {
    for (size_t i = next++; i < fds.size(); i = next++) {
      if (::fdatasync(fds[i]) != 0) {
        int err = errno;
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = fs::ErrnoStatus("fdatasync", "", err);
      }
    }
  };
  const size_t most = static_cast<size_t>(std::max(threads, 1));
  const size_t helpers = fds.empty() ? 0 : std::min(fds.size(), most) - 1;
  std::vector<std::thread> pool;
  pool.reserve(helpers);
  for (size_t i = 0; i < helpers; ++i) pool.emplace_back(drain);
  drain();
  for (auto& t : pool) t.join();
  return first;
}

GroupCommitter::GroupCommitter(const Spool& spool, size_t max_batch)
    : spool_(spool),
      max_batch_(max_batch == 0 ? 1 : max_batch),
      flush_(BatchFlushFor(spool.Path(kRouter))) {
  flush_thread_ = std::thread([this] { RunFlush(); });
  thread_ = std::thread([this] { Run(); });
}

GroupCommitter::~GroupCommitter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();  // every queued message renamed (or failed)
  {
    std::lock_guard<std::mutex> lock(renamed_mu_);
    renames_over_ = true;
  }
  renamed_cv_.notify_all();
  flush_thread_.join();
}

void GroupCommitter::Submit(std::shared_ptr<Submission> sub, Done done,
                            std::string tail) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({std::move(sub), std::move(done), std::move(tail)});
  }
  cv_.notify_one();
}

uint64_t GroupCommitter::batches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_;
}

uint64_t GroupCommitter::messages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_;
}

void GroupCommitter::Run() {
  for (;;) {
    std::deque<Request> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to commit
      // Whatever queued while the previous batch was flushing forms the
      // next one: the busier the server, the more each flush carries.
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      ++batches_;
      messages_ += batch.size();
    }
    CommitBatch(batch);
  }
}

void GroupCommitter::CommitBatch(std::deque<Request>& batch) {
  std::vector<absl::Status> status(batch.size());
  // 1. Every file's data goes to the device, all writes in flight at once;
  // no cache or journal flush yet.
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].tail.empty()) status[i] = batch[i].sub->Append(batch[i].tail);
    if (status[i].ok()) status[i] = batch[i].sub->Prepare(/*sync=*/false);
    if (status[i].ok()) batch[i].sub->StartWriteOut();
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (status[i].ok()) status[i] = batch[i].sub->AwaitWriteOut();
  }
  // 2. Renames into router/; the one flush is stage 2's.
  std::deque<Request> renamed;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (status[i].ok()) status[i] = batch[i].sub->Publish();
    if (status[i].ok()) {
      renamed.push_back(std::move(batch[i]));
    } else {
      batch[i].sub->Abort();
      batch[i].done(status[i]);
    }
  }
  if (renamed.empty()) return;
  {
    std::lock_guard<std::mutex> lock(renamed_mu_);
    for (auto& r : renamed) renamed_.push_back(std::move(r));
  }
  renamed_cv_.notify_one();
}

void GroupCommitter::RunFlush() {
  for (;;) {
    std::deque<Request> renamed;
    {
      std::unique_lock<std::mutex> lock(renamed_mu_);
      renamed_cv_.wait(lock,
                       [this] { return renames_over_ || !renamed_.empty(); });
      if (renamed_.empty()) return;  // stage 1 is over and nothing is left
      renamed.swap(renamed_);
    }
    // Every rename taken here happened before this flush starts, and the
    // flush makes all of it durable: data, inodes, router/'s entries. A
    // message whose rename happened but whose flush failed is in router/
    // and will be routed (a published submission cannot be aborted); it is
    // reported failed, so the client sends it again: a duplicate, never a
    // loss.
    absl::Status flushed = flush_ == BatchFlush::kFolder
                               ? spool_.SyncRouterDir()
                               : fs::SyncFs(spool_.Path(kRouter));
    for (auto& r : renamed) r.done(flushed);
  }
}

}  // namespace zm::spool
