#include "node/tlspolicy/refresher.h"

#include <algorithm>
#include <utility>

namespace zm::tlspolicy {

bool NeedsRefresh(const StsPolicy& cached, const std::string& id,
                  int64_t now) {
  if (id.empty()) return false;  // no record: the cached policy holds
  if (id != cached.id) return true;
  return (now - cached.fetched) * 100 >= cached.max_age * kStsRefreshPercent;
}

Refresher::Refresher(Fetch fetch, std::chrono::seconds retry_after,
                     size_t max_queued)
    : fetch_(std::move(fetch)),
      retry_after_(retry_after),
      max_queued_(max_queued),
      thread_([this] { Run(); }) {}

Refresher::~Refresher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

bool Refresher::Request(const std::string& domain) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ || running_ == domain || queue_.size() >= max_queued_ ||
        std::find(queue_.begin(), queue_.end(), domain) != queue_.end()) {
      return false;
    }
    auto it = failed_.find(domain);
    auto now = std::chrono::steady_clock::now();
    if (it != failed_.end() && now - it->second < retry_after_) return false;
    // The map stays small: entries older than retry_after mean nothing.
    if (failed_.size() > 4 * max_queued_) {
      std::erase_if(failed_, [&](const auto& e) {
        return now - e.second >= retry_after_;
      });
    }
    queue_.push_back(domain);
  }
  cv_.notify_all();
  return true;
}

void Refresher::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return stop_ || (queue_.empty() && running_.empty()); });
}

void Refresher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    running_ = std::move(queue_.front());
    queue_.pop_front();
    auto began = std::chrono::steady_clock::now();
    std::string domain = running_;
    lock.unlock();
    bool fetched = fetch_(domain);
    lock.lock();
    if (fetched) {
      failed_.erase(domain);
    } else {
      failed_[domain] = began;
    }
    running_.clear();
    cv_.notify_all();
  }
}

}  // namespace zm::tlspolicy
