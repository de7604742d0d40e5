// The scheduler's gRPC admin service end to end: the real scheduler binary
// on a throw-away node (a fake transport agent that defers "wait*" users
// and delivers "ok*" ones), GrpcAdminClient over run/scheduler.sock and
// over TCP; refusals checked in the answer and in the log.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "node/admin/admin_grpc_client.h"
#include "node/admin/admin_render.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/spool/spool.h"
#include "tests/unit/testing/queued_message.h"
#include "tests/unit/testing/wait.h"

namespace zm::admin {
namespace {

using testutil::WaitFor;

class AdminGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-admingrpc-XXXXXX";
    home_ = ::mkdtemp(tmpl);
    node_.home = home_;
    for (auto d : {"etc", "log", "run", "mail", "db"})
      ASSERT_TRUE(fs::MakeDirs(home_ + "/" + d).ok());
    spool_ = std::make_unique<spool::Spool>(node_.spool(), "t1");
    ASSERT_TRUE(spool_->CreateLayout().ok());
    port_ = testutil::FreeLoopbackPort();
    WriteConf(port_);
    Write("scheduler.auth",
          "nobody:nobody:SNMP QQ TT ETRN:[127.0.0.1]/32\n"
          "root:secret:ALL:[127.0.0.1]/32\n"
          "far:farpw:ALL:[10.1.2.0]/24\n");
    Write("mail.conf", "hostname=test.example\n");
    Write("cluster.conf", "node-id t1\n");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a crashed test
      std::string bin = std::string(ZM_BIN_DIR) + "/scheduler";
      ::execl(bin.c_str(), "scheduler", "-C", home_.c_str(), nullptr);
      _exit(127);
    }
    ASSERT_TRUE(WaitFor([&] { return fs::Exists(node_.pid_file("scheduler")); }))
        << Log();
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    std::filesystem::remove_all(home_);
  }

  // scheduler.conf with the gRPC TCP listener on 127.0.0.1:`port`.
  void WriteConf(int port) {
    Write("scheduler.conf",
          StrCat("PARAMauthfile = \"$MAILVAR/scheduler.auth\"\n"
                 "PARAMgrpcaddr = \"TCP:127.0.0.1:",
                 port,
                 "\"\n"
                 "*/*  interval=1h expiry=3d idlemax=1m\n"
                 "local/*\n    command=\"",
                 ZM_TESTDATA, "/fake_ta.py\"\n"));
  }

  void Write(const std::string& name, const std::string& text) {
    ASSERT_TRUE(fs::WriteFileAtomically(node_.etc(), name, text).ok());
  }

  std::string Log() {
    auto t = fs::ReadFile(node_.maillog());
    return t.ok() ? *t : "";
  }

  std::unique_ptr<GrpcAdminClient> Client(const std::string& user,
                                          const std::string& pass) {
    auto c = GrpcAdminClient::Connect(node_, user, pass);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // A message for local user `user` (the fake agent: "ok*" delivered,
  // "wait*" deferred).
  std::string Enqueue(const std::string& user) {
    mail::ControlRecipient r;
    r.channel = "local";
    r.host = user;
    r.user = user;
    r.orig = user + "@test.example";
    auto id = testutil::QueueRoutedMessage(
        *spool_, "alice@test.example", {r}, "Subject: t\n\nhello\n", "",
        static_cast<int64_t>(::time(nullptr)) * 1000000);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  // Waits until `qid` has been tried once (and deferred).
  bool Deferred(GrpcAdminClient& c, const std::string& qid) {
    return WaitFor([&] {
      auto msgs = c.ListMessages();
      if (!msgs.ok()) return false;
      for (const auto& m : *msgs) {
        if (m.queue_id() == qid && m.recipients_size() == 1 &&
            m.recipients(0).attempts() >= 1 && !m.recipients(0).active())
          return true;
      }
      return false;
    });
  }

  std::string home_;
  NodeDir node_;
  std::unique_ptr<spool::Spool> spool_;
  int port_ = 0;
  pid_t pid_ = -1;
};

TEST_F(AdminGrpcTest, ViewsShowTheRealQueue) {
  auto c = Client("nobody", "nobody");
  ASSERT_TRUE(c);
  std::string qid = Enqueue("waituser");
  ASSERT_TRUE(Deferred(*c, qid)) << Log();

  auto sum = c->ShowQueueShort();
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->messages(), 1);
  EXPECT_EQ(sum->recipients(), 1);
  EXPECT_EQ(sum->threads(), 1);

  auto th = c->ShowQueueThreads();
  ASSERT_TRUE(th.ok()) << th.status();
  ASSERT_EQ(th->rings_size(), 1);
  ASSERT_EQ(th->rings(0).threads_size(), 1);
  EXPECT_EQ(th->rings(0).threads(0).channel(), "local");
  EXPECT_EQ(th->rings(0).threads(0).host(), "waituser");
  EXPECT_EQ(th->rings(0).threads(0).recipients(), 1);
  EXPECT_GE(th->rings(0).threads(0).attempts(), 1);
  EXPECT_GT(th->rings(0).threads(0).wait_s(), 0);  // interval=1h
  std::vector<std::string> text = QueueThreadsLines(*th);
  ASSERT_GE(text.size(), 3u);
  EXPECT_NE(text[1].find("local/waituser/"), std::string::npos) << text[1];

  auto one = c->ShowThread("local", "waituser");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_TRUE(one->found());
  ASSERT_EQ(one->messages_size(), 1);
  EXPECT_EQ(one->messages(0).queue_id(), qid);
  EXPECT_EQ(one->messages(0).sender(), "alice@test.example");
  EXPECT_FALSE(one->messages(0).diagnostic().empty());
  auto none = c->ShowThread("local", "nobody-here");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->found());

  auto msgs = c->ListMessages("local", "waituser");
  ASSERT_TRUE(msgs.ok());
  ASSERT_EQ(msgs->size(), 1u);
  EXPECT_EQ((*msgs)[0].recipients(0).address(), "waituser@test.example");
  EXPECT_TRUE((*msgs)[0].deferred());
  EXPECT_NE(MessageJson((*msgs)[0]).find("\"queue_name\":\"deferred\""),
            std::string::npos);
  auto other = c->ListMessages("smtp", "");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());

  auto counters = c->GetCounters();
  ASSERT_TRUE(counters.ok());
  EXPECT_GE(counters->recipients_deferrals(), 1u);
  EXPECT_EQ(counters->messages_stored(), 1u);
}

