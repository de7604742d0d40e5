// zm::zmailer::RestartPolicy: when the supervisor restarts a program that
// died, and when it stops trying. Pure logic (no clock, no processes), so
// the policy is tested apart from the supervisor.
//
//   RestartPolicy policy;
//   auto d = policy.OnExit(/*exit_code=*/1, /*became_ready=*/false,
//                          /*uptime_ms=*/200);
//   if (d.give_up) ...; else restart after d.delay_ms
//
// Delays double from 1 s to 60 s; a run of 60 s or more resets them. A
// program that fails like a configuration error (exit status 1 before it
// said it was ready, or within 10 s of its start) more than 5 times in a
// row is given up on. Not thread-safe; one instance per program.
#ifndef ZM_ZMAILER_RESTART_POLICY_H_
#define ZM_ZMAILER_RESTART_POLICY_H_

#include <cstdint>

namespace zm::zmailer {

struct RestartPolicyOptions {
  int64_t initial_delay_ms = 1000;
  int64_t max_delay_ms = 60000;
  int64_t stable_uptime_ms = 60000;  // resets the delay
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

 private:
  RestartPolicyOptions opts_;
  int64_t next_delay_ms_ = -1;  // -1: initial_delay_ms
  int config_failures_ = 0;
};

}  // namespace zm::zmailer

#endif  // ZM_ZMAILER_RESTART_POLICY_H_
