// The scheduler's admin service over gRPC (zmnode.admin.v1.SchedulerAdmin,
// docs/admin-protocol.md) on run/scheduler.sock and PARAMgrpcaddr.
//
// gRPC's handler threads never touch the queue: each call becomes a task
// that the loop runs (woken through an eventfd); the task checks the proof
// and the user's token, then runs the same Scheduler view or action the
// MAILQv2 text protocol uses, and hands the answer back.
#include <grpcpp/grpcpp.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "node/common/strings.h"
#include "node/config/config_file.h"
#include "node/scheduler/scheduler.h"
#include "zmnode/admin/v1/admin.grpc.pb.h"

namespace zm::scheduler {
namespace {

constexpr int64_t kNonceLifeMs = 60'000;
constexpr size_t kMaxNonces = 4096;
constexpr size_t kMaxWatchers = 32;
constexpr size_t kMaxEventBacklog = 10'000;
constexpr auto kPollStep = std::chrono::milliseconds(200);
constexpr char kServicePrefix[] = "/zmnode.admin.v1.SchedulerAdmin/";
constexpr size_t kMaxPemBytes = 1u << 20;
// How long calls on a listener that a reload moved may go on (event
// streams then end with UNAVAILABLE; the new listener is already up).
constexpr int64_t kRetireGraceMs = 10'000;

// A method's equivalent MAILQv2 command: its token comes from
// admin::RequiredToken, the one table for both protocols.
struct MethodInfo {
  const char* name;
  const char* command;
};
constexpr MethodInfo kMethods[] = {
    {"ShowQueueShort", "SHOW QUEUE SHORT"},
    {"ShowQueueThreads", "SHOW QUEUE THREADS"},
    {"ShowThread", "SHOW THREAD"},
    {"ListMessages", "SHOW MESSAGES"},
    {"GetCounters", "SHOW COUNTERS"},
    {"Etrn", "ETRN"},
    {"RunQueue", "RUNQ"},
    {"KillThread", "KILL THREAD"},
    {"KillMessage", "KILL MSG"},
    {"WatchEvents", "WATCH EVENTS"},
};

uint32_t TokenFor(std::string_view method) {
  for (const auto& m : kMethods) {
    if (method == m.name) return admin::RequiredToken(m.command);
  }
  return admin::kTokenAll;
}

// gRPC's peer string: "ipv4:127.0.0.1:4711", "ipv6:[::1]:4711" (or
// "%5B::1%5D"), "unix:...".
admin::PeerAddress PeerOf(const std::string& peer) {
  std::string_view p = peer;
  if (p.rfind("unix:", 0) == 0) return admin::PeerAddress::Local();
  std::string addr;
  if (p.rfind("ipv4:", 0) == 0) {
    p.remove_prefix(5);
    addr = std::string(p.substr(0, p.rfind(':')));
  } else if (p.rfind("ipv6:", 0) == 0) {
    p.remove_prefix(5);
    std::string s(p);
    for (auto [enc, dec] : {std::pair{"%5B", "["}, std::pair{"%5D", "]"}}) {
      for (size_t at; (at = s.find(enc)) != std::string::npos;)
        s.replace(at, 3, dec);
    }
    size_t open = s.find('['), close = s.find(']');
    if (open != std::string::npos && close != std::string::npos)
      addr = s.substr(open + 1, close - open - 1);
  }
  return admin::PeerAddress::Parse(addr).value_or(admin::PeerAddress{});
}

std::string Metadata(const grpc::ServerContext* ctx, const char* key) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return "";
  return std::string(it->second.data(),
                     std::min<size_t>(it->second.size(), 256));
}

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

// A call's answer, set by the loop, awaited by the handler thread.
struct Done {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  void Set(grpc::Status s) {
    std::lock_guard l(mu);
    status = std::move(s);
    done = true;
    cv.notify_all();
  }
};

// One WATCH EVENTS stream's backlog.
struct Watcher {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<admin::pb::DeliveryEvent> events;
  bool overflow = false;
};

}  // namespace