TEST_F(AdminGrpcTest, EtrnRunqAndKills) {
  auto nobody = Client("nobody", "nobody");
  auto root = Client("root", "secret");
  ASSERT_TRUE(nobody && root);
  std::string a = Enqueue("waita"), b = Enqueue("waitb");
  ASSERT_TRUE(Deferred(*nobody, a) && Deferred(*nobody, b)) << Log();

  auto etrn = nobody->Etrn("waita");
  ASSERT_TRUE(etrn.ok()) << etrn.status();
  EXPECT_EQ(etrn->recipients(), 1);
  EXPECT_EQ(etrn->text(), "ETRN waita: 1 recipients scheduled for delivery");
  auto idle = nobody->Etrn("nothing.example");
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(idle->text(), "ETRN nothing.example: nothing queued");
  // ETRN made it due: a second attempt follows.
  ASSERT_TRUE(WaitFor([&] {
    auto t = nobody->ShowThread("local", "waita");
    return t.ok() && t->messages_size() == 1 &&
           t->messages(0).attempts() >= 2;
  })) << Log();

  auto runq = nobody->RunQueue(b);
  ASSERT_TRUE(runq.ok()) << runq.status();
  EXPECT_EQ(runq->recipients(), 1);
  auto unknown = nobody->RunQueue("0GC4H8WY3TQ2K7PX-t1");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);

  // KILL needs the KILL token: nobody lacks it, root has ALL.
  auto denied = nobody->KillMessage(a);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.status().message(), "not permitted for this user");
  EXPECT_NE(Log().find("admin gRPC KillMessage refused for user 'nobody' from "
                       "unix:"),
            std::string::npos)
      << Log();
  EXPECT_TRUE(fs::Exists(spool_->Path(spool::kQueue, a)));

  ASSERT_TRUE(WaitFor([&] {  // not while an agent holds it
    auto killed = root->KillMessage(a);
    return killed.ok() && killed->text() == StrCat("message ", a, " deleted");
  })) << Log();
  ASSERT_TRUE(WaitFor([&] { return !fs::Exists(spool_->Path(spool::kQueue, a)); }))
      << Log();
  ASSERT_TRUE(WaitFor([&] {
    auto killed = root->KillThread("local", "waitb");
    return killed.ok() && killed->recipients() == 1;
  })) << Log();
  ASSERT_TRUE(WaitFor([&] { return !fs::Exists(spool_->Path(spool::kQueue, b)); }))
      << Log();
}

