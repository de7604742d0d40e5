// Runs the real scheduler binary on a throw-away node with a fake transport
// agent, and the real mailq against it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

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
    Write("scheduler.auth", "nobody:nobody:SNMP QQ TT ETRN:[127.0.0.1]/32\n");
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
      std::string bin = std::string(ZM_BIN_DIR) + "/scheduler";
      ::execl(bin.c_str(), "scheduler", "-C", home_.c_str(), nullptr);
      _exit(127);
    }
    ASSERT_TRUE(WaitFor([&] {
      return fs::Exists(node_.pid_file("scheduler"));
    })) << Log();
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

TEST_F(SchedulerDaemonTest, DoubleBounceGoesToPostman) {
  StartScheduler();
  std::string id = Enqueue("", {Local("failuser")});
  ASSERT_TRUE(WaitFor([&] {
    return Log().find(id + ": removed") != std::string::npos;
  })) << Log();
  EXPECT_TRUE(fs::Exists(spool_->Path(spool::kPostman, id + ".double-bounce")));
  EXPECT_TRUE(fs::ListDir(spool_->Path(spool::kRouter))->empty());
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
