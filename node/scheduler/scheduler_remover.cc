// The remover thread (scheduler_remover.h).
#include "node/scheduler/scheduler_remover.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "node/common/strings.h"

namespace zm::scheduler {

Remover::Remover(Logger& log) : log_(log) {}

Remover::~Remover() { Stop(); }

absl::Status Remover::Start() {
  event_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!event_.valid()) return fs::ErrnoStatus("eventfd", "remover", errno);
  {
    absl::MutexLock l(&mu_);
    if (!done_.empty()) Signal();  // removed by Add() before Start()
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Remover::Add(Item item) {
  absl::MutexLock l(&mu_);
  if (thread_.joinable() && !stopping_) {
    todo_.push_back(std::move(item));
    return;
  }
  // Not started, or stopped: done here and now (never left queued).
  done_.push_back(Remove(item));
  Signal();
}

void Remover::Signal() {
  uint64_t one = 1;
  if (event_.valid()) (void)!::write(event_.get(), &one, sizeof one);
}

std::vector<Remover::Done> Remover::TakeDone() {
  uint64_t n = 0;
  if (event_.valid()) (void)!::read(event_.get(), &n, sizeof n);
  std::vector<Done> out;
  {
    absl::MutexLock l(&mu_);
    out.swap(done_);
  }
  return out;
}

void Remover::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

Remover::Done Remover::Remove(const Item& item) {
  Done d{item.qid, true};
  // queue/<id> before transport/<id>: a crash in between leaves a control
  // file whose message is gone and whose recipients are all final, which
  // the next start deletes (never a message without its control file).
  if (!item.queue_path.empty() && ::unlink(item.queue_path.c_str()) != 0 &&
      errno != ENOENT) {
    log_.Error(item.qid, StrCat("cannot remove ", item.queue_path, ": ",
                                std::strerror(errno)));
    d.ok = false;
    return d;
  }
  if (::unlink(item.control_path.c_str()) != 0 && errno != ENOENT) {
    log_.Error(item.qid, StrCat("cannot remove ", item.control_path, ": ",
                                std::strerror(errno)));
  }
  if (!item.retry_path.empty()) ::unlink(item.retry_path.c_str());
  return d;
}

void Remover::Run() {
  for (;;) {
    std::deque<Item> batch;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(
          +[](Remover* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
            return r->stopping_ || !r->todo_.empty();
          },
          this));
      if (todo_.empty()) return;  // stopping, nothing left
      batch.swap(todo_);
    }
    std::vector<Done> finished;
    finished.reserve(batch.size());
    for (const Item& item : batch) finished.push_back(Remove(item));
    {
      absl::MutexLock l(&mu_);
      for (Done& d : finished) done_.push_back(std::move(d));
    }
    Signal();
  }
}

}  // namespace zm::scheduler