TEST_F(AdminGrpcTest, RefusalsRevealNothingAndAreLogged) {
  // Wrong password over the UNIX socket.
  auto bad = Client("nobody", "wrong");
  ASSERT_TRUE(bad);
  auto r = bad->ShowQueueShort();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(r.status().message(), "authentication refused");
  // Unknown user: the same answer.
  auto ghost = Client("ghost", "x");
  ASSERT_TRUE(ghost);
  auto g = ghost->ShowQueueShort();
  EXPECT_EQ(g.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(g.status().message(), "authentication refused");
  EXPECT_NE(Log().find("admin gRPC ShowQueueShort refused for user 'nobody' "
                       "from unix:"),
            std::string::npos)
      << Log();
  EXPECT_EQ(Log().find("nobody:wrong"), std::string::npos);

  // Over TCP: nobody from 127.0.0.1 is fine; "far" is only allowed from
  // 10.1.2.0/24, so its right password is refused here.
  std::string target = StrCat("127.0.0.1:", port_);
  auto tcp = GrpcAdminClient::ConnectTo(target, "nobody", "nobody");
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  auto ok = (*tcp)->ShowQueueShort();
  EXPECT_TRUE(ok.ok()) << ok.status();
  auto far = GrpcAdminClient::ConnectTo(target, "far", "farpw");
  ASSERT_TRUE(far.ok()) << far.status();
  auto f = (*far)->GetCounters();
  EXPECT_EQ(f.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(Log().find("admin gRPC GetCounters refused for user 'far' from "
                       "ipv4:127.0.0.1:"),
            std::string::npos)
      << Log();
}

TEST_F(AdminGrpcTest, ProofsAreSingleUseAndBoundToTheMethod) {
  auto c = Client("nobody", "nobody");
  ASSERT_TRUE(c);
  auto nonce = c->Challenge();
  ASSERT_TRUE(nonce.ok()) << nonce.status();
  pb::QueueSummary out;
  {
    grpc::ClientContext ctx;
    c->Sign(&ctx, *nonce, "ShowQueueShort");
    EXPECT_TRUE(c->stub().ShowQueueShort(&ctx, pb::Empty(), &out).ok());
  }
  {  // the same proof again: a replay
    grpc::ClientContext ctx;
    c->Sign(&ctx, *nonce, "ShowQueueShort");
    grpc::Status st = c->stub().ShowQueueShort(&ctx, pb::Empty(), &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  auto fresh = c->Challenge();
  ASSERT_TRUE(fresh.ok());
  {  // a proof made for another method
    grpc::ClientContext ctx;
    c->Sign(&ctx, *fresh, "ShowQueueShort");
    pb::Counters counters;
    grpc::Status st = c->stub().GetCounters(&ctx, pb::Empty(), &counters);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {  // no proof at all
    grpc::ClientContext ctx;
    grpc::Status st = c->stub().ShowQueueShort(&ctx, pb::Empty(), &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_NE(Log().find("unknown, used or expired nonce"), std::string::npos)
      << Log();
}

TEST_F(AdminGrpcTest, EventStreamShowsADelivery) {
  auto c = Client("nobody", "nobody");
  ASSERT_TRUE(c);
  std::atomic<bool> ready{false};
  std::string qid;
  std::vector<pb::DeliveryEvent> seen;
  absl::Status st;
  std::thread watcher([&] {
    st = c->WatchEvents(
        [&](const pb::DeliveryEvent& ev) {
          seen.push_back(ev);
          return ev.kind() != pb::DeliveryEvent::REMOVED;
        },
        30'000, [&] { ready = true; });
  });
  ASSERT_TRUE(WaitFor([&] { return ready.load(); }));
  qid = Enqueue("okuser");
  watcher.join();
  EXPECT_TRUE(st.ok()) << st;
  bool result = false, removed = false;
  for (const auto& ev : seen) {
    if (ev.queue_id() != qid) continue;
    if (ev.kind() == pb::DeliveryEvent::RESULT) {
      result = true;
      EXPECT_EQ(ev.recipient(), "okuser@test.example");
      EXPECT_EQ(ev.status(), "sent");
    }
    removed |= ev.kind() == pb::DeliveryEvent::REMOVED;
  }
  EXPECT_TRUE(result && removed) << Log();
}

// An event stream read in a thread of its own until it ends: the messages
// it saw removed and how it ended.
struct Watch {
  std::unique_ptr<GrpcAdminClient> client;
  std::atomic<bool> ready{false};
  std::atomic<bool> finished{false};
  std::mutex mu;
  std::set<std::string> removed;
  absl::Status status;
  std::thread thread;

  explicit Watch(std::unique_ptr<GrpcAdminClient> c) : client(std::move(c)) {
    thread = std::thread([this] {
      absl::Status st = client->WatchEvents(
          [this](const pb::DeliveryEvent& ev) {
            std::lock_guard l(mu);
            if (ev.kind() == pb::DeliveryEvent::REMOVED)
              removed.insert(ev.queue_id());
            return true;  // read on until the stream ends
          },
          60'000, [this] { ready = true; });
      std::lock_guard l(mu);
      status = st;
      finished = true;
    });
  }
  ~Watch() {
    if (thread.joinable()) thread.join();
  }
  bool SawRemoved(const std::string& qid) {
    std::lock_guard l(mu);
    return removed.count(qid) > 0;
  }
};

// A reload that leaves PARAMgrpcaddr and the TLS files alone leaves the
// listeners alone: event streams on the UNIX socket and on TCP go on and
// show a delivery made after the reload.
TEST_F(AdminGrpcTest, ReloadKeepsRunningEventStreams) {
  auto local = std::make_unique<Watch>(Client("root", "secret"));
  auto tcp_client = GrpcAdminClient::ConnectTo(StrCat("127.0.0.1:", port_),
                                               "root", "secret");
  ASSERT_TRUE(tcp_client.ok()) << tcp_client.status();
  auto tcp = std::make_unique<Watch>(std::move(*tcp_client));
  ASSERT_TRUE(WaitFor([&] { return local->ready && tcp->ready; })) << Log();

  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(WaitFor([&] {
    return Log().find("configuration reloaded") != std::string::npos;
  })) << Log();
  EXPECT_EQ(Log().find("admin gRPC reopened"), std::string::npos) << Log();
  EXPECT_FALSE(local->finished || tcp->finished);

  std::string qid = Enqueue("okuser");
  auto removed = [&](Watch& w) {
    return WaitFor([&] { return w.SawRemoved(qid) || w.finished; },
                   30'000) &&
           w.SawRemoved(qid);
  };
  EXPECT_TRUE(removed(*local)) << local->status << Log();
  EXPECT_TRUE(removed(*tcp)) << tcp->status << Log();
  EXPECT_FALSE(local->finished || tcp->finished)
      << local->status << " " << tcp->status;
  // Both still open: the scheduler's stop ends them.
  ::kill(pid_, SIGTERM);
  local.reset();
  tcp.reset();
}

// A reload that changes PARAMgrpcaddr starts the new listener and retires
// the old one: the old port takes no new calls, its running stream still
// gets events for the grace period and then ends with UNAVAILABLE naming
// the new address; the UNIX socket's stream is not touched.
TEST_F(AdminGrpcTest, ChangedPortMovesTheListener) {
  int old_port = port_;
  auto local = std::make_unique<Watch>(Client("root", "secret"));
  auto old_client = GrpcAdminClient::ConnectTo(
      StrCat("127.0.0.1:", old_port), "root", "secret");
  ASSERT_TRUE(old_client.ok()) << old_client.status();
  auto old_stream = std::make_unique<Watch>(std::move(*old_client));
  ASSERT_TRUE(WaitFor([&] { return local->ready && old_stream->ready; }))
      << Log();

  int new_port = testutil::FreeLoopbackPort();
  ASSERT_NE(new_port, old_port);
  WriteConf(new_port);
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  std::string moved = StrCat("admin gRPC reopened on 127.0.0.1:", new_port,
                             "; calls on 127.0.0.1:", old_port, " end within");
  ASSERT_TRUE(WaitFor([&] { return Log().find(moved) != std::string::npos; }))
      << Log();

  auto fresh = GrpcAdminClient::ConnectTo(StrCat("127.0.0.1:", new_port),
                                          "nobody", "nobody");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_TRUE((*fresh)->ShowQueueShort().ok());
  auto stale = GrpcAdminClient::ConnectTo(StrCat("127.0.0.1:", old_port),
                                          "nobody", "nobody", 5'000);
  EXPECT_FALSE(stale.ok());

  std::string qid = Enqueue("okuser");
  // The old stream ends by itself once its grace period is over.
  ASSERT_TRUE(WaitFor([&] { return old_stream->finished.load(); }, 60'000))
      << Log();
  {
    std::lock_guard l(old_stream->mu);
    EXPECT_EQ(old_stream->status.code(), absl::StatusCode::kUnavailable)
        << old_stream->status;
    EXPECT_NE(old_stream->status.message().find(
                  StrCat("moved to 127.0.0.1:", new_port)),
              std::string::npos)
        << old_stream->status;
  }
  EXPECT_TRUE(old_stream->SawRemoved(qid)) << Log();
  EXPECT_TRUE(local->SawRemoved(qid)) << Log();
  EXPECT_FALSE(local->finished) << local->status;
  ::kill(pid_, SIGTERM);
  local.reset();
  old_stream.reset();
}

}  // namespace
}  // namespace zm::admin
