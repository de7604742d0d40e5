// Runs the real scheduler binary on a throw-away node with a fake transport
// agent, and the real mailq against it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "node/admin/admin_client.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mail/control.h"
#include "node/mail/envelope.h"
#include "node/spool/spool.h"
#include "tests/unit/testing/queued_message.h"
#include "tests/unit/testing/wait.h"

namespace zm::scheduler {
namespace {

using testutil::WaitFor;

namespace stdfs = std::filesystem;

struct RunResult {
  int status = -1;
  std::string out;
};

RunResult RunProgram(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) cmd += "'" + a + "' ";
  cmd += "2>&1";
  RunResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = ::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class SchedulerDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-sched-XXXXXX";
    home_ = ::mkdtemp(tmpl);
    node_.home = home_;
    for (auto d : {"etc", "log", "run", "mail", "db"}) {
      ASSERT_TRUE(fs::MakeDirs(home_ + "/" + d).ok());
    }
    spool_ = std::make_unique<spool::Spool>(node_.spool(), "t1");
    ASSERT_TRUE(spool_->CreateLayout().ok());
    std::string ta = std::string(ZM_TESTDATA) + "/fake_ta.py";
    Write("scheduler.conf",
          "PARAMauthfile = \"$MAILVAR/scheduler.auth\"\n"
          "*/*  interval=1m expiry=3d idlemax=1m\n"
          "local/*\n"
          "    command=\"" +
              ta +
              "\"\n"
              "smtp/*\n"
              "    command=\"zm-no-such-agent -s\"\n");
    Write("scheduler.auth",
          "nobody:nobody:SNMP QQ TT ETRN:[127.0.0.1]/32\n"
          "root:secret:ALL:[127.0.0.1]/32\n");
    Write("mail.conf", "hostname=test.example\n");
    Write("cluster.conf", "node-id t1\n");
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    stdfs::remove_all(home_);
  }

  void Write(const std::string& name, const std::string& text) {
    ASSERT_TRUE(fs::WriteFileAtomically(node_.etc(), name, text).ok());
  }

