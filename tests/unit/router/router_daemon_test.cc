// Starts the real `router` binary on a throw-away node and watches what it
// does with the spool.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mail/control.h"
#include "node/mail/queue_id.h"
#include "node/relations/newdb.h"
#include "node/spool/spool.h"
#include "tests/unit/router/test_node.h"
#include "tests/unit/testing/wait.h"

namespace zm::router {
namespace {

using testutil::WaitFor;

using ::testing::HasSubstr;
using zm::test::TestNode;

class RouterDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    t_.Append("etc/aliases", "team: root, bob@remote.example\n");
    ASSERT_TRUE(relations::NewDb(t_.node(), "", nullptr).ok());
    spool_ = std::make_unique<spool::Spool>(t_.node().spool(), "t1");
    ASSERT_TRUE(spool_->CreateLayout().ok());
  }
  void TearDown() override { Stop(); }

  void Start() {
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::execl(ZM_ROUTER_BIN, "router", "-C", t_.node().home.c_str(), "-n", "2",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ASSERT_TRUE(WaitFor([&] {
      return fs::Exists(t_.node().pid_file("router"));
    })) << TestNode::Read(t_.node().maillog());
  }
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  std::string Submit(const std::string& sender,
                     const std::vector<std::string>& rcpts) {
    mail::Envelope env;
    env.sender = sender;
    for (const auto& r : rcpts) env.recipients.push_back({r, "", ""});
    env.recipients.front().notify = "SUCCESS,FAILURE";
    env.recipients.front().orcpt = "rfc822;" + rcpts.front();
    auto sub = spool_->Begin(env);
    EXPECT_TRUE(sub.ok());
    EXPECT_TRUE((*sub)->Append("Subject: hi\n\nbody\n").ok());
    EXPECT_TRUE((*sub)->Commit().ok());
    return (*sub)->queue_id();
  }

  std::string P(std::string_view folder, const std::string& name) {
    return spool_->Path(folder, name);
  }

  TestNode t_;
  std::unique_ptr<spool::Spool> spool_;
  pid_t pid_ = -1;
};

TEST_F(RouterDaemonTest, RoutesAMessageIntoQueueAndTransport) {
  Start();
  std::string id = Submit("alice@example.org",
                          {"team", "nosuchuser12345", "x@remote.example"});
  ASSERT_TRUE(WaitFor([&] { return fs::Exists(P(spool::kTransport, id)); }))
      << TestNode::Read(t_.node().maillog());
  EXPECT_TRUE(fs::Exists(P(spool::kQueue, id)));
  EXPECT_FALSE(fs::Exists(P(spool::kRouter, id)));
  EXPECT_FALSE(fs::Exists(spool_->StagingPath(spool::kTmp, id)));
  EXPECT_TRUE(spool_->ListStaged(spool::kTmp)->empty());

  auto text = fs::ReadFile(P(spool::kTransport, id));
  ASSERT_TRUE(text.ok());
  auto cf = mail::ParseControl(*text);
  ASSERT_TRUE(cf.ok()) << cf.status() << "\n" << *text;
  EXPECT_EQ(cf->queue_id, id);
  EXPECT_EQ(cf->sender, "alice@example.org");
  EXPECT_EQ(cf->error_to, "alice@example.org");
  auto msg = fs::ReadFile(P(spool::kQueue, id));
  ASSERT_TRUE(msg.ok());
  EXPECT_EQ(msg->substr(cf->body_offset), "Subject: hi\n\nbody\n");
  ASSERT_EQ(cf->recipients.size(), 4u) << *text;
  const auto& r = cf->recipients;
  EXPECT_EQ(r[0].channel, "local");
  EXPECT_EQ(r[0].host, "root");
  EXPECT_EQ(r[0].user, "root");
  EXPECT_EQ(r[0].orig, "team");
  EXPECT_EQ(r[0].notify, "SUCCESS,FAILURE");
  EXPECT_EQ(r[0].orcpt, "rfc822;team");
  EXPECT_EQ(r[1].channel, "smtp");
  EXPECT_EQ(r[1].host, "remote.example");
  EXPECT_EQ(r[1].user, "bob@remote.example");
  EXPECT_EQ(r[1].orig, "team");
  EXPECT_EQ(r[2].channel, "error");
  EXPECT_EQ(r[2].host, "nouser");
  EXPECT_EQ(r[2].diag, "user unknown");
  EXPECT_EQ(r[3].user, "x@remote.example");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r[i].index, i);

  // The routed line follows the batch's second syncfs, so it may come a
  // moment after transport/<id> appears.
  std::string routed =
      id + ": from=<alice@example.org>, size=18, nrcpt=4 (routed)";
  EXPECT_TRUE(WaitFor([&] {
    return TestNode::Read(t_.node().maillog()).find(routed) !=
           std::string::npos;
  })) << TestNode::Read(t_.node().maillog());
  std::string log = TestNode::Read(t_.node().maillog());
  EXPECT_THAT(log,
              HasSubstr("warning: " + id +
                        ": to=<nosuchuser12345>, orig_to=<nosuchuser12345>: "
                        "user unknown (error/nouser)"));
  EXPECT_EQ(WEXITSTATUS(Stop()), 0);
  EXPECT_FALSE(fs::Exists(t_.node().pid_file("router")));
}