// What every listener shares (one per scheduler): the loop's task queue and
// its eventfd, the event watchers and the nonces. Lives as long as the
// longest of the listeners' services.
class AdminHub {
 public:
  explicit AdminHub(Scheduler& s) : s_(s) {}

  absl::Status Init() {
    wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_.valid()) return fs::ErrnoStatus("eventfd", "", errno);
    return absl::OkStatus();
  }

  int wake_fd() const { return wake_.get(); }
  bool stopping() const { return stopping_; }
  void set_stopping() { stopping_ = true; }

  void RunTasks() {
    uint64_t n = 0;
    (void)!::read(wake_.get(), &n, sizeof n);
    std::deque<std::function<void()>> tasks;
    {
      std::lock_guard l(mu_);
      tasks.swap(tasks_);
    }
    for (auto& t : tasks) t();
  }

  // On the loop: one scheduler event line ("QID: to=<..>, ... status=x
  // (...)", "QID: removed", ...) to every watcher.
  void Publish(std::string_view line) {
    std::lock_guard l(mu_);
    if (watchers_.empty()) return;
    admin::pb::DeliveryEvent ev;
    size_t colon = line.find(": ");
    std::string_view text = line;
    if (colon != std::string_view::npos) {
      ev.set_queue_id(std::string(line.substr(0, colon)));
      text = line.substr(colon + 2);
    }
    ev.set_text(std::string(text));
    ev.set_time_ms(NowMs());
    size_t to = text.find("to=<"), status = text.find("status=");
    if (text == "removed") {
      ev.set_kind(admin::pb::DeliveryEvent::REMOVED);
    } else if (to != std::string_view::npos &&
               status != std::string_view::npos) {
      ev.set_kind(admin::pb::DeliveryEvent::RESULT);
      size_t end = text.find('>', to);
      if (end != std::string_view::npos)
        ev.set_recipient(std::string(text.substr(to + 4, end - to - 4)));
      std::string_view st = text.substr(status + 7);
      ev.set_status(std::string(st.substr(0, st.find_first_of(" ,"))));
    } else {
      ev.set_kind(admin::pb::DeliveryEvent::NOTICE);
    }
    for (const auto& w : watchers_) {
      std::lock_guard wl(w->mu);
      if (w->events.size() >= kMaxEventBacklog) {
        w->overflow = true;  // a reader that does not keep up is dropped
      } else {
        w->events.push_back(ev);
      }
      w->cv.notify_one();
    }
  }

  // On the loop: registers `w` (at most kMaxWatchers at a time).
  grpc::Status AddWatcher(std::shared_ptr<Watcher> w) {
    std::lock_guard l(mu_);
    if (watchers_.size() >= kMaxWatchers) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "too many event watchers");
    }
    watchers_.push_back(std::move(w));
    return grpc::Status::OK;
  }

  void RemoveWatcher(const std::shared_ptr<Watcher>& w) {
    std::lock_guard l(mu_);
    watchers_.remove(w);
  }

  // On the loop: a fresh single-use nonce.
  std::string NewNonce() {
    int64_t now = NowMs();
    if (nonces_.size() >= kMaxNonces) {
      for (auto it = nonces_.begin(); it != nonces_.end();)
        it = it->second < now ? nonces_.erase(it) : std::next(it);
      if (nonces_.size() >= kMaxNonces) nonces_.erase(nonces_.begin());
    }
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return "";
    std::string hex;
    for (unsigned char c : b) hex += fmt::format("{:02x}", c);
    nonces_[hex] = now + kNonceLifeMs;
    return hex;
  }

  // Runs `op` on the loop (after Authorize, unless `method` is null) and
  // waits for it; `gone` tells that the call's listener went away. The
  // answer is built in storage the task owns, so a call that gives up
  // waiting leaves nothing dangling.
  template <typename Reply>
  grpc::Status OnLoop(grpc::ServerContext* ctx, const char* method, Reply* out,
                      std::function<grpc::Status(Reply*)> op,
                      const std::atomic<bool>& gone) {
    auto reply = std::make_shared<Reply>();
    auto done = std::make_shared<Done>();
    std::string user = Metadata(ctx, "zm-user"),
                nonce = Metadata(ctx, "zm-nonce"),
                proof = Metadata(ctx, "zm-proof"), peer = ctx->peer();
    {
      std::lock_guard l(mu_);
      if (stopping_ || gone || tasks_.size() >= 1024) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "scheduler busy or stopping");
      }
      tasks_.push_back([this, method, user, nonce, proof, peer, reply, done,
                        op = std::move(op)] {
        grpc::Status st = method == nullptr
                              ? grpc::Status::OK
                              : Authorize(method, user, nonce, proof, peer);
        if (st.ok()) st = op(reply.get());
        done->Set(std::move(st));
      });
    }
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    std::unique_lock l(done->mu);
    while (!done->done) {
      done->cv.wait_for(l, kPollStep);
      if (done->done) break;
      if (stopping_ || gone)
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "scheduler stopping");
      if (ctx->IsCancelled())
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    if (done->status.ok()) *out = std::move(*reply);
    return done->status;
  }

  Scheduler& s_;

 private:
  // On the loop: the call's proof and the user's token. A nonce is spent
  // by any attempt, good or bad.
  grpc::Status Authorize(const char* method, const std::string& user,
                         const std::string& nonce, const std::string& proof,
                         const std::string& peer) {
    auto refuse = [&](grpc::StatusCode code, std::string_view why) {
      s_.log_.Warning("", StrCat("admin gRPC ", method, " refused for user '",
                                 user, "' from ", peer, ": ", why));
      return grpc::Status(code, code == grpc::StatusCode::PERMISSION_DENIED
                                    ? "not permitted for this user"
                                    : "authentication refused");
    };
    auto it = nonces_.find(nonce);
    if (nonce.empty() || it == nonces_.end() || it->second < NowMs()) {
      if (it != nonces_.end()) nonces_.erase(it);
      return refuse(grpc::StatusCode::UNAUTHENTICATED,
                    "unknown, used or expired nonce");
    }
    nonces_.erase(it);
    const admin::AuthEntry* e = s_.auth_.Find(user, PeerOf(peer));
    if (e == nullptr) {
      return refuse(grpc::StatusCode::UNAUTHENTICATED,
                    "no such user for this address");
    }
    std::string want = admin::AdminProof(e->password, user, nonce,
                                         StrCat(kServicePrefix, method));
    if (!admin::ProofEquals(want, proof)) {
      return refuse(grpc::StatusCode::UNAUTHENTICATED, "wrong proof");
    }
    uint32_t need = TokenFor(method);
    if ((e->tokens & need) != need) {
      return refuse(grpc::StatusCode::PERMISSION_DENIED, "token missing");
    }
    return grpc::Status::OK;
  }

  fs::UniqueFd wake_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;  // tasks_ and watchers_
  std::deque<std::function<void()>> tasks_;
  std::list<std::shared_ptr<Watcher>> watchers_;
  std::map<std::string, int64_t> nonces_;  // loop only: nonce -> expiry
};