  void StartScheduler() {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a crashed test
      ::setenv("ZM_SCHEDULER_TEST_CLOCK", "1", 1);
      std::string bin = std::string(ZM_BIN_DIR) + "/scheduler";
      ::execl(bin.c_str(), "scheduler", "-C", home_.c_str(), nullptr);
      _exit(127);
    }
    ASSERT_TRUE(WaitFor([&] {
      return fs::Exists(node_.pid_file("scheduler"));
    })) << Log();
  }

  void StopScheduler() {
    ASSERT_EQ(::kill(pid_, SIGTERM), 0);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    ::unlink(node_.pid_file("scheduler").c_str());
  }

  // scheduler.conf with the fake agent for local/* and `params` on it.
  void ConfWith(const std::string& params) {
    std::string ta = std::string(ZM_TESTDATA) + "/fake_ta.py";
    Write("scheduler.conf",
          "PARAMauthfile = \"$MAILVAR/scheduler.auth\"\n"
          "*/*  interval=1m expiry=3d idlemax=1m\n"
          "local/*\n    " +
              params + "\n    command=\"" + ta + "\"\n");
  }

  std::unique_ptr<admin::AdminClient> Root() {
    auto c = admin::AdminClient::Connect(node_, "root", "secret");
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // The messages now in router/ (DSNs the scheduler submitted).
  std::vector<std::string> RouterMessages() {
    std::vector<std::string> out;
    auto names = fs::ListDir(spool_->Path(spool::kRouter));
    if (!names.ok()) return out;
    std::sort(names->begin(), names->end());
    for (const auto& n : *names) {
      auto t = fs::ReadFile(spool_->Path(spool::kRouter, n));
      if (t.ok()) out.push_back(*t);
    }
    return out;
  }

  nlohmann::json MessageJson(const std::string& id) {
    auto c = admin::AdminClient::Connect(node_);
    if (!c.ok()) return nullptr;
    auto lines = (*c)->Command("SHOW MESSAGES");
    if (!lines.ok()) return nullptr;
    for (const auto& l : *lines) {
      auto j = nlohmann::json::parse(l, nullptr, false);
      if (!j.is_discarded() && j["queue_id"] == id) return j;
    }
    return nullptr;
  }

  std::string Log() {
    auto t = fs::ReadFile(node_.maillog());
    return t.ok() ? *t : "";
  }

  // Queues a message the way the router does: message into queue/, then
  // the control file into transport/.
  std::string Enqueue(const std::string& sender,
                      std::vector<mail::ControlRecipient> rcpts,
                      const std::string& ret = "") {
    auto id = testutil::QueueRoutedMessage(
        *spool_, sender, std::move(rcpts),
        "Subject: test\nMessage-ID: <m1@x>\n\nhello\n", ret,
        static_cast<int64_t>(::time(nullptr)) * 1000000);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  static mail::ControlRecipient Local(const std::string& user) {
    mail::ControlRecipient r;
    r.channel = "local";
    r.host = user;
    r.user = user;
    r.orig = user + "@test.example";
    return r;
  }

  std::string home_;
  NodeDir node_;
  std::unique_ptr<spool::Spool> spool_;
  pid_t pid_ = -1;
};

TEST_F(SchedulerDaemonTest, DeliveredMessageIsRemoved) {
  StartScheduler();
  std::string id = Enqueue("alice@test.example", {Local("okuser")});
  ASSERT_TRUE(WaitFor([&] {
    return !fs::Exists(spool_->Path(spool::kQueue, id)) &&
           !fs::Exists(spool_->Path(spool::kTransport, id)) &&
           Log().find(id + ": removed") != std::string::npos;
  })) << Log();
  std::string log = Log();
  EXPECT_NE(log.find(id + ": to=<okuser@test.example>, relay=local, delay="),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("dsn=2.0.0, status=sent (delivered to test box)"),
            std::string::npos);
  EXPECT_TRUE(spool_->Counts()[1].second == 0);  // no DSN in router/
}

TEST_F(SchedulerDaemonTest, FailedRecipientProducesDsn) {
  StartScheduler();
  std::string id =
      Enqueue("alice@test.example", {Local("okay"), Local("failuser")});
  ASSERT_TRUE(WaitFor([&] {
    return Log().find(id + ": removed") != std::string::npos;
  })) << Log();
  EXPECT_FALSE(fs::Exists(spool_->Path(spool::kQueue, id)));
  auto names = fs::ListDir(spool_->Path(spool::kRouter));
  ASSERT_TRUE(names.ok());
  ASSERT_EQ(names->size(), 1u);
  auto text = fs::ReadFile(spool_->Path(spool::kRouter, (*names)[0]));
  ASSERT_TRUE(text.ok());
  auto mf = mail::ParseMessageFile(*text);
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->envelope.sender, "");
  ASSERT_EQ(mf->envelope.recipients.size(), 1u);
  EXPECT_EQ(mf->envelope.recipients[0].address, "alice@test.example");
  std::string body = text->substr(mf->body_offset);
  EXPECT_NE(
      body.find("Content-Type: multipart/report; report-type=delivery-status"),
      std::string::npos);
  EXPECT_NE(body.find("Final-Recipient: rfc822; failuser@test.example"),
            std::string::npos);
  EXPECT_NE(body.find("Status: 5.1.1"), std::string::npos);
  EXPECT_NE(body.find(id), std::string::npos);
  EXPECT_EQ(body.find("okay@test.example"),
            std::string::npos);                              // NOTIFY default
  EXPECT_NE(body.find("Subject: test"), std::string::npos);  // headers returned
  EXPECT_NE(Log().find("status=bounced (user unknown)"), std::string::npos);
}

TEST_F(SchedulerDaemonTest, BounceOfBounceGoesToPostmasterOnce) {
  StartScheduler();
  std::string id = Enqueue("", {Local("failuser")});
  ASSERT_TRUE(WaitFor([&] {
    return Log().find(id + ": removed") != std::string::npos;
  })) << Log();
  EXPECT_FALSE(
      fs::Exists(spool_->Path(spool::kPostman, id + ".double-bounce")));
  auto dsns = RouterMessages();
  ASSERT_EQ(dsns.size(), 1u);
  auto mf = mail::ParseMessageFile(dsns[0]);
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->envelope.sender, "double-bounce@test.example");
  ASSERT_EQ(mf->envelope.recipients.size(), 1u);
  EXPECT_EQ(mf->envelope.recipients[0].address, "postmaster@test.example");
  EXPECT_NE(dsns[0].find("Final-Recipient: rfc822; failuser@test.example"),
            std::string::npos);
  // That report failing too: kept for the postmaster, nothing sent.
  std::string id2 = Enqueue("double-bounce@test.example", {Local("failpm")});
  ASSERT_TRUE(WaitFor([&] {
    return Log().find(id2 + ": removed") != std::string::npos;
  })) << Log();
  EXPECT_TRUE(
      fs::Exists(spool_->Path(spool::kPostman, id2 + ".double-bounce")));
  EXPECT_EQ(RouterMessages().size(), 1u);
}

