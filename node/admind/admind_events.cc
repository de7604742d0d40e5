#include "node/admind/admind_events.h"

#include "node/common/strings.h"

namespace zm::admind {

void EventHub::Start() {
  absl::MutexLock lock(&mu_);
  if (started_) return;
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void EventHub::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (!started_ || stop_) return;
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool EventHub::Acquire() {
  absl::MutexLock lock(&mu_);
  if (stop_ || clients_ >= max_clients_) return false;
  ++clients_;
  poke_ = true;  // a new listener wants fresh data
  return true;
}

void EventHub::Release() {
  absl::MutexLock lock(&mu_);
  --clients_;
}

int EventHub::clients() {
  absl::MutexLock lock(&mu_);
  return clients_;
}

void EventHub::Poke() {
  absl::MutexLock lock(&mu_);
  poke_ = true;
}

std::map<std::string, std::string> EventHub::Compute() {
  std::map<std::string, std::string> t;
  t["members"] = api_->Members().dump();
  t["rates"] = api_->RatesTop({}).dump();
  t["queues"] = api_->Queues().dump();
  t["history"] = api_->HistoryJson(60).dump();
  t["policy"] = api_->Get("policy", {}).body;
  std::string id = api_->LastEtrnId();
  t["etrn"] = id.empty() ? "{}" : api_->Etrn(id).dump();
  return t;
}

void EventHub::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || (poke_ && clients_ > 0);
      };
      mu_.AwaitWithTimeout(absl::Condition(&wake),
                           absl::Milliseconds(interval_ms_));
      if (stop_) return;
      poke_ = false;
      if (clients_ == 0) continue;
    }
    auto topics =
        std::make_shared<const std::map<std::string, std::string>>(Compute());
    absl::MutexLock lock(&mu_);
    topics_ = std::move(topics);
    ++version_;
  }
}

EventSnapshot EventHub::Wait(uint64_t seen, int timeout_ms) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || version_ > seen;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(timeout_ms));
  return EventSnapshot{version_, stop_, topics_};
}

std::string EventHub::Format(const std::string& name, const std::string& data) {
  // JSON from nlohmann::dump() has no raw newlines, so one data: line.
  return StrCat("event: ", name, "\ndata: ", data, "\n\n");
}

}  // namespace zm::admind