// The service as one listener serves it (gRPC registers a service object
// with one server only): every call goes to the shared hub. A retired
// listener's service ends its event streams at `streams_end_ms`.
class AdminService final : public admin::pb::SchedulerAdmin::Service {
 public:
  explicit AdminService(std::shared_ptr<AdminHub> hub) : hub_(std::move(hub)) {}

  // The listener moves: event streams end at `at_ms` with UNAVAILABLE.
  void Retire(int64_t at_ms, std::string why) {
    {
      std::lock_guard l(mu_);
      retire_why_ = std::move(why);
    }
    streams_end_ms_ = at_ms;
  }
  // The listener is gone (scheduler stopping): calls end now.
  void Gone() { gone_ = true; }

  grpc::Status Challenge(grpc::ServerContext* ctx,
                         const admin::pb::ChallengeRequest*,
                         admin::pb::ChallengeReply* out) override {
    return OnLoop<admin::pb::ChallengeReply>(
        ctx, nullptr, out, [this](admin::pb::ChallengeReply* r) {
          r->set_nonce(hub_->NewNonce());
          r->set_expires_in_s(kNonceLifeMs / 1000);
          return grpc::Status::OK;
        });
  }

  grpc::Status ShowQueueShort(grpc::ServerContext* ctx, const admin::pb::Empty*,
                              admin::pb::QueueSummary* out) override {
    return OnLoop<admin::pb::QueueSummary>(ctx, "ShowQueueShort", out,
                                           [this](admin::pb::QueueSummary* r) {
                                             *r = s().QueueSummaryView();
                                             return grpc::Status::OK;
                                           });
  }