TEST_F(SchedulerDaemonTest, RetryStateSurvivesRestartAndFollowsTheClock) {
  ConfWith("interval=1h retries=\"1 2\"");
  StartScheduler();
  std::string id = Enqueue("alice@test.example", {Local("later")});
  ASSERT_TRUE(WaitFor([&] {
    return Log().find(id + ": to=<later@test.example>") != std::string::npos;
  })) << Log();
  ASSERT_TRUE(
      WaitFor([&] { return fs::Exists(spool_->Path("retry") + "/" + id); }));
  StopScheduler();
  StartScheduler();
  nlohmann::json j = MessageJson(id);
  ASSERT_FALSE(j.is_null()) << Log();
  EXPECT_EQ(j["recipients"][0]["attempts"], 1);
  EXPECT_GT(j["recipients"][0]["next_attempt"].get<int64_t>(),
            ::time(nullptr) + 1800);  // an hour after the try, not now
  EXPECT_EQ(j["recipients"][0]["delay_reason"], "mailbox busy");
  // The clock moves an hour: the second try happens, the next is 2h away.
  auto root = Root();
  ASSERT_TRUE(root);
  ASSERT_TRUE(root->Command("CLOCK ADVANCE 3700").ok());
  ASSERT_TRUE(WaitFor([&] {
    nlohmann::json k = MessageJson(id);
    return !k.is_null() && k["recipients"][0]["attempts"] == 2;
  })) << Log();
  j = MessageJson(id);
  EXPECT_GT(j["recipients"][0]["next_attempt"].get<int64_t>(),
            ::time(nullptr) + 3700 + 5400);
  // Without the test clock the command does not exist.
  auto nobody = admin::AdminClient::Connect(node_);
  ASSERT_TRUE(nobody.ok());
  EXPECT_FALSE((*nobody)->Command("CLOCK ADVANCE 1").ok());
}

TEST_F(SchedulerDaemonTest, DelayWarningThenExpiryBounce) {
  ConfWith("interval=10m warning=4h expiry=1d");
  StartScheduler();
  std::string id = Enqueue("alice@test.example", {Local("later")});
  ASSERT_TRUE(WaitFor([&] {
    return Log().find("status=deferred (mailbox busy)") != std::string::npos;
  })) << Log();
  EXPECT_TRUE(RouterMessages().empty());
  auto root = Root();
  ASSERT_TRUE(root);
  ASSERT_TRUE(root->Command("CLOCK ADVANCE 14500").ok());
  ASSERT_TRUE(WaitFor([&] {
    return RouterMessages().size() == 1 &&
           Log().find(id + ": sender delay notification: ") !=
               std::string::npos;
  })) << Log();
  std::string delay = RouterMessages()[0];
  EXPECT_NE(delay.find("Action: delayed"), std::string::npos) << delay;
  EXPECT_NE(delay.find("Status: 4.2.2"), std::string::npos) << delay;
  EXPECT_NE(delay.find("Will-Retry-Until: "), std::string::npos) << delay;
  EXPECT_NE(delay.find("text/rfc822-headers"), std::string::npos) << delay;
  EXPECT_NE(Log().find(id + ": sender delay notification: "),
            std::string::npos);
  // Only once, even after more tries.
  ASSERT_TRUE(root->Command("RUNQ ID " + id).ok());
  ASSERT_TRUE(root->Command("CLOCK ADVANCE 86400").ok());
  ASSERT_TRUE(WaitFor([&] {
    return Log().find(id + ": removed") != std::string::npos;
  })) << Log();
  auto all = RouterMessages();
  ASSERT_EQ(all.size(), 2u) << Log();
  std::string bounce = all[0] == delay ? all[1] : all[0];
  EXPECT_NE(bounce.find("Action: failed"), std::string::npos) << bounce;
  EXPECT_NE(bounce.find("Status: 4.4.7"), std::string::npos) << bounce;
  EXPECT_NE(Log().find("status=expired (expired: mailbox busy)"),
            std::string::npos)
      << Log();
}

