#include "node/spool/group_commit.h"

#include <vector>

#include "node/common/fs.h"

namespace zm::spool {

GroupCommitter::GroupCommitter(const Spool& spool, size_t max_batch)
    : spool_(spool), max_batch_(max_batch == 0 ? 1 : max_batch) {
  thread_ = std::thread([this] { Run(); });
}

GroupCommitter::~GroupCommitter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void GroupCommitter::Submit(std::shared_ptr<Submission> sub, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({std::move(sub), std::move(done)});
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
  bool single = batch.size() == 1;
  // 1. Write every file out; one message alone is simply fsync'd.
  for (size_t i = 0; i < batch.size(); ++i) {
    status[i] = batch[i].sub->Prepare(/*sync=*/single);
  }
  // 2. One flush makes all files of the batch durable.
  if (!single) {
    absl::Status synced = fs::SyncFs(spool_.Path(kPublic));
    for (auto& s : status) {
      if (s.ok()) s = synced;
    }
  }
  // 3. Renames into router/, then one fsync of router/ for all of them.
  bool any_published = false;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!status[i].ok()) continue;
    status[i] = batch[i].sub->Publish();
    any_published |= status[i].ok();
  }
  if (any_published) {
    absl::Status dir = spool_.SyncRouterDir();
    for (auto& s : status) {
      if (s.ok()) s = dir;
    }
  }
  // A message whose rename happened but whose directory fsync failed is in
  // router/ and will be routed; it is reported failed, so the client sends
  // it again: a duplicate, never a loss.
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!status[i].ok()) batch[i].sub->Abort();
    batch[i].done(status[i]);
  }
}

}  // namespace zm::spool