  grpc::Status ShowQueueThreads(grpc::ServerContext* ctx,
                                const admin::pb::Empty*,
                                admin::pb::QueueThreads* out) override {
    return OnLoop<admin::pb::QueueThreads>(ctx, "ShowQueueThreads", out,
                                           [this](admin::pb::QueueThreads* r) {
                                             *r = s().QueueThreadsView();
                                             return grpc::Status::OK;
                                           });
  }

  grpc::Status ShowThread(grpc::ServerContext* ctx,
                          const admin::pb::ShowThreadRequest* req,
                          admin::pb::ThreadMessages* out) override {
    std::string ch = req->channel(), host = req->host();
    return OnLoop<admin::pb::ThreadMessages>(
        ctx, "ShowThread", out, [this, ch, host](admin::pb::ThreadMessages* r) {
          *r = s().ThreadView(ch, host);
          return grpc::Status::OK;
        });
  }

  grpc::Status ListMessages(
      grpc::ServerContext* ctx, const admin::pb::ListMessagesRequest* req,
      grpc::ServerWriter<admin::pb::MessageEntry>* writer) override {
    std::string ch = req->channel(), host = req->host();
    std::vector<admin::pb::MessageEntry> all;
    grpc::Status st = OnLoop<std::vector<admin::pb::MessageEntry>>(
        ctx, "ListMessages", &all,
        [this, ch, host](std::vector<admin::pb::MessageEntry>* r) {
          *r = s().MessagesView(ch, host);
          return grpc::Status::OK;
        });
    if (!st.ok()) return st;
    for (const auto& m : all) {
      if (ctx->IsCancelled() || !writer->Write(m))
        return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    return grpc::Status::OK;
  }

  grpc::Status GetCounters(grpc::ServerContext* ctx, const admin::pb::Empty*,
                           admin::pb::Counters* out) override {
    return OnLoop<admin::pb::Counters>(ctx, "GetCounters", out,
                                       [this](admin::pb::Counters* r) {
                                         *r = s().CountersView();
                                         return grpc::Status::OK;
                                       });
  }

  grpc::Status Etrn(grpc::ServerContext* ctx, const admin::pb::EtrnRequest* req,
                    admin::pb::ActionReply* out) override {
    std::string domain = req->domain();
    if (domain.empty() || domain.size() > 255 ||
        domain.find_first_of(" \t\r\n") != std::string::npos) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad domain");
    }
    return OnLoop<admin::pb::ActionReply>(
        ctx, "Etrn", out, [this, domain](admin::pb::ActionReply* r) {
          *r = s().EtrnAction(domain);
          return grpc::Status::OK;
        });
  }

  grpc::Status RunQueue(grpc::ServerContext* ctx,
                        const admin::pb::RunQueueRequest* req,
                        admin::pb::ActionReply* out) override {
    std::string qid = req->queue_id();
    return OnLoop<admin::pb::ActionReply>(
        ctx, "RunQueue", out, [this, qid](admin::pb::ActionReply* r) {
          return Action(s().RunQueueAction(qid), r);
        });
  }

  grpc::Status KillThread(grpc::ServerContext* ctx,
                          const admin::pb::KillThreadRequest* req,
                          admin::pb::ActionReply* out) override {
    std::string ch = req->channel(), host = req->host();
    return OnLoop<admin::pb::ActionReply>(
        ctx, "KillThread", out, [this, ch, host](admin::pb::ActionReply* r) {
          *r = s().KillThreadAction(ch, host);
          return grpc::Status::OK;
        });
  }