TEST_F(SchedulerDaemonTest, MaxringBoundsConcurrentAgentsAndRingIsFedOn) {
  ConfWith("maxring=2 overfeed=0");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    mail::ControlRecipient r = Local("hold" + std::to_string(i));
    ids.push_back(Enqueue("alice@test.example", {r}));
  }
  StartScheduler();
  std::string busy = home_ + "/busy";
  ASSERT_TRUE(WaitFor([&] {
    auto n = fs::ListDir(busy);
    return n.ok() && n->size() == 2;
  })) << Log();
  auto c = admin::AdminClient::Connect(node_);
  ASSERT_TRUE(c.ok());
  auto counters = (*c)->Command("SHOW COUNTERS");
  ASSERT_TRUE(counters.ok());
  EXPECT_NE(std::find(counters->begin(), counters->end(), "agents.running 2"),
            counters->end());
  ASSERT_TRUE(fs::WriteFileAtomically(home_, "release", "").ok());
  // The two agents are fed the other three threads of their ring.
  ASSERT_TRUE(WaitFor([&] {
    std::string log = Log();
    for (const auto& id : ids) {
      if (log.find(id + ": to=<hold") == std::string::npos) return false;
    }
    return true;
  })) << Log();
  auto conc = fs::ReadFile(home_ + "/concurrency");
  ASSERT_TRUE(conc.ok());
  for (auto n : Split(*conc, '\n')) {
    if (!n.empty()) {
      EXPECT_LE(std::stoi(std::string(n)), 2);
    }
  }
  counters = (*c)->Command("SHOW COUNTERS");
  ASSERT_TRUE(counters.ok());
  EXPECT_NE(std::find(counters->begin(), counters->end(), "agents.started 2"),
            counters->end());
}

TEST_F(SchedulerDaemonTest, BigDestinationDoesNotStarveASmallOne) {
  ConfWith("maxring=1 overfeed=0");
  mail::ControlRecipient big = Local("okbig");
  big.host = "big";
  for (int i = 0; i < 30; ++i) Enqueue("alice@test.example", {big});
  mail::ControlRecipient small = Local("oksmall");
  small.host = "small";
  std::string sid = Enqueue("alice@test.example", {small});
  StartScheduler();
  ASSERT_TRUE(WaitFor([&] {
    return Log().find(sid + ": removed") != std::string::npos;
  })) << Log();
  // Result lines in order: the small destination's comes second, right
  // after the big one's first job, not after its 30 messages.
  std::vector<std::string> results;
  std::string log = Log();
  for (auto line : Split(log, '\n')) {
    if (line.find(": to=<") != std::string_view::npos)
      results.emplace_back(line);
  }
  ASSERT_GE(results.size(), 2u);
  EXPECT_NE(results[1].find("oksmall@"), std::string::npos) << Log();
}

TEST_F(SchedulerDaemonTest, KillThreadAndEventStream) {
  StartScheduler();
  auto watch = Root();
  ASSERT_TRUE(watch);
  ASSERT_TRUE(watch->WatchEvents().ok());
  std::string id =
      Enqueue("alice@test.example", {Local("later"), Local("okfine")});
  std::vector<std::string> events;
  while (events.size() < 2) {
    auto e = watch->NextEvent();
    ASSERT_TRUE(e.ok()) << e.status();
    events.push_back(*e);
  }
  for (const auto& e : events) EXPECT_EQ(e.rfind(id + ": to=<", 0), 0u) << e;
  auto root = Root();
  ASSERT_TRUE(root);
  auto k = root->Command("KILL THREAD local later");
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ((*k)[0], "thread local/later: 1 recipients deleted");
  auto e = watch->NextEvent();
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(*e, id + ": removed");
  EXPECT_TRUE(RouterMessages().empty());  // no DSN for deleted recipients
}

