// zm::zmailer::RestartPolicy: when the supervisor restarts a program that
// died, and when it stops trying. Pure logic (no clock, no processes), so
// the policy is tested apart from the supervisor.
//
//   RestartPolicy policy;
//   auto d = policy.OnExit(/*exit_code=*/1, /*became_ready=*/false,
//                          /*uptime_ms=*/200);
//   if (d.give_up) ...; else restart after d.delay_ms
//
// Delays double from 1 s to 60 s while a program keeps dying soon after
// its start (a crash loop); a program that had become ready and then ran
// for 10 s or more starts again after 1 s (one crash of a working daemon
// should not keep the node's port closed for a minute). A program that
// fails like a configuration error (exit status 1 before it said it was
// ready, or within 10 s of its start) more than 5 times in a row is given
// up on. `consecutive()` counts the restarts since the last stable run.
// Not thread-safe; one instance per program.
#ifndef ZM_ZMAILER_RESTART_POLICY_H_
#define ZM_ZMAILER_RESTART_POLICY_H_

#include <cstdint>

namespace zm::zmailer {

struct RestartPolicyOptions {
  int64_t initial_delay_ms = 1000;
  int64_t max_delay_ms = 60000;
  int64_t stable_uptime_ms = 10000;  // after readiness: resets the delay
  int max_config_failures = 5;       // in a row; one more gives up
  int64_t config_failure_window_ms = 10000;
};

class RestartPolicy {
 public:
  struct Decision {
    bool give_up = false;
    int64_t delay_ms = 0;  // when !give_up
  };

  RestartPolicy() = default;
  explicit RestartPolicy(const RestartPolicyOptions& opts) : opts_(opts) {}

  // The program exited. `exit_code` is its exit status, or -1 if a signal
  // killed it; `became_ready` says whether it wrote its pid file.
  Decision OnExit(int exit_code, bool became_ready, int64_t uptime_ms);

  // Forgets the history (the operator fixed something and reloaded).
  void Reset();

  int config_failures() const { return config_failures_; }
  // Exits since the last stable run (1 for the first crash).
  int consecutive() const { return consecutive_; }

 private:
  RestartPolicyOptions opts_;
  int64_t next_delay_ms_ = -1;  // -1: initial_delay_ms
  int config_failures_ = 0;
  int consecutive_ = 0;
};

}  // namespace zm::zmailer

#endif  // ZM_ZMAILER_RESTART_POLICY_H_