  grpc::Status KillMessage(grpc::ServerContext* ctx,
                           const admin::pb::KillMessageRequest* req,
                           admin::pb::ActionReply* out) override {
    std::string qid = req->queue_id();
    return OnLoop<admin::pb::ActionReply>(
        ctx, "KillMessage", out, [this, qid](admin::pb::ActionReply* r) {
          return Action(s().KillMessageAction(qid), r);
        });
  }

  grpc::Status WatchEvents(
      grpc::ServerContext* ctx, const admin::pb::WatchEventsRequest*,
      grpc::ServerWriter<admin::pb::DeliveryEvent>* writer) override {
    // Registered on the loop right after the proof is checked, so no event
    // after the call's acceptance is missed.
    auto w = std::make_shared<Watcher>();
    int dummy = 0;
    grpc::Status st = OnLoop<int>(ctx, "WatchEvents", &dummy, [this, w](int*) {
      return hub_->AddWatcher(w);
    });
    if (!st.ok()) return st;
    // The header goes out at once: the client knows it is registered.
    writer->SendInitialMetadata();
    while (!hub_->stopping() && !gone_ && !ctx->IsCancelled()) {
      if (NowMs() >= streams_end_ms_) {
        std::lock_guard l(mu_);
        st = grpc::Status(grpc::StatusCode::UNAVAILABLE, retire_why_);
        break;
      }
      std::deque<admin::pb::DeliveryEvent> batch;
      bool overflow = false;
      {
        std::unique_lock l(w->mu);
        w->cv.wait_for(l, kPollStep,
                       [&] { return !w->events.empty() || w->overflow; });
        batch.swap(w->events);
        overflow = w->overflow;
      }
      bool ok = true;
      for (const auto& ev : batch) {
        if (!(ok = writer->Write(ev))) break;
      }
      if (!ok) break;
      if (overflow) {
        st = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "event reader too slow");
        break;
      }
    }
    hub_->RemoveWatcher(w);
    return st;
  }

 private:
  Scheduler& s() { return hub_->s_; }

  template <typename Reply>
  grpc::Status OnLoop(grpc::ServerContext* ctx, const char* method, Reply* out,
                      std::function<grpc::Status(Reply*)> op) {
    return hub_->OnLoop<Reply>(ctx, method, out, std::move(op), gone_);
  }

  static grpc::Status Action(const absl::StatusOr<admin::pb::ActionReply>& a,
                             admin::pb::ActionReply* r) {
    if (!a.ok()) return ToGrpc(a.status());
    *r = *a;
    return grpc::Status::OK;
  }

  std::shared_ptr<AdminHub> hub_;
  std::atomic<bool> gone_{false};
  std::atomic<int64_t> streams_end_ms_{std::numeric_limits<int64_t>::max()};
  std::mutex mu_;  // retire_why_
  std::string retire_why_;
};

// The scheduler's gRPC admin server: the hub, the listener on
// run/scheduler.sock (for the scheduler's life) and the one on
// PARAMgrpcaddr (replaced on reload when its address or TLS files change:
// the new one starts first, the old one is retired in the background).
class AdminGrpc {
 public:
  explicit AdminGrpc(Scheduler& s) : hub_(std::make_shared<AdminHub>(s)) {}
  ~AdminGrpc() { Stop(); }

  absl::Status Start(const std::string& unix_path) {
    if (auto s = hub_->Init(); !s.ok()) return s;
    ::unlink(unix_path.c_str());  // a stale socket of a dead scheduler
    auto l = Serve("unix:" + unix_path, grpc::InsecureServerCredentials());
    if (!l.ok()) return l.status();
    // Any local user, as on the MAILQv2 socket (sendmail -q, mailq):
    // scheduler.auth decides what each may do.
    ::chmod(unix_path.c_str(), 0666);
    unix_ = std::move(*l);
    unix_path_ = unix_path;
    return absl::OkStatus();
  }