TEST_F(SchedulerDaemonTest, MissingAgentKeepsMessageQueuedAndMailqShowsIt) {
  StartScheduler();
  mail::ControlRecipient r;
  r.channel = "smtp";
  r.host = "remote.example";
  r.user = "bob@remote.example";
  r.orig = "bob@remote.example";
  std::string id = Enqueue("alice@test.example", {r});
  ASSERT_TRUE(WaitFor([&] {
    return Log().find(id + ": to=<bob@remote.example>") != std::string::npos;
  })) << Log();
  EXPECT_NE(Log().find("status=deferred (transport agent "), std::string::npos)
      << Log();
  EXPECT_TRUE(fs::Exists(spool_->Path(spool::kQueue, id)));
  EXPECT_TRUE(fs::Exists(spool_->Path(spool::kTransport, id)));

  std::string mailq = std::string(ZM_BIN_DIR) + "/mailq";
  RunResult list = RunProgram({mailq, "-C", home_});
  EXPECT_EQ(list.status, 0) << list.out;
  EXPECT_NE(
      list.out.find("smtp/remote.example:\n  " + id + ": (1 try, expires in "),
      std::string::npos)
      << list.out;
  EXPECT_NE(list.out.find("zm-no-such-agent"), std::string::npos) << list.out;

  RunResult q = RunProgram({mailq, "-C", home_, "-Q"});
  EXPECT_EQ(q.status, 0) << q.out;
  EXPECT_NE(q.out.find("smtp/*/0\nsmtp/remote.example/0"), std::string::npos)
      << q.out;
  EXPECT_NE(q.out.find("Msgs in 1 out 0 stored 1"), std::string::npos) << q.out;

  RunResult js = RunProgram({mailq, "-C", home_, "--json"});
  EXPECT_EQ(js.status, 0) << js.out;
  auto j = nlohmann::json::parse(js.out.substr(0, js.out.find('\n')), nullptr,
                                 false);
  ASSERT_FALSE(j.is_discarded()) << js.out;
  EXPECT_EQ(j["queue_id"], id);
  EXPECT_EQ(j["node"], "t1");
  EXPECT_EQ(j["queue_name"], "deferred");
  EXPECT_EQ(j["sender"], "alice@test.example");
  EXPECT_EQ(j["recipients"][0]["address"], "bob@remote.example");
  EXPECT_NE(j["recipients"][0]["delay_reason"].get<std::string>().find(
                "zm-no-such-agent"),
            std::string::npos);

  // ETRN for that domain is accepted (the agent is still missing).
  auto c = admin::AdminClient::Connect(node_);
  ASSERT_TRUE(c.ok()) << c.status();
  auto etrn = (*c)->Command("ETRN remote.example");
  ASSERT_TRUE(etrn.ok()) << etrn.status();
  ASSERT_EQ(etrn->size(), 1u);
  EXPECT_EQ((*etrn)[0],
            "ETRN remote.example: 1 recipients scheduled for delivery");
  EXPECT_FALSE((*c)->Command("KILL MSG " + id).ok());  // nobody lacks KILL
}

// A thread lists (and counts) only messages with something left to do
// there: once ok1 is delivered, local/ok1 is gone from the views although
// the message still waits for later1 on local/later1.
TEST_F(SchedulerDaemonTest, ThreadsHoldOnlyMessagesWithWorkLeftThere) {
  StartScheduler();
  std::string id = Enqueue("alice@test.example",
                           {Local("ok1"), Local("later1"), Local("ok2")});
  ASSERT_TRUE(WaitFor([&] {
    std::string log = Log();
    return log.find(id + ": to=<ok1@test.example>") != std::string::npos &&
           log.find(id + ": to=<ok2@test.example>") != std::string::npos &&
           log.find(id + ": to=<later1@test.example>") != std::string::npos;
  })) << Log();
  auto c = admin::AdminClient::Connect(node_);
  ASSERT_TRUE(c.ok()) << c.status();
  auto threads = (*c)->Command("SHOW QUEUE THREADS");
  ASSERT_TRUE(threads.ok()) << threads.status();
  std::string text;
  for (const auto& l : *threads) text += l + "\n";
  EXPECT_NE(text.find("local/later1/"), std::string::npos) << text;
  EXPECT_EQ(text.find("local/ok1/"), std::string::npos) << text;
  EXPECT_EQ(text.find("local/ok2/"), std::string::npos) << text;
  auto short_q = (*c)->Command("SHOW QUEUE SHORT");
  ASSERT_TRUE(short_q.ok()) << short_q.status();
  std::string summary;
  for (const auto& l : *short_q) summary += l + "\n";
  EXPECT_NE(summary.find("Msgs: 1 Thrs: 1 Rcpnts: 1 "), std::string::npos)
      << summary;
  auto done_here = (*c)->Command("SHOW THREAD local ok1");
  ASSERT_TRUE(done_here.ok()) << done_here.status();
  EXPECT_TRUE(done_here->empty()) << (*done_here)[0];
  auto left = (*c)->Command("SHOW THREAD local later1");
  ASSERT_TRUE(left.ok()) << left.status();
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].rfind(id + "\t", 0), 0u) << (*left)[0];
  // ETRN counts what is left (later1), and delivery of the rest goes on.
  auto etrn = (*c)->Command("ETRN later1");
  ASSERT_TRUE(etrn.ok()) << etrn.status();
  EXPECT_EQ((*etrn)[0], "ETRN later1: 1 recipients scheduled for delivery");
}

