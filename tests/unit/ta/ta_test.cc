// Transport agents, driven like the scheduler drives them: the real
// `mailbox` and `errormail` binaries over pipes, against a throw-away node
// with real spool, control and message files.
#include "node/ta/common/ta.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mail/control.h"
#include "node/mail/envelope.h"
#include "node/spool/spool.h"
#include "node/ta/mailbox/mailbox.h"
#include "tests/unit/testing/queued_message.h"

#ifndef ZM_BIN_DIR
#error "ZM_BIN_DIR must name the build's bin folder"
#endif

namespace zm::ta {
namespace {

namespace stdfs = std::filesystem;

// A guard against a hung agent, not a timing assertion.
constexpr int kReadTimeoutMs = 60000;

std::string Slurp(const std::string& path) {
  auto s = fs::ReadFile(path);
  return s.ok() ? *s : std::string("<missing>");
}

std::string CurrentUser() {
  const struct passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? pw->pw_name : "root";
}

// A transport agent child process with the scheduler's two pipes.
class Agent {
 public:
  Agent(const std::string& program, const std::string& home,
        std::vector<std::string> args, rlim_t fsize_limit = RLIM_INFINITY) {
    int in[2], out[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    std::string path = StrCat(ZM_BIN_DIR, "/", program);
    std::string env_home = "ZMAILER_HOME=" + home;
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(path.c_str()));
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      if (fsize_limit != RLIM_INFINITY) {
        struct rlimit rl = {fsize_limit, fsize_limit};
        ::setrlimit(RLIMIT_FSIZE, &rl);
      }
      ::putenv(const_cast<char*>(env_home.c_str()));
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
  }
  ~Agent() {
    CloseInput();
    if (from_ >= 0) ::close(from_);
    if (pid_ > 0 && !waited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }

  void Send(const std::string& line) {
    std::string l = line + "\n";
    ASSERT_TRUE(fs::WriteAll(to_, l, "agent stdin").ok());
  }
  void CloseInput() {
    if (to_ >= 0) ::close(to_);
    to_ = -1;
  }

  // One line of output without '\n'; nullopt at EOF or after the guard.
  std::optional<std::string> ReadLine() {
    for (;;) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      struct pollfd p = {from_, POLLIN, 0};
      if (::poll(&p, 1, kReadTimeoutMs) <= 0) return std::nullopt;
      char chunk[4096];
      ssize_t n = ::read(from_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  // Reads "#hungry", as the scheduler does before sending a job.
  void ExpectHungry() {
    auto l = ReadLine();
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(*l, "#hungry");
  }

  // The fields of the next result line.
  std::vector<std::string> Result() {
    auto l = ReadLine();
    EXPECT_TRUE(l.has_value());
    if (!l) return {};
    std::vector<std::string> f;
    for (auto p : Split(*l, '\t')) f.emplace_back(p);
    EXPECT_EQ(f.size(), 8u) << *l;
    f.resize(8);
    return f;
  }

  int Wait() {
    int st = 0;
    ::waitpid(pid_, &st, 0);
    waited_ = true;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  bool waited_ = false;
  std::string buf_;
};

class TaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-ta-XXXXXX";
    home_ = ::mkdtemp(tmpl);
    // Reachable for the `nobody` that |command and /file run as under root.
    ::chmod(home_.c_str(), 0755);
    for (auto d : {"etc", "log", "mail", "run"}) {
      ASSERT_TRUE(fs::MakeDirs(home_ + "/" + d).ok());
    }
    out_ = home_ + "/out";
    ASSERT_TRUE(fs::MakeDirs(out_).ok());
    ::chmod(out_.c_str(), 0777);
    ASSERT_TRUE(fs::WriteFileAtomically(home_ + "/etc", "mail.conf",
                                        "hostname=mx1.example.net\n")
                    .ok());
    spool_ = std::make_unique<spool::Spool>(home_ + "/spool", "t1");
    ASSERT_TRUE(spool_->CreateLayout().ok());
    user_ = CurrentUser();
  }
  void TearDown() override { stdfs::remove_all(home_); }

  // Writes a routed message: queue/<id> and transport/<id>, as the router
  // leaves them. Returns the queue id.
  std::string Queue(const std::string& sender,
                    std::vector<mail::ControlRecipient> rcpts,
                    const std::string& message) {
    auto id = testutil::QueueRoutedMessage(*spool_, sender, std::move(rcpts),
                                           message);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  mail::ControlFile Control(const std::string& id) {
    auto text = fs::ReadFile(spool_->Path(spool::kTransport, id));
    EXPECT_TRUE(text.ok());
    auto cf = mail::ParseControl(*text);
    EXPECT_TRUE(cf.ok()) << cf.status();
    return cf.ok() ? *cf : mail::ControlFile{};
  }

  static mail::ControlRecipient Local(const std::string& user,
                                      const std::string& orig) {
    mail::ControlRecipient r;
    r.channel = "local";
    r.host = user;
    r.user = user;
    r.orig = orig;
    return r;
  }
  static mail::ControlRecipient Special(const std::string& host,
                                        const std::string& target,
                                        const std::string& orig) {
    mail::ControlRecipient r;
    r.channel = "local";
    r.host = host;
    r.user = target;
    r.orig = orig;
    return r;
  }

  // Runs one job through a fresh mailbox agent; returns the result fields.
  std::vector<std::string> DeliverOne(const std::string& id,
                                      const std::string& host,
                                      std::vector<std::string> args = {}) {
    Agent a("mailbox", home_, std::move(args));
    a.ExpectHungry();
    a.Send(StrCat(id, "\t", host, "\t0"));
    auto r = a.Result();
    a.ExpectHungry();
    a.CloseInput();
    EXPECT_EQ(a.Wait(), 0);
    return r;
  }

  std::string Mbox() { return home_ + "/mail/" + user_; }
  void ExpectDotlockOfADeadAgentTakenOver(bool reaped);

  std::string home_;
  std::string out_;
  std::string user_;
  std::unique_ptr<spool::Spool> spool_;
};

// --- errormail ---

TEST_F(TaTest, ErrormailFailsEachRecipientWithTheRoutersReason) {
  mail::ControlRecipient a;
  a.channel = "error";
  a.host = "nouser";
  a.user = "ghost@mx1.example.net";
  a.orig = "ghost@mx1.example.net";
  a.diag = "user unknown";
  mail::ControlRecipient b = a;
  b.host = "policy";
  b.diag = "";
  std::string id = Queue("alice@example.org", {a, b}, "Subject: x\n\nhi\n");
  Agent agent("errormail", home_, {});
  agent.ExpectHungry();
  agent.Send(StrCat(id, "\tnouser\t0"));
  auto r0 = agent.Result();
  EXPECT_EQ(r0[0], id);
  EXPECT_EQ(r0[1], "0");
  EXPECT_EQ(r0[2], "error");
  EXPECT_EQ(r0[3], "5.1.1");
  EXPECT_EQ(r0[7], "user unknown");
  agent.ExpectHungry();
  agent.Send(StrCat(id, "\tpolicy\t1"));
  auto r1 = agent.Result();
  EXPECT_EQ(r1[2], "error");
  EXPECT_EQ(r1[3], "5.0.0");
  agent.ExpectHungry();
  agent.CloseInput();
  EXPECT_EQ(agent.Wait(), 0);

  mail::ControlFile cf = Control(id);
  ASSERT_EQ(cf.results.size(), 2u);
  EXPECT_EQ(cf.results[0].index, 0);
  EXPECT_EQ(cf.results[0].status, mail::ResultStatus::kFailed);
  EXPECT_EQ(cf.results[0].dsn, "5.1.1");
  EXPECT_EQ(cf.results[0].diag, "user unknown");
  EXPECT_EQ(cf.results[1].dsn, "5.0.0");
}

TEST_F(TaTest, ErrormailRefusesUnknownArguments) {
  Agent agent("errormail", home_, {"-x"});
  EXPECT_EQ(agent.Wait(), 64);
}

// --- the agent loop ---

TEST_F(TaTest, MissingFilesAndBadIndexesAreDeferredNotFatal) {
  Agent agent("mailbox", home_, {});
  agent.ExpectHungry();
  agent.Send("0GC4H8WY3TQ2K7PX-t1\troot\t0,3");  // no such message
  auto r = agent.Result();
  EXPECT_EQ(r[1], "0");
  EXPECT_EQ(r[2], "deferred");
  EXPECT_NE(r[7].find("control file"), std::string::npos) << r[7];
  EXPECT_EQ(agent.Result()[1], "3");
  agent.ExpectHungry();
  agent.Send("../../etc/passwd\troot\t0");  // not a queue id
  EXPECT_EQ(agent.Result()[2], "deferred");
  agent.ExpectHungry();
  std::string id = Queue("a@b", {Local(user_, user_ + "@mx1")}, "x\n");
  agent.Send(StrCat(id, "\t", user_, "\t5"));  // index out of range
  auto r5 = agent.Result();
  EXPECT_EQ(r5[2], "deferred");
  EXPECT_NE(r5[7].find("no recipient 5"), std::string::npos);
  agent.ExpectHungry();
  agent.CloseInput();
  EXPECT_EQ(agent.Wait(), 0);
  EXPECT_EQ(Control(id).results.size(), 0u);
}

TEST_F(TaTest, TruncatedMessageFileIsDeferred) {
  std::string id = Queue("a@b", {Local(user_, "")}, "Subject: x\n\nbody\n");
  std::string q = spool_->Path(spool::kQueue, id);
  struct stat st;
  ASSERT_EQ(::stat(q.c_str(), &st), 0);
  ASSERT_EQ(::truncate(q.c_str(), st.st_size - 3), 0);
  auto r = DeliverOne(id, user_);
  EXPECT_EQ(r[2], "deferred");
  EXPECT_FALSE(fs::Exists(Mbox()));
}

TEST_F(TaTest, OverlongJobLineIsAProtocolError) {
  Agent agent("mailbox", home_, {});
  agent.ExpectHungry();
  agent.Send(std::string(9000, 'x'));
  EXPECT_EQ(agent.Wait(), 76);
}

TEST_F(TaTest, RecordedResultIsReportedAgainNotRedelivered) {
  std::string id = Queue("a@b", {Local(user_, "")}, "Subject: x\n\nbody\n");
  mail::ControlResult done;
  done.index = 0;
  done.time = 1;
  done.dsn = "2.0.0";
  done.diag = "delivered to mailbox";
  ASSERT_TRUE(AppendResult(spool_->Path(spool::kTransport, id),
                           mail::SerializeResult(done))
                  .ok());
  auto r = DeliverOne(id, user_);
  EXPECT_EQ(r[2], "ok");
  EXPECT_FALSE(fs::Exists(Mbox()));
  EXPECT_EQ(Control(id).results.size(), 1u);
}

TEST_F(TaTest, AppendAfterATornLineKeepsTheNewLineWhole) {
  std::string id = Queue("a@b", {Local(user_, "")}, "x\n");
  std::string path = spool_->Path(spool::kTransport, id);
  fs::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND));
  ASSERT_TRUE(fs::WriteAll(fd.get(), "d 0 ok 17", path).ok());
  ASSERT_TRUE(AppendResult(path, "d 0 failed 18 5.0.0 x\n").ok());
  std::string text = Slurp(path);
  EXPECT_NE(text.find("d 0 ok 17\nd 0 failed 18 5.0.0 x\n"), std::string::npos);
}

// --- mbox ---

TEST_F(TaTest, MboxDeliveryQuotesFromLinesAndAddsTraceHeaders) {
  std::string msg =
      "Subject: quoting\n\nFrom the start\n>From once\nnot From here\n"
      "From";  // no final newline
  std::string id = Queue("alice@example.org",
                         {Local(user_, user_ + "@mx1.example.net")}, msg);
  auto r = DeliverOne(id, user_);
  EXPECT_EQ(r[2], "ok");
  EXPECT_EQ(r[3], "2.0.0");
  EXPECT_EQ(r[4], "local");
  std::string box = Slurp(Mbox());
  ASSERT_EQ(box.rfind("From alice@example.org ", 0), 0u) << box;
  std::string after = box.substr(box.find('\n') + 1);
  EXPECT_EQ(after,
            "Return-Path: <alice@example.org>\n"
            "Delivered-To: " +
                user_ +
                "@mx1.example.net\n"
                "Subject: quoting\n\n>From the start\n>>From once\n"
                "not From here\nFrom\n\n");
  mail::ControlFile cf = Control(id);
  ASSERT_EQ(cf.results.size(), 1u);
  EXPECT_EQ(cf.results[0].status, mail::ResultStatus::kDelivered);
  EXPECT_EQ(cf.results[0].dsn, "2.0.0");

  // A second message is appended after the first, separated properly.
  std::string id2 = Queue("", {Local(user_, "")}, "Subject: two\n\nb\n");
  EXPECT_EQ(DeliverOne(id2, user_)[2], "ok");
  std::string box2 = Slurp(Mbox());
  EXPECT_EQ(box2.substr(0, box.size()), box);
  std::string second = box2.substr(box.size());
  EXPECT_EQ(second.rfind("From MAILER-DAEMON ", 0), 0u) << second;
  EXPECT_NE(second.find("Return-Path: <>\nDelivered-To: " + user_ +
                        "@mx1.example.net\n"),
            std::string::npos);
}

TEST_F(TaTest, UnknownUserWithoutMailboxFailsWith511) {
  std::string id = Queue("a@b", {Local("no-such-user-zq", "")}, "x\n");
  auto r = DeliverOne(id, "no-such-user-zq");
  EXPECT_EQ(r[2], "error");
  EXPECT_EQ(r[3], "5.1.1");
  EXPECT_EQ(Control(id).results.at(0).status, mail::ResultStatus::kFailed);
}

TEST_F(TaTest, ExistingMailboxOfAnUnknownUserIsUsed) {
  std::string box = home_ + "/mail/listonly";
  ASSERT_TRUE(fs::WriteFileAtomically(home_ + "/mail", "listonly", "").ok());
  std::string id = Queue("a@b", {Local("listonly", "")}, "x\n");
  EXPECT_EQ(DeliverOne(id, "listonly")[2], "ok");
  EXPECT_NE(Slurp(box).find("Delivered-To: listonly@mx1.example.net"),
            std::string::npos);
}

TEST_F(TaTest, SymlinkedMailboxIsRefused) {
  ASSERT_EQ(::symlink((out_ + "/target").c_str(), Mbox().c_str()), 0);
  std::string id = Queue("a@b", {Local(user_, "")}, "x\n");
  auto r = DeliverOne(id, user_);
  EXPECT_EQ(r[2], "error");
  EXPECT_EQ(r[3], "5.2.0");
  EXPECT_FALSE(fs::Exists(out_ + "/target"));
}

TEST_F(TaTest, LoopingMessageIsRefused) {
  std::string addr = user_ + "@mx1.example.net";
  std::string id = Queue("a@b", {Local(user_, addr)},
                         "Delivered-To: " + addr + "\nSubject: x\n\nbody\n");
  auto r = DeliverOne(id, user_);
  EXPECT_EQ(r[2], "error");
  EXPECT_EQ(r[3], "5.4.6");
}

TEST_F(TaTest, HeldFcntlLockMakesTheAgentWaitThenDeliver) {
  ASSERT_TRUE(fs::WriteFileAtomically(home_ + "/mail", user_, "").ok());
  fs::UniqueFd held(::open(Mbox().c_str(), O_RDWR));
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  ASSERT_EQ(::fcntl(held.get(), F_SETLK, &fl), 0);

  std::string id = Queue("a@b", {Local(user_, "")}, "Subject: x\n\nbody\n");
  Agent agent("mailbox", home_, {"-l", "600"});
  agent.ExpectHungry();
  agent.Send(StrCat(id, "\t", user_, "\t0"));
  // The agent takes the dotlock first, then waits for the fcntl lock.
  std::string dotlock = Mbox() + ".lock";
  for (int i = 0; i < 6000 && !fs::Exists(dotlock); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(fs::Exists(dotlock));
  // The lock names its owner from the moment it exists (an empty one left
  // by an agent killed at the wrong moment could only age out).
  EXPECT_EQ(Slurp(dotlock), StrCat(agent.pid(), "\n"));
  EXPECT_EQ(Slurp(Mbox()), "");  // nothing written while we hold the lock
  EXPECT_TRUE(Control(id).results.empty());
  held.reset();  // releases the lock
  auto r = agent.Result();
  EXPECT_EQ(r[2], "ok");
  agent.ExpectHungry();
  agent.CloseInput();
  EXPECT_EQ(agent.Wait(), 0);
  EXPECT_NE(Slurp(Mbox()).find("body\n"), std::string::npos);
  EXPECT_FALSE(fs::Exists(dotlock));
  EXPECT_FALSE(fs::Exists(StrCat(dotlock, ".", agent.pid())));  // no temp left
}

TEST_F(TaTest, LockNotReleasedInTimeDefers) {
  ASSERT_TRUE(fs::WriteFileAtomically(home_ + "/mail", user_, "old\n\n").ok());
  fs::UniqueFd held(::open(Mbox().c_str(), O_RDWR));
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  ASSERT_EQ(::fcntl(held.get(), F_SETLK, &fl), 0);
  std::string id = Queue("a@b", {Local(user_, "")}, "x\n");
  auto r = DeliverOne(id, user_, {"-l", "1"});
  EXPECT_EQ(r[2], "deferred");
  EXPECT_EQ(r[3], "4.2.0");
  EXPECT_NE(r[7].find("locked"), std::string::npos);
  EXPECT_EQ(Slurp(Mbox()), "old\n\n");
  EXPECT_FALSE(fs::Exists(Mbox() + ".lock"));
  EXPECT_TRUE(Control(id).results.empty());
}

TEST_F(TaTest, FreshDotlockDefersStaleDotlockIsBroken) {
  std::string dotlock = Mbox() + ".lock";
  ASSERT_TRUE(
      fs::WriteFileAtomically(home_ + "/mail", user_ + ".lock", "1\n").ok());
  std::string id = Queue("a@b", {Local(user_, "")}, "x\n");
  auto r = DeliverOne(id, user_, {"-l", "1"});
  EXPECT_EQ(r[2], "deferred");
  EXPECT_TRUE(fs::Exists(dotlock));  // not ours to remove

  struct utimbuf old = {1000, 1000};
  ASSERT_EQ(::utime(dotlock.c_str(), &old), 0);
  auto r2 = DeliverOne(id, user_, {"-l", "1"});
  EXPECT_EQ(r2[2], "ok");
  EXPECT_FALSE(fs::Exists(dotlock));
}

// An agent SIGKILLed while holding the dotlock leaves it behind, naming a
// pid that is gone (`reaped`) or still a zombie (its parent has not waited
// for it yet). Either way the next delivery must not wait for the lock to
// age.
void TaTest::ExpectDotlockOfADeadAgentTakenOver(bool reaped) {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, child, &info, WEXITED | (reaped ? 0 : WNOWAIT)),
            0);
  ASSERT_EQ(::kill(child, 0) == 0, !reaped) << "a zombie answers kill(2)";
  std::string dotlock = Mbox() + ".lock";
  ASSERT_TRUE(fs::WriteFileAtomically(home_ + "/mail", user_ + ".lock",
                                      std::to_string(child) + "\n")
                  .ok());
  std::string id = Queue("a@b", {Local(user_, "")}, "x\n");
  auto r = DeliverOne(id, user_, {"-l", "1"});
  EXPECT_EQ(r[2], "ok");
  EXPECT_FALSE(fs::Exists(dotlock));
  if (!reaped) {
    ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  }
}

TEST_F(TaTest, DotlockOfADeadAgentIsTakenOverAtOnce) {
  ExpectDotlockOfADeadAgentTakenOver(/*reaped=*/true);
}

TEST_F(TaTest, DotlockOfAnUnreapedAgentIsTakenOverAtOnce) {
  ExpectDotlockOfADeadAgentTakenOver(/*reaped=*/false);
}

TEST_F(TaTest, WriteErrorLeavesNoHalfMessage) {
  std::string before = "From x Thu Jan  1 00:00:00 1970\nSubject: a\n\nold\n\n";
  ASSERT_TRUE(fs::WriteFileAtomically(home_ + "/mail", user_, before).ok());
  std::string big(200000, 'z');
  big = "Subject: big\n\n" + big + "\n";
  std::string id = Queue("a@b", {Local(user_, "")}, big);
  // The file-size limit stops the write part way through the message.
  Agent agent("mailbox", home_, {}, /*fsize_limit=*/16384);
  agent.ExpectHungry();
  agent.Send(StrCat(id, "\t", user_, "\t0"));
  auto r = agent.Result();
  EXPECT_EQ(r[2], "deferred");
  EXPECT_EQ(r[3], "4.2.2");
  agent.ExpectHungry();
  agent.CloseInput();
  EXPECT_EQ(agent.Wait(), 0);
  EXPECT_EQ(Slurp(Mbox()), before);
  EXPECT_TRUE(Control(id).results.empty());
}

// --- Maildir ---

TEST_F(TaTest, MaildirFolderGetsMaildirDelivery) {
  std::string md = Mbox();
  for (auto sub : {"", "/cur", "/new", "/tmp"}) {
    ASSERT_TRUE(fs::MakeDirs(md + sub, 0700).ok());
  }
  std::string id = Queue("a@b", {Local(user_, "")}, "Subject: md\n\nFrom x\n");
  auto r = DeliverOne(id, user_);
  EXPECT_EQ(r[2], "ok");
  EXPECT_EQ(r[7], "delivered to maildir");
  auto names = fs::ListDir(md + "/new");
  ASSERT_TRUE(names.ok());
  ASSERT_EQ(names->size(), 1u);
  EXPECT_EQ(Slurp(md + "/new/" + (*names)[0]),
            "Return-Path: <a@b>\nDelivered-To: " + user_ +
                "@mx1.example.net\nSubject: md\n\nFrom x\n");
  EXPECT_TRUE(fs::ListDir(md + "/tmp")->empty());
}

TEST_F(TaTest, DashMCreatesNewMailboxesAsMaildirs) {
  std::string id = Queue("a@b", {Local(user_, "")}, "x\n");
  EXPECT_EQ(DeliverOne(id, user_, {"-M"})[2], "ok");
  EXPECT_EQ(fs::ListDir(Mbox() + "/new")->size(), 1u);
  EXPECT_TRUE(fs::Exists(Mbox() + "/cur"));
}

TEST_F(TaTest, OtherMailStoreWithDashD) {
  std::string store = home_ + "/store";
  ASSERT_TRUE(fs::MakeDirs(store).ok());
  std::string id = Queue("a@b", {Local(user_, "")}, "x\n");
  EXPECT_EQ(DeliverOne(id, user_, {"-d", store + "/"})[2], "ok");
  EXPECT_TRUE(fs::Exists(store + "/" + user_));
  EXPECT_FALSE(fs::Exists(Mbox()));
}

// --- |command ---

TEST_F(TaTest, PipeGetsMessageAndEnvironment) {
  std::string cmd = "|echo \"$SENDER $RECIPIENT $USER\" > " + out_ +
                    "/env; cat > " + out_ + "/msg";
  std::string id =
      Queue("alice@example.org", {Special("pipe", cmd, "bob@mx1.example.net")},
            "Subject: p\n\nFrom here\n");
  auto r = DeliverOne(id, "pipe");
  EXPECT_EQ(r[2], "ok") << r[7];
  EXPECT_EQ(r[4], "pipe");
  EXPECT_EQ(Slurp(out_ + "/env"),
            "alice@example.org bob@mx1.example.net bob\n");
  EXPECT_EQ(Slurp(out_ + "/msg"),
            "Return-Path: <alice@example.org>\n"
            "Delivered-To: bob@mx1.example.net\nSubject: p\n\nFrom here\n");
  EXPECT_EQ(Control(id).results.at(0).status, mail::ResultStatus::kDelivered);
}

TEST_F(TaTest, PipeExitCodesMapToResults) {
  std::string id =
      Queue("a@b",
            {Special("pipe", "|echo 'try later please'; exit 75", "x@y"),
             Special("pipe", "|echo 'no such mailbox'; exit 67", "x@y"),
             Special("pipe", "|exit 3", "x@y"),
             Special("pipe", "|head -c 1 >/dev/null", "x@y")},
            "Subject: p\n\n" + std::string(300000, 'q') + "\n");
  Agent agent("mailbox", home_, {});
  agent.ExpectHungry();
  agent.Send(StrCat(id, "\tpipe\t0,1,2,3"));
  auto r0 = agent.Result();
  EXPECT_EQ(r0[2], "deferred");
  EXPECT_EQ(r0[3], "4.3.0");
  EXPECT_EQ(r0[7], "try later please");
  auto r1 = agent.Result();
  EXPECT_EQ(r1[2], "error");
  EXPECT_EQ(r1[3], "5.1.1");
  EXPECT_EQ(r1[7], "no such mailbox");
  auto r2 = agent.Result();
  EXPECT_EQ(r2[2], "error");
  EXPECT_EQ(r2[3], "5.3.0");
  // A command that exits 0 without reading everything still succeeded.
  auto r3 = agent.Result();
  EXPECT_EQ(r3[2], "ok") << r3[7];
  agent.ExpectHungry();
  agent.CloseInput();
  EXPECT_EQ(agent.Wait(), 0);
  mail::ControlFile cf = Control(id);
  ASSERT_EQ(cf.results.size(), 3u);  // the deferral is not recorded
  EXPECT_EQ(cf.results[0].index, 1);
  EXPECT_EQ(cf.results[2].index, 3);
}

TEST_F(TaTest, PipeRunTimeIsBounded) {
  std::string id =
      Queue("a@b", {Special("pipe", "|exec sleep 120", "x@y")}, "x\n");
  auto r = DeliverOne(id, "pipe", {"-t", "1"});
  EXPECT_EQ(r[2], "deferred");
  EXPECT_NE(r[7].find("timed out"), std::string::npos) << r[7];
}

TEST_F(TaTest, AsRootPipesRunAsNobody) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const struct passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "no user nobody";
  std::string id = Queue(
      "a@b", {Special("pipe", "|id -u > " + out_ + "/uid", "x@y")}, "x\n");
  EXPECT_EQ(DeliverOne(id, "pipe")[2], "ok");
  EXPECT_EQ(Slurp(out_ + "/uid"), StrCat(nobody->pw_uid, "\n"));
}

// --- /file ---

TEST_F(TaTest, FileTargetIsAppendedMboxStyle) {
  std::string file = out_ + "/archive";
  std::string id = Queue("a@b", {Special("file", file, "arch@mx1")},
                         "Subject: f\n\nFrom me\n");
  auto r = DeliverOne(id, "file");
  EXPECT_EQ(r[2], "ok") << r[7];
  EXPECT_EQ(r[4], "file");
  std::string text = Slurp(file);
  EXPECT_EQ(text.rfind("From a@b ", 0), 0u);
  EXPECT_NE(text.find("Delivered-To: arch@mx1\nSubject: f\n\n>From me\n\n"),
            std::string::npos)
      << text;
  // /dev/null takes anything.
  std::string id2 =
      Queue("a@b", {Special("file", "/dev/null", "n@mx1")}, "x\n");
  EXPECT_EQ(DeliverOne(id2, "file")[2], "ok");
}

TEST_F(TaTest, FileTargetEndingInSlashIsAMaildir) {
  std::string md = out_ + "/md/";
  std::string id = Queue("a@b", {Special("file", md, "m@mx1")}, "x\n");
  EXPECT_EQ(DeliverOne(id, "file")[2], "ok");
  EXPECT_EQ(fs::ListDir(md + "new")->size(), 1u);
}

// --- formats ---

TEST(MailboxFormat, QuotingIsMboxrd) {
  std::string out;
  bool start = true;
  mailbox::AppendQuoted("From a\n>From b\n>>From c\nFromage\n From d\nx",
                        &start, &out);
  EXPECT_EQ(out, ">From a\n>>From b\n>>>From c\nFromage\n From d\nx");
  EXPECT_FALSE(start);
  mailbox::AppendQuoted("From still the same line\nFrom new\n", &start, &out);
  EXPECT_EQ(out,
            ">From a\n>>From b\n>>>From c\nFromage\n From d\n"
            "xFrom still the same line\n>From new\n");
  EXPECT_TRUE(start);
}

TEST(MailboxFormat, FromLineUsesAsctimeDate) {
  EXPECT_EQ(mailbox::FromLine("a@b", 0), "From a@b Thu Jan  1 00:00:00 1970\n");
  EXPECT_EQ(mailbox::FromLine("", 0),
            "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n");
}

TEST(MailboxFormat, DeliveredToLoopCheckLooksOnlyAtHeaders) {
  EXPECT_TRUE(mailbox::HasDeliveredTo("delivered-to:  <A@B>\n\nx\n", "a@b"));
  EXPECT_FALSE(mailbox::HasDeliveredTo("S: x\n\nDelivered-To: a@b\n", "a@b"));
}

TEST(AgentLoop, JobLinesAndResultLines) {
  auto job = ParseJob("0GC4H8WY3TQ2K7PX-t1\tex+20ample\t0,2");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->host, "ex ample");
  EXPECT_EQ(job->indexes, (std::vector<int>{0, 2}));
  EXPECT_EQ(ParseJob("q\th\t3,1,3")->indexes, (std::vector<int>{3, 1}));
  EXPECT_FALSE(ParseJob("id\thost").ok());
  EXPECT_FALSE(ParseJob("id\thost\t1,x").ok());
  EXPECT_FALSE(ParseJob("id\thost\t-1").ok());
  EXPECT_EQ(
      FormatResult(
          "Q", 2, Result::Deferred("4.2.2", "local", "full\tnow\nreally"), 0.5),
      "Q\t2\tdeferred\t4.2.2\tlocal\t0.000\t0.500\tfull now really\n");
  Result r;
  r.status = Result::Status::kRetryAt;
  r.retry_at = 1763680000;
  EXPECT_EQ(FormatResult("Q", 0, r, 0).substr(0, 23),
            "Q\t0\tretryat=1763680000\t");
  EXPECT_EQ(CleanDiag(std::string(5000, 'a')).size(), kMaxDiag);
}

}  // namespace
}  // namespace zm::ta
