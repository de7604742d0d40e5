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
#include <list>
#include <map>
#include <mutex>

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
  return std::string(it->second.data(), std::min<size_t>(it->second.size(), 256));
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

class AdminGrpc final : public admin::pb::SchedulerAdmin::Service {
 public:
  explicit AdminGrpc(Scheduler& s) : s_(s) {}
  ~AdminGrpc() override { Stop(); }

  // `tls`: the TCP listener's certificate and key; empty = plain HTTP/2.
  absl::Status Start(const std::string& unix_path, const std::string& tcp,
                     const GrpcTls& tls) {
    wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_.valid()) return fs::ErrnoStatus("eventfd", "", errno);
    ::unlink(unix_path.c_str());  // a stale socket of a dead scheduler
    grpc::ServerBuilder b;
    b.AddListeningPort("unix:" + unix_path, grpc::InsecureServerCredentials());
    int tcp_port = 0;
    if (!tcp.empty()) {
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
      b.AddListeningPort(tcp, creds, &tcp_port);
    }
    b.RegisterService(this);
    b.SetMaxReceiveMessageSize(64 * 1024);
    server_ = b.BuildAndStart();
    if (!server_ || (!tcp.empty() && tcp_port == 0)) {
      server_.reset();
      return absl::UnavailableError(
          StrCat("cannot serve admin gRPC on unix:", unix_path,
                 tcp.empty() ? "" : " and ", tcp));
    }
    // Any local user, as on the MAILQv2 socket (sendmail -q, mailq):
    // scheduler.auth decides what each may do.
    ::chmod(unix_path.c_str(), 0666);
    unix_path_ = unix_path;
    return absl::OkStatus();
  }

  void Stop() {
    if (!server_) return;
    stopping_ = true;
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(2));
    server_->Wait();
    server_.reset();
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  }

  int wake_fd() const { return wake_.get(); }

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

  // --- the service ---

  grpc::Status Challenge(grpc::ServerContext* ctx,
                         const admin::pb::ChallengeRequest*,
                         admin::pb::ChallengeReply* out) override {
    return OnLoop<admin::pb::ChallengeReply>(
        ctx, nullptr, out, [this](admin::pb::ChallengeReply* r) {
          r->set_nonce(NewNonce());
          r->set_expires_in_s(kNonceLifeMs / 1000);
          return grpc::Status::OK;
        });
  }

  grpc::Status ShowQueueShort(grpc::ServerContext* ctx,
                              const admin::pb::Empty*,
                              admin::pb::QueueSummary* out) override {
    return OnLoop<admin::pb::QueueSummary>(
        ctx, "ShowQueueShort", out, [this](admin::pb::QueueSummary* r) {
          *r = s_.QueueSummaryView();
          return grpc::Status::OK;
        });
  }

  grpc::Status ShowQueueThreads(grpc::ServerContext* ctx,
                                const admin::pb::Empty*,
                                admin::pb::QueueThreads* out) override {
    return OnLoop<admin::pb::QueueThreads>(
        ctx, "ShowQueueThreads", out, [this](admin::pb::QueueThreads* r) {
          *r = s_.QueueThreadsView();
          return grpc::Status::OK;
        });
  }

  grpc::Status ShowThread(grpc::ServerContext* ctx,
                          const admin::pb::ShowThreadRequest* req,
                          admin::pb::ThreadMessages* out) override {
    std::string ch = req->channel(), host = req->host();
    return OnLoop<admin::pb::ThreadMessages>(
        ctx, "ShowThread", out, [this, ch, host](admin::pb::ThreadMessages* r) {
          *r = s_.ThreadView(ch, host);
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
          *r = s_.MessagesView(ch, host);
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
                                         *r = s_.CountersView();
                                         return grpc::Status::OK;
                                       });
  }

  grpc::Status Etrn(grpc::ServerContext* ctx,
                    const admin::pb::EtrnRequest* req,
                    admin::pb::ActionReply* out) override {
    std::string domain = req->domain();
    if (domain.empty() || domain.size() > 255 ||
        domain.find_first_of(" \t\r\n") != std::string::npos) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad domain");
    }
    return OnLoop<admin::pb::ActionReply>(
        ctx, "Etrn", out, [this, domain](admin::pb::ActionReply* r) {
          *r = s_.EtrnAction(domain);
          return grpc::Status::OK;
        });
  }

  grpc::Status RunQueue(grpc::ServerContext* ctx,
                        const admin::pb::RunQueueRequest* req,
                        admin::pb::ActionReply* out) override {
    std::string qid = req->queue_id();
    return OnLoop<admin::pb::ActionReply>(
        ctx, "RunQueue", out, [this, qid](admin::pb::ActionReply* r) {
          return Action(s_.RunQueueAction(qid), r);
        });
  }

  grpc::Status KillThread(grpc::ServerContext* ctx,
                          const admin::pb::KillThreadRequest* req,
                          admin::pb::ActionReply* out) override {
    std::string ch = req->channel(), host = req->host();
    return OnLoop<admin::pb::ActionReply>(
        ctx, "KillThread", out, [this, ch, host](admin::pb::ActionReply* r) {
          *r = s_.KillThreadAction(ch, host);
          return grpc::Status::OK;
        });
  }

  grpc::Status KillMessage(grpc::ServerContext* ctx,
                           const admin::pb::KillMessageRequest* req,
                           admin::pb::ActionReply* out) override {
    std::string qid = req->queue_id();
    return OnLoop<admin::pb::ActionReply>(
        ctx, "KillMessage", out, [this, qid](admin::pb::ActionReply* r) {
          return Action(s_.KillMessageAction(qid), r);
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
      std::lock_guard l(mu_);
      if (watchers_.size() >= kMaxWatchers) {
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            "too many event watchers");
      }
      watchers_.push_back(w);
      return grpc::Status::OK;
    });
    if (!st.ok()) return st;
    // The header goes out at once: the client knows it is registered.
    writer->SendInitialMetadata();
    while (!stopping_ && !ctx->IsCancelled()) {
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
    std::lock_guard l(mu_);
    watchers_.remove(w);
    return st;
  }

 private:
  static grpc::Status Action(const absl::StatusOr<admin::pb::ActionReply>& a,
                             admin::pb::ActionReply* r) {
    if (!a.ok()) return ToGrpc(a.status());
    *r = *a;
    return grpc::Status::OK;
  }

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

  // Runs `op` on the loop (after Authorize, unless `method` is null) and
  // waits for it. The answer is built in storage the task owns, so a call
  // that gives up waiting leaves nothing dangling.
  template <typename Reply>
  grpc::Status OnLoop(grpc::ServerContext* ctx, const char* method,
                      Reply* out, std::function<grpc::Status(Reply*)> op) {
    auto reply = std::make_shared<Reply>();
    auto done = std::make_shared<Done>();
    std::string user = Metadata(ctx, "zm-user"),
                nonce = Metadata(ctx, "zm-nonce"),
                proof = Metadata(ctx, "zm-proof"), peer = ctx->peer();
    {
      std::lock_guard l(mu_);
      if (stopping_ || tasks_.size() >= 1024) {
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
      if (stopping_)
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "scheduler stopping");
      if (ctx->IsCancelled())
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    if (done->status.ok()) *out = std::move(*reply);
    return done->status;
  }

  Scheduler& s_;
  std::unique_ptr<grpc::Server> server_;
  std::string unix_path_;
  fs::UniqueFd wake_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;  // tasks_ and watchers_
  std::deque<std::function<void()>> tasks_;
  std::list<std::shared_ptr<Watcher>> watchers_;
  std::map<std::string, int64_t> nonces_;  // loop only: nonce -> expiry
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
  if (auto s = g->Start(node_.run() + "/scheduler.sock", tcp, tls); !s.ok()) {
    return s;
  }
  admin_grpc_ = std::move(g);
  admin_grpc_tls_ = std::move(tls);
  admin_grpc_addr_ = tcp;
  return absl::OkStatus();
}

