// The supervisor through the real zmailer binary: start, status, restart
// on death, reload, stop, kill, freeze. The node's programs are stand-ins
// (standin_main.cc on the real zm::Daemon skeleton) linked beside a copy
// of zmailer, so these tests do not depend on the real daemons; one test
// runs the real daemons when they are built.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "node/daemon/health.h"
#include "tests/unit/zmailer/zmailer_test_util.h"

namespace zm::zmailer {
namespace {

using ztest::Alive;
using ztest::ReadAll;
using ztest::ReadPid;
using ztest::RunProgram;
using ztest::WaitFor;

namespace stdfs = std::filesystem;

// Generous bounds: the machine may be busy; the tests only wait this long
// when something is broken.
constexpr int kWaitMs = 30000;

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = ztest::MakeTempDir();
    std::string bin = tmp_ + "/bin";
    stdfs::create_directories(bin);
    // A copy, not a link: zmailer finds its programs beside its own
    // (resolved) executable.
    zmailer_ = bin + "/zmailer";
    stdfs::copy_file(std::string(ZM_BIN_DIR) + "/zmailer", zmailer_);
    for (const auto& p : health::DaemonPrograms()) {
      stdfs::create_symlink(ZM_STANDIN, bin + "/" + p);
    }
    // A node made by init also runs its cluster agent (solo) and admind.
    for (const char* p : {"clusterd", "admind"}) {
      stdfs::create_symlink(ZM_STANDIN, bin + "/" + p);
    }
    node_ = tmp_ + "/node";
    auto r =
        RunProgram({zmailer_, "init", node_, "--node-id", "t1", "--smtp-port",
                    std::to_string(ztest::FreeLoopbackPort())});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
  }

  void TearDown() override {
    Z({"kill"});
    if (HasFailure()) {
      std::cerr << "---- maillog ----\n" << ReadAll(node_ + "/log/maillog");
    }
    ztest::RemoveTree(tmp_);
  }

  ztest::RunResult Z(std::vector<std::string> args) {
    std::vector<std::string> argv = {zmailer_, "-C", node_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv);
  }

  int Pid(const std::string& program) {
    return ReadPid(node_ + "/run/" + program + ".pid");
  }
  std::string Log() { return ReadAll(node_ + "/log/maillog"); }

  void ExpectAllRunning() {
    EXPECT_TRUE(Alive(Pid("zmailer")));
    for (const auto& p : health::DaemonPrograms()) {
      EXPECT_TRUE(Alive(Pid(p))) << p;
    }
  }

  std::string tmp_, node_, zmailer_;
};

