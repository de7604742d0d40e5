#include <algorithm>

#include "node/zmailer/restart_policy.h"

namespace zm::zmailer {

RestartPolicy::Decision RestartPolicy::OnExit(int exit_code, bool became_ready,
                                              int64_t uptime_ms) {
  if (became_ready && uptime_ms >= opts_.stable_uptime_ms) {
    next_delay_ms_ = -1;
    consecutive_ = 0;
  }
  ++consecutive_;
  // Daemon::Fail exits with 1 for a bad configuration; a program that does
  // so right away will do it again until someone edits the file.
  bool config_failure =
      exit_code == 1 &&
      (!became_ready || uptime_ms < opts_.config_failure_window_ms);
  config_failures_ = config_failure ? config_failures_ + 1 : 0;
  Decision d;
  if (config_failures_ > opts_.max_config_failures) {
    d.give_up = true;
    return d;
  }
  d.delay_ms = next_delay_ms_ < 0 ? opts_.initial_delay_ms : next_delay_ms_;
  next_delay_ms_ = std::min(d.delay_ms * 2, opts_.max_delay_ms);
  return d;
}

void RestartPolicy::Reset() {
  next_delay_ms_ = -1;
  config_failures_ = 0;
  consecutive_ = 0;
}

}  // namespace zm::zmailer
