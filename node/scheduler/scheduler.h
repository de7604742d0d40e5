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

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/admin/admin_render.h"
#include "node/admin/scheduler_auth.h"
#include "node/common/fs.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"
#include "node/common/strings.h"
#include "node/daemon/daemon.h"
#include "node/mail/control.h"
#include "node/scheduler/scheduler_conf.h"
#include "node/scheduler/scheduler_dsn.h"
#include "node/scheduler/scheduler_metrics.h"
#include "node/scheduler/scheduler_remover.h"
#include "node/spool/spool.h"

namespace zm::scheduler {

int Run(Daemon& daemon);

// Real time, milliseconds since the epoch.
int64_t NowMs();

using ThreadKey = std::pair<std::string, std::string>;  // channel, host

enum class RcptState { kWaiting, kInFlight, kDone };

struct Thread;

struct Rcpt {
  int index = 0;
  // Its thread while it is not final (threads outlive their messages:
  // one is removed only when no message of it is left).
  const Thread* thread = nullptr;
  RcptState state = RcptState::kWaiting;
  bool failed = false;  // final result (kDone): failed or delivered
  int attempts = 0;
  int64_t next_ms = 0;  // earliest next attempt
  std::string last_dsn, last_diag, relay;
  int64_t result_time = 0;
  bool warned = false;  // a delay DSN went out for it
  bool killed = false;  // failed by KILL MSG / KILL THREAD: no DSN
};

struct Message {
  std::string id;
  mail::ControlFile cf;
  int64_t arrival_ms = 0;
  int64_t seen_ms = 0;
  uint64_t size = 0;
  std::vector<Rcpt> rcpts;  // parallel to cf.recipients
  bool retry_file = false;  // spool/retry/<id> may exist (read or written)
};

// Retry state of one message's waiting recipients, kept in spool/retry/<id>
// so that a restart does not retry everything at once (docs/scheduler.md).
struct RetryRecord {
  int index = 0;
  int attempts = 0;
  int64_t next_ms = 0;
  bool warned = false;
  std::string dsn, diag;
};
std::string SerializeRetry(const std::vector<RetryRecord>& records);
std::vector<RetryRecord> ParseRetry(std::string_view text);

struct Thread {
  std::string channel, host;
  ThreadParams params;
  std::string command;           // expanded; "" if none
  std::string command_error;     // why there is no command
  // The queue ids of the messages with a recipient here that is not final
  // (waiting or in flight), in arrival order (queue ids sort so): what
  // dispatching, ETRN and the views walk. A message leaves when its last
  // recipient here is final (MaybeFinish), so the walk costs the waiting
  // messages plus the few in flight, never those done here that wait on
  // other threads. An empty thread is removed by the loop's tick.
  std::set<std::string> msgs;
  bool kicked = false;  // ETRN/RUNQ asked for a run (queueonly)
  int attempts = 0;
  std::string last_diag;
  // No waiting recipient is due before this (a cache for Pump; lowered by
  // Wake() whenever a recipient becomes due earlier).
  int64_t next_due_ms = 0;
  // The destination was unreachable (an agent said `unreachable`): the
  // thread's other recipients, tried or not, wait until this time.
  // ETRN and RUNQ lift it.
  int64_t hold_until_ms = 0;
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
  // The thread it served last. All queued jobs of an agent belong to one
  // thread (jobs.front().thread): its open connection serves them all.
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
  bool events = false;  // WATCH EVENTS: delivery events are streamed
  int64_t last_ms = 0;
};

struct Counters {
  uint64_t msgs_in = 0, msgs_out = 0, rcpts_in = 0, rcpts_out = 0;
  uint64_t delivered = 0, failed = 0, deferred = 0, expired = 0;
  uint64_t dsns = 0, agents_started = 0, quarantined = 0;
  uint64_t delay_dsns = 0;
};

// The PEM certificate and key of PARAMgrpccert/PARAMgrpckey, read and
// checked (both parse, the key is the certificate's): errors are
// `scheduler.conf:LINE: ...` naming the PARAM line. Empty when the conf
// has no TLS. (scheduler_admin_grpc.cc)
struct GrpcTls {
  std::string cert_pem, key_pem;
  bool operator==(const GrpcTls&) const = default;
};
absl::StatusOr<GrpcTls> LoadGrpcTls(const SchedulerConf& conf);

class Scheduler {
 public:
  Scheduler(Daemon& d, SchedulerConf conf, std::string hostname,
            std::string node_tag);
  ~Scheduler();

  absl::Status Start();  // sockets, inotify, first scan
  int Loop();            // until SIGTERM; returns the exit code