TEST_F(SupervisorTest, StartStatusStop) {
  auto r = Z({"start"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("router"), std::string::npos) << r.out;
  ExpectAllRunning();
  std::vector<int> pids;
  for (const auto& p : health::DaemonPrograms()) pids.push_back(Pid(p));
  int supervisor = Pid("zmailer");

  r = Z({"status"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("(frozen: no)"), std::string::npos) << r.out;

  r = Z({"start"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("already runs"), std::string::npos) << r.err;

  r = Z({"stop"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(Alive(supervisor));
  for (int pid : pids) EXPECT_FALSE(Alive(pid)) << pid;
  EXPECT_FALSE(stdfs::exists(node_ + "/run/zmailer.pid"));
  EXPECT_EQ(Z({"status"}).code, 3);
  // Stopped in reverse order of start.
  std::string log = Log();
  auto sched = log.find("zmnode/scheduler[" + std::to_string(pids[0]) +
                        "]: stand-in stopping");
  auto smtp = log.find("zmnode/smtpserver[" + std::to_string(pids[2]) +
                       "]: stand-in stopping");
  ASSERT_NE(sched, std::string::npos) << log;
  ASSERT_NE(smtp, std::string::npos) << log;
  EXPECT_LT(smtp, sched);

  r = Z({"stop"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("not running"), std::string::npos) << r.out;
}

TEST_F(SupervisorTest, RestartsAProgramThatDies) {
  ASSERT_EQ(Z({"start"}).code, 0);
  int old = Pid("router");
  ASSERT_TRUE(Alive(old));
  ASSERT_EQ(::kill(old, SIGKILL), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        int now = Pid("router");
        return now != 0 && now != old && Alive(now);
      },
      kWaitMs))
      << Log();
  std::string want = "warning: router (pid " + std::to_string(old) +
                     ") was killed by signal 9";
  EXPECT_NE(Log().find(want), std::string::npos) << Log();
  EXPECT_NE(Log().find("restarting in 1s"), std::string::npos);
  EXPECT_EQ(Z({"status"}).code, 0);
  EXPECT_EQ(Z({"stop"}).code, 0);
}

TEST_F(SupervisorTest, AConfigErrorFailsStartAndShowsWhy) {
  { std::ofstream(node_ + "/etc/fail-smtpserver") << "x"; }
  auto r = Z({"start"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("smtpserver failed to start (exited with status 1)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("smtpserver.conf:3: unknown key 'bogus'"),
            std::string::npos)
      << r.err;
  // Nothing is left running.
  EXPECT_EQ(Z({"status"}).code, 3) << Z({"status"}).out;
  // The supervisor's log line says why, in the program's words.
  EXPECT_NE(Log().find("warning: smtpserver (pid "), std::string::npos);
  EXPECT_NE(Log().find(") exited with status 1 (smtpserver: " + node_ +
                       "/etc/smtpserver.conf:3: unknown key 'bogus')"),
            std::string::npos)
      << Log();

  stdfs::remove(node_ + "/etc/fail-smtpserver");
  EXPECT_EQ(Z({"start"}).code, 0);
  EXPECT_EQ(Z({"stop"}).code, 0);
}

TEST_F(SupervisorTest, FreezeKeepsTheNodeFromStarting) {
  auto r = Z({"freeze"});
  ASSERT_EQ(r.code, 0);
  r = Z({"start"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "zmailer: node is frozen; 'zmailer thaw' first\n");
  r = Z({"status"});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.out.find("(frozen: yes)"), std::string::npos) << r.out;

  ASSERT_EQ(Z({"thaw"}).code, 0);
  ASSERT_EQ(Z({"start"}).code, 0);
  r = Z({"freeze"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("stays up"), std::string::npos) << r.out;
  EXPECT_EQ(Z({"status"}).code, 0);
  ASSERT_EQ(Z({"stop"}).code, 0);
  EXPECT_EQ(Z({"start"}).code, 1);
  EXPECT_EQ(Z({"thaw"}).code, 0);
}

TEST_F(SupervisorTest, ReloadReachesEveryProgram) {
  ASSERT_EQ(Z({"start"}).code, 0);
  auto r = Z({"reload"});
  EXPECT_EQ(r.code, 0) << r.err;
  for (const auto& p : health::DaemonPrograms()) {
    EXPECT_TRUE(
        WaitFor([&] { return stdfs::exists(node_ + "/run/" + p + ".reloads"); },
                kWaitMs))
        << p;
  }
  ExpectAllRunning();
}

TEST_F(SupervisorTest, KillTakesEverythingDownAtOnce) {
  ASSERT_EQ(Z({"start"}).code, 0);
  std::vector<int> pids = {Pid("zmailer")};
  for (const auto& p : health::DaemonPrograms()) pids.push_back(Pid(p));
  auto r = Z({"kill"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("killed zmailer"), std::string::npos) << r.out;
  for (int pid : pids) {
    EXPECT_TRUE(WaitFor([&] { return !Alive(pid); }, kWaitMs)) << pid;
  }
  EXPECT_EQ(Z({"status"}).code, 3);
  // The supervisor's lock went with it: the node starts again.
  EXPECT_EQ(Z({"start"}).code, 0);
  EXPECT_EQ(Z({"stop"}).code, 0);
}

TEST_F(SupervisorTest, StopWithoutSupervisorStopsWhatItLeft) {
  ASSERT_EQ(Z({"start"}).code, 0);
  int supervisor = Pid("zmailer");
  int router = Pid("router");
  ASSERT_EQ(::kill(supervisor, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return !Alive(supervisor); }, kWaitMs));
  EXPECT_EQ(Z({"status"}).code, 1);  // partly up

  // A new supervisor refuses to run beside the orphans.
  auto r = Z({"start"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("without a supervisor"), std::string::npos) << r.err;

  r = Z({"stop"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("no supervisor"), std::string::npos) << r.out;
  EXPECT_FALSE(Alive(router));
  EXPECT_EQ(Z({"status"}).code, 3);
}

TEST_F(SupervisorTest, ForegroundSupervisorMirrorsTheLogAndStopsOnSigterm) {
  std::string out = tmp_ + "/foreground.out";
  int pid = ztest::Spawn({zmailer_, "-C", node_, "start", "-f"}, out);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& p : health::DaemonPrograms()) {
          if (!Alive(Pid(p))) return false;
        }
        return true;
      },
      kWaitMs))
      << ReadAll(out);
  EXPECT_EQ(Pid("zmailer"), pid);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::string text = ReadAll(out);
  EXPECT_NE(text.find("zmnode/zmailer["), std::string::npos) << text;
  // The programs ran with -f: their lines are mirrored too.
  EXPECT_NE(text.find("stand-in ready"), std::string::npos) << text;
  EXPECT_NE(text.find("stopped"), std::string::npos) << text;
  EXPECT_EQ(Z({"status"}).code, 3);
}

// The real node programs, once they are built beside zmailer.
TEST(RealNodeTest, StartRestartStop) {
  for (const auto& p : health::DaemonPrograms()) {
    if (!stdfs::exists(std::string(ZM_BIN_DIR) + "/" + p)) {
      GTEST_SKIP() << p << " is not built yet";
    }
  }
  std::string tmp = ztest::MakeTempDir();
  std::string node = tmp + "/node";
  std::string zmailer = std::string(ZM_BIN_DIR) + "/zmailer";
  auto z = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {zmailer, "-C", node};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv);
  };
  auto r = RunProgram({zmailer, "init", node, "--node-id", "t1", "--smtp-port",
                       std::to_string(ztest::FreeLoopbackPort())});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  r = z({"start"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(z({"status"}).code, 0);

  int old = ReadPid(node + "/run/router.pid");
  ASSERT_TRUE(Alive(old));
  ::kill(old, SIGKILL);
  EXPECT_TRUE(WaitFor(
      [&] {
        int now = ReadPid(node + "/run/router.pid");
        return now != 0 && now != old && Alive(now);
      },
      kWaitMs))
      << ReadAll(node + "/log/maillog");

  r = z({"stop"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(z({"status"}).code, 3);
  if (HasFailure()) {
    z({"kill"});
    std::cerr << ReadAll(node + "/log/maillog");
  }
  ztest::RemoveTree(tmp);
}

}  // namespace
}  // namespace zm::zmailer
