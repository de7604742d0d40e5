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
    Write("scheduler.conf",
          StrCat("PARAMauthfile = \"$MAILVAR/scheduler.auth\"\n"
                 "PARAMgrpcaddr = \"TCP:127.0.0.1:",
                 port_,
                 "\"\n"
                 "*/*  interval=1h expiry=3d idlemax=1m\n"
                 "local/*\n    command=\"",
                 ZM_TESTDATA, "/fake_ta.py\"\n"));
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

}  // namespace
}  // namespace zm::admin