TEST_F(SchedulerDaemonTest, ReloadRematchesThreadsAndRunqDelivers) {
  StartScheduler();
  mail::ControlRecipient r;
  r.channel = "smtp";
  r.host = "remote.example";
  r.user = "okbob@remote.example";
  r.orig = r.user;
  std::string id = Enqueue("alice@test.example", {r});
  ASSERT_TRUE(WaitFor([&] {
    return Log().find("status=deferred (transport agent ") != std::string::npos;
  })) << Log();
  // A broken file is refused and the old configuration stays.
  Write("scheduler.conf", "*/*\n  bogus=1\n");
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(WaitFor(
      [&] { return Log().find("reload refused") != std::string::npos; }));
  std::string ta = std::string(ZM_TESTDATA) + "/fake_ta.py";
  Write("scheduler.conf",
        "PARAMauthfile = \"$MAILVAR/scheduler.auth\"\n*/*\n"
        "    command=\"" +
            ta + "\"\n");
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(WaitFor([&] {
    return Log().find("configuration reloaded") != std::string::npos;
  })) << Log();
  auto c = admin::AdminClient::Connect(node_);
  ASSERT_TRUE(c.ok()) << c.status();
  auto runq = (*c)->Command("RUNQ ID " + id);
  ASSERT_TRUE(runq.ok()) << runq.status();
  ASSERT_TRUE(WaitFor([&] {
    return Log().find(id + ": removed") != std::string::npos;
  })) << Log();
  EXPECT_NE(Log().find("to=<okbob@remote.example>, relay=local"),
            std::string::npos);
}

TEST_F(SchedulerDaemonTest, AdminLoginRefusesWrongPassword) {
  StartScheduler();
  auto bad = admin::AdminClient::Connect(node_, "nobody", "wrong");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kPermissionDenied);
  auto unknown = admin::AdminClient::Connect(node_, "root", "nobody");
  EXPECT_FALSE(unknown.ok());
  auto good = admin::AdminClient::Connect(node_);
  ASSERT_TRUE(good.ok()) << good.status();
  auto counters = (*good)->Command("SHOW COUNTERS");
  ASSERT_TRUE(counters.ok());
  EXPECT_FALSE(counters->empty());
  auto unknown_cmd = (*good)->Command("FROB");
  EXPECT_FALSE(unknown_cmd.ok());
  RunResult r = RunProgram(
      {std::string(ZM_BIN_DIR) + "/mailq", "-C", home_, "-U", "nobody/wrong"});
  EXPECT_EQ(r.status, 77) << r.out;
}

TEST_F(SchedulerDaemonTest, MalformedControlFileIsQuarantined) {
  StartScheduler();
  std::string id = "0GC4H8WY3TQ2K7PX-t1";
  ASSERT_TRUE(fs::WriteFileAtomically(spool_->Path(spool::kTransport), id,
                                      "zmnode-control 1\ni " + id + "\n")
                  .ok());
  ASSERT_TRUE(WaitFor([&] {
    return fs::Exists(spool_->Path(spool::kPostman, id + ".malformed"));
  })) << Log();
  EXPECT_FALSE(fs::Exists(spool_->Path(spool::kTransport, id)));
}

TEST_F(SchedulerDaemonTest, MailqWithoutSchedulerExits69) {
  std::string mailq = std::string(ZM_BIN_DIR) + "/mailq";
  RunResult r = RunProgram({mailq, "-C", home_});
  EXPECT_EQ(r.status, 69) << r.out;
  EXPECT_NE(r.out.find("scheduler is not running"), std::string::npos) << r.out;
  RunResult ss = RunProgram({mailq, "-C", home_, "-ss"});
  EXPECT_EQ(ss.status, 0) << ss.out;
  EXPECT_NE(ss.out.find("scheduler"), std::string::npos) << ss.out;
}

TEST_F(SchedulerDaemonTest, BadConfigRefusesToStart) {
  Write("scheduler.conf", "*/*\n  interval=1m\n  frobnicate=2\n");
  RunResult r =
      RunProgram({std::string(ZM_BIN_DIR) + "/scheduler", "-C", home_});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("scheduler.conf:3: unknown parameter 'frobnicate'"),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace zm::scheduler