// Two lists with different owners and a plain recipient in one message:
// the plain one keeps the poster as sender; each list goes back to the
// router (hold owner:) to be routed with its owner as sender, where it is
// alone and the owner becomes the control file's sender.
TEST_F(RouterDaemonTest, ListsWithOtherOwnersAreSplitOff) {
  t_.Append("etc/aliases",
            "l1: root\nowner-l1: root\nl2: root, c@remote.example\n"
            "owner-l2: bob@remote.example\n");
  ASSERT_TRUE(relations::NewDb(t_.node(), "aliases", nullptr).ok());
  Start();
  std::string id =
      Submit("alice@example.org", {"l1", "x@remote.example", "l2"});
  ASSERT_TRUE(WaitFor([&] { return fs::Exists(P(spool::kTransport, id)); }))
      << TestNode::Read(t_.node().maillog());
  auto text = fs::ReadFile(P(spool::kTransport, id));
  ASSERT_TRUE(text.ok());
  auto cf = mail::ParseControl(*text);
  ASSERT_TRUE(cf.ok()) << cf.status() << "\n" << *text;
  EXPECT_EQ(cf->sender, "alice@example.org");
  ASSERT_EQ(cf->recipients.size(), 3u) << *text;
  const auto& r = cf->recipients;
  EXPECT_EQ(r[0].channel, "hold");
  EXPECT_EQ(r[0].host, "owner:owner-l1@example.net");
  EXPECT_EQ(r[0].user, "l1");
  EXPECT_EQ(r[0].notify, "SUCCESS,FAILURE");  // kept for the hand-back
  EXPECT_EQ(r[0].orcpt, "rfc822;l1");
  EXPECT_EQ(r[1].channel, "smtp");
  EXPECT_EQ(r[1].user, "x@remote.example");
  EXPECT_EQ(r[2].channel, "hold");
  EXPECT_EQ(r[2].host, "owner:owner-l2@example.net");
  EXPECT_EQ(r[2].user, "l2");

  // What the hold agent hands back: l2 alone, from its owner.
  std::string back = Submit("owner-l2@example.net", {"l2"});
  ASSERT_TRUE(WaitFor([&] { return fs::Exists(P(spool::kTransport, back)); }))
      << TestNode::Read(t_.node().maillog());
  auto t2 = fs::ReadFile(P(spool::kTransport, back));
  ASSERT_TRUE(t2.ok());
  auto cf2 = mail::ParseControl(*t2);
  ASSERT_TRUE(cf2.ok());
  EXPECT_EQ(cf2->sender, "owner-l2@example.net");
  EXPECT_EQ(cf2->error_to, "owner-l2@example.net");
  ASSERT_EQ(cf2->recipients.size(), 2u) << *t2;
  EXPECT_EQ(cf2->recipients[0].channel, "local");
  EXPECT_EQ(cf2->recipients[1].user, "c@remote.example");

  // Only lists, all with one owner: that owner is the sender, no split.
  std::string one = Submit("alice@example.org", {"l1", "l1@example.net"});
  ASSERT_TRUE(WaitFor([&] { return fs::Exists(P(spool::kTransport, one)); }));
  auto t3 = fs::ReadFile(P(spool::kTransport, one));
  ASSERT_TRUE(t3.ok());
  auto cf3 = mail::ParseControl(*t3);
  ASSERT_TRUE(cf3.ok());
  EXPECT_EQ(cf3->sender, "owner-l1@example.net");
  EXPECT_THAT(*t3, ::testing::Not(HasSubstr("owner:")));
}

TEST_F(RouterDaemonTest, NullSenderHasNoErrorAddressAndManyMessagesFlow) {
  Start();
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(Submit("", {"postmaster"}));
  for (const auto& id : ids) {
    ASSERT_TRUE(WaitFor([&] { return fs::Exists(P(spool::kTransport, id)); }))
        << id;
  }
  auto cf = mail::ParseControl(*fs::ReadFile(P(spool::kTransport, ids[0])));
  ASSERT_TRUE(cf.ok());
  EXPECT_EQ(cf->sender, "");
  EXPECT_EQ(cf->error_to, "");
  EXPECT_TRUE(fs::ListDir(P(spool::kRouter, ""))->empty());
}