  const std::string& tcp_addr() const { return tcp_addr_; }
  const GrpcTls& tcp_tls() const { return tcp_tls_; }

  // Serves `addr` ("" = no TCP listener) with `tls` (no certificate =
  // plain HTTP/2). A listener already there is retired only once the new
  // one runs: on an error it stays as it was.
  absl::Status ListenTcp(const std::string& addr, GrpcTls tls) {
    JoinRetired(false);
    Listener fresh;
    if (!addr.empty()) {
      std::shared_ptr<grpc::ServerCredentials> creds =
          grpc::InsecureServerCredentials();
      if (!tls.cert_pem.empty()) {
        // gRPC's TLS: 1.2 the lowest version, 1.3 preferred, AEAD suites
        // with forward secrecy for 1.2 (the node's floor,
        // node/common/tls_server.h). No client certificate: callers prove
        // a scheduler.auth password per call.
        grpc::SslServerCredentialsOptions opts;
        opts.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
        creds = grpc::SslServerCredentials(opts);
      }
      auto l = Serve(addr, creds);
      if (!l.ok()) return l.status();
      fresh = std::move(*l);
    }
    if (tcp_.server) {
      Retire(std::move(tcp_), addr.empty()
                                  ? std::string("admin listener closed")
                                  : StrCat("admin listener moved to ", addr));
    }
    tcp_ = std::move(fresh);
    tcp_addr_ = addr;
    tcp_tls_ = std::move(tls);
    return absl::OkStatus();
  }

