// The figure for docs/cluster.md: what the fleet adds to a policy decision
// (the overlay lookups for the client and the sender, the rate key and
// the sum over local + peer slots), all in memory. Meaningful in a Release
// build; prints percentiles, asserts nothing.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "cluster/client/policy_overlay.h"
#include "node/ratetrack/rate_tracker.h"

int main() {
  namespace v1 = zmnode::cluster::v1;
  zm::cluster::PolicyOverlay overlay;
  v1::PolicyUpdate u;
  for (int i = 0; i < 1000; ++i) {
    auto* e = u.add_entries();
    e->set_subject("10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".1");
    e->set_action(v1::POLICY_ACTION_DEFER);
  }
  for (int i = 0; i < 100; ++i) {
    auto* e = u.add_entries();
    e->set_subject("172.16." + std::to_string(i) + ".0/24");
    e->set_action(v1::POLICY_ACTION_REJECT);
  }
  for (int i = 0; i < 1000; ++i) {
    auto* e = u.add_entries();
    e->set_subject("d" + std::to_string(i) + ".example");
    e->set_action(v1::POLICY_ACTION_REJECT);
  }
  overlay.Apply(u);
  auto rt = zm::ratetrack::RateTracker::InMemory("a", {});
  int64_t now = std::time(nullptr);
  std::vector<zm::ratetrack::SlotCount> peers;
  for (int i = 0; i < 100000; ++i) {
    for (const char* node : {"b", "c"}) {
      peers.push_back({"ip4:198.51." + std::to_string(i / 250 % 250) + "." + std::to_string(i % 250), node,
                       now / 450 * 450, {.messages = 1, .recipients = 1}});
    }
  }
  rt->MergePeer(peers);
  constexpr int kRuns = 200000;
  std::vector<double> us;
  us.reserve(kRuns);
  uint64_t sink = 0;
  for (int i = 0; i < kRuns; ++i) {
    std::string ip = "198.51." + std::to_string(i / 250 % 250) + "." + std::to_string(i % 250);
    auto t0 = std::chrono::steady_clock::now();
    auto a = overlay.ForIp(ip, now * 1000);
    auto b = overlay.ForAddress("someone@sub.example.org", now * 1000);
    auto key = zm::ratetrack::KeyForIp(ip);
    auto c = rt->Get(*key, now);
    auto t1 = std::chrono::steady_clock::now();
    sink += c.messages + (a ? 1 : 0) + (b ? 1 : 0);
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("fleet part of a decision (overlay IP + address lookups, key, rate sum of 3 nodes; 2,100 overlay entries, 100k peer keys): p50 %.2f us, p99 %.2f us, max %.1f us (%d runs, %lu)\n",
              us[kRuns / 2], us[kRuns * 99 / 100], us.back(), kRuns, static_cast<unsigned long>(sink));
}