  // Queue (scheduler_queue.cc).
  void ScanTransport();
  // `arrived`: reported by inotify (a new control file from the router),
  // so there is no retry file to read (those only exist for messages
  // that were in the queue when a scheduler stopped: a scan finds them).
  void LoadMessage(const std::string& qid, bool arrived = false);
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
  int KillThread(std::string_view channel, std::string_view host);
  // The scheduler's clock: real time, plus an offset that tests may advance
  // (CLOCK ADVANCE, only with ZM_SCHEDULER_TEST_CLOCK=1 in the environment).
  int64_t Now() const { return NowMs() + clock_offset_ms_; }
  // Recipient(s) of thread t may be due at `at_ms`.
  static void Wake(Thread& t, int64_t at_ms) {
    t.next_due_ms = std::min(t.next_due_ms, at_ms);
  }
  void LoadRetryState(Message& m);
  void SaveRetryState();
  void MaybeWarnDelay(Message& m);
  bool SubmitDsn(Message& m, std::vector<DsnRecipient> report, bool delay,
                 const std::string& to, const std::string& sender);
  // Sends `line` to every admin connection that asked for WATCH EVENTS.
  void Event(std::string_view line);
  // The envelope sender of reports about failed bounces.
  std::string DoubleBounceSender() const {
    return StrCat("double-bounce@", hostname_);
  }
  void FailByAdmin(Message& m, Rcpt& rc);

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
  // The admin views and actions behind both the MAILQv2 text protocol and
  // gRPC (rendered to text by node/admin/admin_render.h).
  admin::pb::QueueSummary QueueSummaryView() const;
  admin::pb::QueueThreads QueueThreadsView() const;
  admin::pb::ThreadMessages ThreadView(std::string_view ch,
                                       std::string_view host) const;
  // Messages with a recipient not yet final on channel/host ("" = any).
  std::vector<admin::pb::MessageEntry> MessagesView(
      std::string_view channel, std::string_view host) const;
  admin::pb::Counters CountersView() const;
  admin::pb::ActionReply EtrnAction(std::string_view domain);
  absl::StatusOr<admin::pb::ActionReply> RunQueueAction(std::string_view qid);
  admin::pb::ActionReply KillThreadAction(std::string_view ch,
                                          std::string_view host);
  absl::StatusOr<admin::pb::ActionReply> KillMessageAction(
      std::string_view qid);
  // gRPC (scheduler_admin_grpc.cc): run/scheduler.sock and PARAMgrpcaddr.
  // Starts it on run/scheduler.sock and `tcp` ("" = none), TLS there if
  // `tls` has a certificate (LoadGrpcTls).
  absl::Status OpenAdminGrpc(const std::string& tcp, GrpcTls tls);
  // After a reload: if PARAMgrpcaddr or the TLS files changed, starts the
  // new TCP listener, then retires the old one (its calls get a grace
  // period); unchanged, or the new one cannot be served: nothing changes.
  void ReopenAdminGrpc(GrpcTls tls);
  int AdminGrpcFd() const;        // readable: calls wait for the loop
  void RunAdminGrpc();            // runs them (on the loop)
  void PublishAdminGrpc(std::string_view event_line);
  absl::Status LoadAuth();

  std::string ToAddress(const Message& m,
                        const mail::ControlRecipient& r) const;

 private:
  void LogResult(const Message& m, int index, std::string_view status_word,
                 std::string_view dsn, std::string_view relay, double c,
                 double d, std::string_view diag, int64_t dispatch_ms);
  bool Ready(const Thread& t, const Rcpt& r, int64_t now) const;
  bool ThreadHasReady(Thread& t, int64_t now);
  int ServeThread(Thread& t, int64_t now);
  Agent* StartAgent(Thread& t);
  bool Dispatch(Agent& a, Thread& t, int64_t now);
  void FinishMessage(Message& m);
  // Queue gauges into run/metrics/scheduler.stats (scheduler_admin.cc).
  void PublishMetrics();

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
  int64_t clock_offset_ms_ = 0;
  int64_t next_check_ms_ = 0;  // CheckExpiry has nothing to do before
  bool test_clock_ = false;
  ThreadKey rr_last_;  // the thread Pump served last
  // A thread with due recipients and no agent could not get one (a limit):
  // agents are not fed ahead (overfeed) until it has one, so that they
  // run dry and the next idle one goes to that thread.
  bool agent_shortage_ = false;
  bool shortage_before_ = false;       // agent_shortage_ of the previous Pump
  std::set<std::string> retry_dirty_;  // messages whose retry file is stale
  // Finished messages' files are unlinked on the remover's thread; until it
  // reports one, its id is here and a scan does not load it again (an id
  // whose queue/ file could not be removed stays, as before: not until a
  // restart).
  Remover remover_{log_};
  std::set<std::string> removing_;
  // The remover's reports: `removed` log lines and events.
  void Removed();
  SchedulerMetrics metrics_{node_};    // exported counters (docs/metrics.md)
  // The gRPC admin server (scheduler_admin_grpc.cc); declared last so that
  // it stops, and its calls end, before the rest goes away.
  std::shared_ptr<class AdminGrpc> admin_grpc_;
};

// Seconds as Postfix logs delays: "0", "0.43", "1.1", "125".
std::string FormatDelay(double seconds);

// Next attempt after `attempts` failed tries (1-based) at `now_ms`.
int64_t NextAttemptMs(const ThreadParams& p, int attempts, int64_t now_ms,
                      uint64_t* rng);

}  // namespace zm::scheduler

#endif  // ZM_SCHEDULER_SCHEDULER_H_