  void Stop() {
    hub_->set_stopping();
    for (Listener* l : {&unix_, &tcp_}) {
      if (!l->server) continue;
      l->service->Gone();
      l->server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::seconds(2));
      l->server->Wait();
      l->server.reset();
    }
    JoinRetired(true);
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
    unix_path_.clear();
  }

  AdminHub& hub() { return *hub_; }

 private:
  struct Listener {
    std::shared_ptr<AdminService> service;
    std::unique_ptr<grpc::Server> server;
  };
  struct Retired {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  absl::StatusOr<Listener> Serve(
      const std::string& addr,
      const std::shared_ptr<grpc::ServerCredentials>& creds) {
    Listener l;
    l.service = std::make_shared<AdminService>(hub_);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort(addr, creds, &port);
    b.RegisterService(l.service.get());
    b.SetMaxReceiveMessageSize(64 * 1024);
    l.server = b.BuildAndStart();
    bool is_unix = addr.rfind("unix:", 0) == 0;
    if (!l.server || (!is_unix && port == 0)) {
      if (l.server) l.server->Shutdown();
      return absl::UnavailableError(
          StrCat("cannot serve admin gRPC on ", addr));
    }
    return l;
  }

  // The old listener takes no new calls; calls running on it get
  // kRetireGraceMs to finish (event streams then end with UNAVAILABLE and
  // `why`), whatever is left after that is cancelled. In a thread of its
  // own: the loop must keep answering the calls meanwhile.
  void Retire(Listener old, std::string why) {
    int64_t end = NowMs() + kRetireGraceMs;
    old.service->Retire(end, std::move(why));
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread t([old = std::move(old), done]() mutable {
      old.server->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(kRetireGraceMs + 1000));
      old.server->Wait();
      old.server.reset();
      *done = true;
    });
    retired_.push_back({std::move(t), std::move(done)});
  }

  // Joins the retired listeners' threads that are done (`all`: every one;
  // the hub is stopping, so their calls end within a poll step).
  void JoinRetired(bool all) {
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (all || *it->done) {
        it->thread.join();
        it = retired_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::shared_ptr<AdminHub> hub_;
  Listener unix_, tcp_;
  std::string unix_path_;
  std::string tcp_addr_;  // "" = no TCP listener
  GrpcTls tcp_tls_;
  std::vector<Retired> retired_;
};

namespace {

// The first PEM object of `pem` of its kind; null if there is none.
template <typename T, T* (*Read)(BIO*, T**, pem_password_cb*, void*)>
T* ReadPem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return nullptr;
  T* out = Read(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return out;
}

}  // namespace

absl::StatusOr<GrpcTls> LoadGrpcTls(const SchedulerConf& conf) {
  GrpcTls tls;
  if (conf.grpccert.empty()) return tls;
  auto read = [&](const std::string& path, int line, const char* param,
                  std::string* out) -> absl::Status {
    auto text = fs::ReadFile(path, kMaxPemBytes);
    if (!text.ok()) {
      return config::Error(conf.file, line,
                           StrCat(param, ": ", zm::Message(text.status())));
    }
    *out = std::move(*text);
    return absl::OkStatus();
  };
  if (auto s = read(conf.grpccert, conf.grpccert_line, "PARAMgrpccert",
                    &tls.cert_pem);
      !s.ok()) {
    return s;
  }
  if (auto s =
          read(conf.grpckey, conf.grpckey_line, "PARAMgrpckey", &tls.key_pem);
      !s.ok()) {
    return s;
  }
  X509* cert = ReadPem<X509, PEM_read_bio_X509>(tls.cert_pem);
  if (cert == nullptr) {
    return config::Error(
        conf.file, conf.grpccert_line,
        StrCat("PARAMgrpccert: no PEM certificate in ", conf.grpccert));
  }
  EVP_PKEY* key = ReadPem<EVP_PKEY, PEM_read_bio_PrivateKey>(tls.key_pem);
  bool matches = key != nullptr && X509_check_private_key(cert, key) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  if (key == nullptr) {
    return config::Error(
        conf.file, conf.grpckey_line,
        StrCat("PARAMgrpckey: no PEM private key in ", conf.grpckey));
  }
  if (!matches) {
    return config::Error(conf.file, conf.grpckey_line,
                         StrCat("PARAMgrpckey: ", conf.grpckey,
                                " is not the key of ", conf.grpccert));
  }
  return tls;
}

absl::Status Scheduler::OpenAdminGrpc(const std::string& tcp, GrpcTls tls) {
  auto g = std::make_shared<AdminGrpc>(*this);
  if (auto s = g->Start(node_.run() + "/scheduler.sock"); !s.ok()) return s;
  if (auto s = g->ListenTcp(tcp, std::move(tls)); !s.ok()) return s;
  admin_grpc_ = std::move(g);
  return absl::OkStatus();
}

void Scheduler::ReopenAdminGrpc(GrpcTls tls) {
  // Unchanged: the listener and its calls are left alone. The UNIX
  // socket's listener is never reopened.
  if (!admin_grpc_ || (conf_.grpcaddr == admin_grpc_->tcp_addr() &&
                       tls == admin_grpc_->tcp_tls())) {
    return;
  }
  std::string old_addr = admin_grpc_->tcp_addr();
  bool with_tls = !tls.cert_pem.empty();
  if (auto s = admin_grpc_->ListenTcp(conf_.grpcaddr, std::move(tls));
      !s.ok()) {
    log_.Error(
        "", StrCat("admin gRPC not reopened (", zm::Message(s), "); still on ",
                   old_addr.empty() ? "the UNIX socket only" : old_addr));
    return;
  }
  log_.Info(
      "",
      StrCat("admin gRPC reopened", conf_.grpcaddr.empty() ? "" : " on ",
             conf_.grpcaddr, with_tls ? " (TLS)" : "",
             old_addr.empty() ? std::string()
                              : fmt::format("; calls on {} end within {} s",
                                            old_addr, kRetireGraceMs / 1000)));
}

int Scheduler::AdminGrpcFd() const {
  return admin_grpc_ ? admin_grpc_->hub().wake_fd() : -1;
}

void Scheduler::RunAdminGrpc() {
  if (admin_grpc_) admin_grpc_->hub().RunTasks();
}

void Scheduler::PublishAdminGrpc(std::string_view event_line) {
  if (admin_grpc_) admin_grpc_->hub().Publish(event_line);
}

}  // namespace zm::scheduler
