// The scheduler daemon: turns transport control files into channel/host
// threads, runs transport agents for them (docs/ta-protocol.md), retries,
// expires, writes DSNs, removes finished messages, and serves the MAILQv2
// admin interface (docs/admin-protocol.md). One thread, one poll loop.
//
//   auto d = zm::Daemon::Init("scheduler", argc, argv);
//   return zm::scheduler::Run(**d);   // returns the exit code
//
// Everything the loop owns lives in a Scheduler object (no globals), so a
// test could run several. Not thread-safe: all calls come from the loop.
#ifndef ZM_SCHEDULER_SCHEDULER_H_
#define ZM_SCHEDULER_SCHEDULER_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "node/admin/scheduler_auth.h"
#include "node/common/fs.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"
#include "node/daemon/daemon.h"
#include "node/mail/control.h"
#include "node/scheduler/scheduler_conf.h"
#include "node/spool/spool.h"

namespace zm::scheduler {

int Run(Daemon& daemon);

using ThreadKey = std::pair<std::string, std::string>;  // channel, host

enum class RcptState { kWaiting, kInFlight, kDone };

struct Rcpt {
  int index = 0;
  RcptState state = RcptState::kWaiting;
  bool failed = false;  // final result (kDone): failed or delivered
  int attempts = 0;
  int64_t next_ms = 0;  // earliest next attempt
  std::string last_dsn, last_diag, relay;
  int64_t result_time = 0;
};

struct Message {
  std::string id;
  mail::ControlFile cf;
  int64_t arrival_ms = 0;
  int64_t seen_ms = 0;
  uint64_t size = 0;
  std::vector<Rcpt> rcpts;  // parallel to cf.recipients
  bool killed = false;
};

struct Thread {
  std::string channel, host;
  ThreadParams params;
  std::string command;           // expanded; "" if none
  std::string command_error;     // why there is no command
  std::deque<std::string> msgs;  // queue ids with recipients here, by arrival
  bool kicked = false;           // ETRN/RUNQ asked for a run (queueonly)
  int attempts = 0;
  std::string last_diag;
};

struct Job {
  std::string qid;
  std::vector<int> indexes;
  std::set<int> pending;
  int64_t dispatch_ms = 0;
  ThreadKey thread;
};

struct Agent {
  pid_t pid = -1;
  fs::UniqueFd in, out;
  std::string inbuf, outbuf;
  std::deque<Job> jobs;
  bool ready = false;    // said #hungry at least once
  bool closing = false;  // stdin closed; waiting for exit
  bool eof = false;
  int ring = -1;
  std::string channel, command;
  ThreadKey last_thread;
  int64_t idle_since_ms = 0;
  int64_t idlemax_ms = 0;
  int capacity = 1;  // jobs it may hold (1 + overfeed)
};

struct AdminConn {
  fs::UniqueFd fd;
  std::string inbuf, outbuf;
  std::string challenge;
  admin::PeerAddress peer;
  bool authed = false;
  uint32_t tokens = 0;
  bool closing = false;
  int64_t last_ms = 0;
};

struct Counters {
  uint64_t msgs_in = 0, msgs_out = 0, rcpts_in = 0, rcpts_out = 0;
  uint64_t delivered = 0, failed = 0, deferred = 0, expired = 0;
  uint64_t dsns = 0, agents_started = 0, quarantined = 0;
};

class Scheduler {
 public:
  Scheduler(Daemon& d, SchedulerConf conf, std::string hostname,
            std::string node_tag);
  ~Scheduler();

  absl::Status Start();  // sockets, inotify, first scan
  int Loop();            // until SIGTERM; returns the exit code

  // Queue (scheduler_queue.cc).
  void ScanTransport();
  void LoadMessage(const std::string& qid);
  void ResultFor(Message& m, int index, std::string_view status,
                 std::string_view dsn, std::string_view relay, double c,
                 double d, std::string_view diag, int64_t dispatch_ms);
  void Defer(Message& m, int index, std::string_view dsn, std::string_view diag,
             int64_t retry_at_ms);
  void FailExpired(Message& m, int index);
  void MaybeFinish(const std::string& qid);
  void CheckExpiry();
  Thread& GetThread(const std::string& channel, const std::string& host);
  void ResolveThread(Thread& t);
  void Reload();
  int Etrn(std::string_view domain);
  int RunQueue(std::string_view qid);  // "" = everything
  absl::Status Kill(std::string_view qid);

  // Agents (scheduler_agents.cc).
  void Pump();
  void ReadAgent(Agent& a);
  void FlushAgent(Agent& a);
  void CloseAgent(Agent& a);
  void AgentGone(Agent& a, std::string_view why);
  void ReapChildren();
  void IdleAgents();

  // Admin (scheduler_admin.cc).
  absl::Status OpenAdmin();
  void AcceptAdmin(int listen_fd, bool is_unix);
  void ReadAdmin(AdminConn& c);
  void FlushAdmin(AdminConn& c);
  void AdminLine(AdminConn& c, std::string_view line);
  std::vector<std::string> ShowQueueThreads() const;
  std::vector<std::string> ShowQueueShort() const;
  std::vector<std::string> ShowThread(std::string_view ch,
                                      std::string_view host) const;
  std::vector<std::string> ShowMessages() const;
  std::vector<std::string> ShowCounters() const;
  absl::Status LoadAuth();

  std::string ToAddress(const Message& m,
                        const mail::ControlRecipient& r) const;

 private:
  void LogResult(const Message& m, int index, std::string_view status_word,
                 std::string_view dsn, std::string_view relay, double c,
                 double d, std::string_view diag, int64_t dispatch_ms);
  bool Ready(const Thread& t, const Rcpt& r, int64_t now) const;
  bool StartAgent(Thread& t);
  bool Dispatch(Agent& a, Thread& t, int64_t now);
  void FinishMessage(Message& m);

 public:
  Daemon& d_;
  Logger& log_;
  NodeDir node_;
  SchedulerConf conf_;
  std::string hostname_;
  spool::Spool spool_;
  admin::SchedulerAuth auth_;
  std::map<std::string, std::unique_ptr<Message>> msgs_;
  std::map<ThreadKey, Thread> threads_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::set<pid_t> zombies_;
  std::vector<std::unique_ptr<AdminConn>> admin_;
  fs::UniqueFd unix_listen_, tcp_listen_, inotify_;
  std::string unix_path_;
  Counters counters_;
  int64_t started_ms_ = 0;
  int64_t last_scan_ms_ = 0;
  bool stopping_ = false;
  int64_t stop_deadline_ms_ = 0;
  uint64_t rng_ = 0;
};

int64_t NowMs();

// "1d3h", "21m34s", "0s".
std::string FormatDuration(int64_t seconds);

// Seconds as Postfix logs delays: "0", "0.43", "1.1", "125".
std::string FormatDelay(double seconds);

// Next attempt after `attempts` failed tries (1-based) at `now_ms`.
int64_t NextAttemptMs(const ThreadParams& p, int attempts, int64_t now_ms,
                      uint64_t* rng);

}  // namespace zm::scheduler

#endif  // ZM_SCHEDULER_SCHEDULER_H_