TEST_F(RouterDaemonTest, MalformedFilesGoToPostman) {
  Start();
  std::string bad = mail::NewQueueId("t1");
  t_.Write("spool/tmp/x", "this is not a message file\n");
  ASSERT_EQ(
      ::rename(t_.Path("spool/tmp/x").c_str(), P(spool::kRouter, bad).c_str()),
      0);
  std::string strange = "not-a-queue-id";
  t_.Write("spool/router/" + strange, "junk");
  ASSERT_TRUE(WaitFor([&] {
    return fs::Exists(P(spool::kPostman, bad + ".malformed")) &&
           fs::Exists(P(spool::kPostman, strange + ".badname"));
  })) << TestNode::Read(t_.node().maillog());
  EXPECT_FALSE(fs::Exists(P(spool::kRouter, bad)));
  EXPECT_FALSE(fs::Exists(P(spool::kTransport, bad)));
  // The log line follows the rename into postman/.
  std::string warning =
      "warning: " + bad + ": moved to postman/" + bad + ".malformed";
  EXPECT_TRUE(WaitFor([&] {
    return TestNode::Read(t_.node().maillog()).find(warning) !=
           std::string::npos;
  })) << TestNode::Read(t_.node().maillog());
  // The router is still alive and routing.
  std::string id = Submit("a@b.example", {"root"});
  EXPECT_TRUE(WaitFor([&] { return fs::Exists(P(spool::kTransport, id)); }));
}

TEST_F(RouterDaemonTest, TruncatedMessageGoesToPostman) {
  std::string id = Submit("a@b.example", {"root"});
  std::string path = P(spool::kRouter, id);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(
                                         std::filesystem::file_size(path) - 3)),
            0);
  Start();
  EXPECT_TRUE(WaitFor([&] {
    return fs::Exists(P(spool::kPostman, id + ".truncated"));
  })) << TestNode::Read(t_.node().maillog());
}

TEST_F(RouterDaemonTest, StartupRecoversUnscheduledAndLeftovers) {
  // A crash between the two renames: queue/<id> without transport/<id>,
  // and a half-written control file in tmp/.
  std::string id = Submit("a@b.example", {"root"});
  ASSERT_EQ(
      ::rename(P(spool::kRouter, id).c_str(), P(spool::kQueue, id).c_str()), 0);
  // One at the top of tmp/, where releases before the hashed staging
  // folders wrote them, and one in its subfolder.
  t_.Write("spool/tmp/" + id, "zmnode-control 1\ni " + id + "\n");
  std::string stale = spool_->StagingPath(spool::kTmp, "0STALE-t1");
  ASSERT_TRUE(fs::WriteFileAtomically(stale.substr(0, stale.rfind('/')),
                                      "0STALE-t1", "zmnode-control 1\n")
                  .ok());
  // A scheduled message must stay where it is.
  std::string done = Submit("a@b.example", {"root"});
  ASSERT_EQ(
      ::rename(P(spool::kRouter, done).c_str(), P(spool::kQueue, done).c_str()),
      0);
  t_.Write("spool/transport/" + done, "scheduler's\n");

  Start();
  ASSERT_TRUE(WaitFor([&] { return fs::Exists(P(spool::kTransport, id)); }));
  auto cf = mail::ParseControl(*fs::ReadFile(P(spool::kTransport, id)));
  ASSERT_TRUE(cf.ok()) << cf.status();
  EXPECT_EQ(cf->recipients.at(0).user, "root");
  EXPECT_TRUE(fs::Exists(P(spool::kQueue, id)));
  EXPECT_EQ(*fs::ReadFile(P(spool::kTransport, done)), "scheduler's\n");
  EXPECT_TRUE(fs::Exists(P(spool::kQueue, done)));
  EXPECT_FALSE(fs::Exists(P(spool::kTmp, id)));
  EXPECT_FALSE(fs::Exists(stale));
  EXPECT_THAT(
      TestNode::Read(t_.node().maillog()),
      HasSubstr(id +
                ": unscheduled message moved from queue/ back to router/"));
}

TEST_F(RouterDaemonTest, NewAliasesArePickedUpWithoutRestart) {
  Start();
  t_.Append("etc/aliases", "sales: root\n");
  ASSERT_TRUE(relations::NewDb(t_.node(), "aliases", nullptr).ok());
  std::string id = Submit("a@b.example", {"sales"});
  ASSERT_TRUE(WaitFor([&] { return fs::Exists(P(spool::kTransport, id)); }));
  auto cf = mail::ParseControl(*fs::ReadFile(P(spool::kTransport, id)));
  ASSERT_TRUE(cf.ok());
  EXPECT_EQ(cf->recipients.at(0).channel, "local");
  EXPECT_EQ(cf->recipients.at(0).user, "root");
}

TEST(RouterStartTest, RefusesToStartWithoutCompiledRelations) {
  TestNode t;
  std::string cmd = StrCat(ZM_ROUTER_BIN, " -C ", t.node().home, " 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[1024];
  std::string out;
  while (size_t n = ::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_THAT(out, HasSubstr("zmailer newdb"));
}

TEST(RouterStartTest, RefusesBadConfigWithFileLine) {
  TestNode t;
  t.Append("etc/dbases.conf", "junk line\n");
  std::string cmd = StrCat(ZM_ROUTER_BIN, " -C ", t.node().home, " 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[1024];
  std::string out;
  while (size_t n = ::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(WEXITSTATUS(::pclose(p)), 1);
  EXPECT_THAT(out, HasSubstr(t.Path("etc/dbases.conf") + ":"));
}

}  // namespace
}  // namespace zm::router
