// The ETRN executor: each fleet ETRN request (ours or a peer's) runs once
// on this node, through the scheduler's admin interface, and its result
// goes into the fleet state, from where it flows back to the origin.
#include <algorithm>

#include "cluster/agent/agent_internal.h"
#include "node/admin/admin_grpc_client.h"
#include "node/common/node_dir.h"
#include "node/common/strings.h"

namespace zm::cluster::internal {

EtrnOutcome RunSchedulerEtrn(const std::string& node_home,
                             const std::string& domain) {
  NodeDir node = LocateNode(node_home);
  // On the executor's own thread (EtrnExecutor::Loop), not the agent's
  // gRPC or gossip threads.
  auto etrn = admin::LocalEtrn(node, domain);
  if (!etrn.ok()) {
    if (absl::IsUnavailable(etrn.status())) {
      return {458, StrCat("scheduler not reachable: ", Message(etrn.status()))};
    }
    // RFC 1985's 459: this node's scheduler.auth does not let its own
    // programs ETRN ("nobody" without the ETRN token).
    if (admin::IsRefusal(etrn.status())) {
      return {459, StrCat("Node ", domain, " not allowed: refused by the ",
                          "scheduler (", Message(etrn.status()), ")")};
    }
    return {458, Message(etrn.status())};
  }
  return {250, etrn->text().empty() ? "ETRN started" : etrn->text()};
}

EtrnExecutor::EtrnExecutor(const AgentOptions& options, FleetState& state,
                           Logger& log, Counters& counters)
    : options_(options), state_(state), log_(log), counters_(counters) {}

EtrnExecutor::~EtrnExecutor() { Stop(); }

void EtrnExecutor::Start() {
  // What arrived while we were down (or was never acted on) goes first.
  for (const auto& r : state_.EtrnUnclaimed()) Enqueue(r);
  thread_ = std::thread([this] { Loop(); });
}

void EtrnExecutor::Stop() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void EtrnExecutor::Enqueue(const pb::EtrnRequest& request) {
  absl::MutexLock l(&mu_);
  // Bounded: a flood of requests waits for the periodic rescan instead.
  if (queue_.size() < 10000) queue_.push_back(request);
}

void EtrnExecutor::Loop() {
  int64_t next_scan = SteadyMs() + 5000;
  for (;;) {
    pb::EtrnRequest request;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || !queue_.empty();
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready),
                           absl::Milliseconds(std::max<int64_t>(
                               1, next_scan - SteadyMs())));
      if (stop_) return;
      if (queue_.empty()) {
        next_scan = SteadyMs() + 5000;
      } else {
        request = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (request.id().empty()) {
      // A request whose first sighting was missed (queue full, an error).
      auto missed = state_.EtrnUnclaimed();
      absl::MutexLock l(&mu_);
      for (auto& r : missed) {
        if (queue_.size() < 10000) queue_.push_back(std::move(r));
      }
      continue;
    }
    Act(request);
  }
}

void EtrnExecutor::Act(const pb::EtrnRequest& request) {
  if (request.expires_unix_ms() != 0 && request.expires_unix_ms() < UnixMs()) {
    return;
  }
  auto claimed = state_.ClaimEtrn(request.id());
  if (!claimed.ok()) {
    log_.Error("", StrCat("ETRN ", request.id(), ": cannot claim: ",
                          Message(claimed.status())));
    return;
  }
  if (!*claimed) return;  // done before (or by an earlier start)
  EtrnOutcome out;
  if (options_.etrn) {
    out = options_.etrn(request.domain());
  } else {
    out = {458, "no ETRN runner on this node"};
  }
  ++counters_.etrn_acted;
  auto recorded = state_.RecordEtrnResult(request.id(), out.code, out.text);
  std::string line = StrCat("ETRN acted on: id=", request.id(),
                            " domain=", request.domain(),
                            " origin=", request.origin_node(),
                            " result=", out.code, " ", out.text);
  if (!recorded.ok()) {
    StrAppend(&line, " (result not recorded: ", Message(recorded.status()),
              ")");
  }
  log_.Info("", line);
}

}  // namespace zm::cluster::internal