void Scheduler::ReopenAdminGrpc(GrpcTls tls) {
  if (admin_grpc_ && conf_.grpcaddr == admin_grpc_addr_ &&
      tls == admin_grpc_tls_) {
    return;
  }
  std::string old_addr = admin_grpc_addr_;
  GrpcTls old_tls = admin_grpc_tls_;
  if (admin_grpc_) admin_grpc_->Stop();
  admin_grpc_.reset();
  if (auto s = OpenAdminGrpc(conf_.grpcaddr, tls); !s.ok()) {
    log_.Error("", StrCat("admin gRPC not reopened (", zm::Message(s),
                          "); back on the old address"));
    if (auto again = OpenAdminGrpc(old_addr, std::move(old_tls)); !again.ok()) {
      log_.Error("", StrCat("admin gRPC down: ", zm::Message(again)));
    }
    return;
  }
  log_.Info("", StrCat("admin gRPC reopened",
                       conf_.grpcaddr.empty() ? "" : " on ", conf_.grpcaddr,
                       admin_grpc_tls_.cert_pem.empty() ? "" : " (TLS)"));
}

int Scheduler::AdminGrpcFd() const {
  return admin_grpc_ ? admin_grpc_->wake_fd() : -1;
}

void Scheduler::RunAdminGrpc() {
  if (admin_grpc_) admin_grpc_->RunTasks();
}

void Scheduler::PublishAdminGrpc(std::string_view event_line) {
  if (admin_grpc_) admin_grpc_->Publish(event_line);
}

}  // namespace zm::scheduler
