// Runs the real sendmail and rmail binaries against a throw-away node and
// checks what they leave in spool/router/.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "node/common/fs.h"
#include "node/mail/envelope.h"
#include "node/spool/spool.h"

namespace {

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

class SendmailProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-sendmail-XXXXXX";
    home_ = ::mkdtemp(tmpl);
    for (const char* d : {"etc", "log", "run", "mail", "db"}) {
      ASSERT_TRUE(zm::fs::MakeDirs(home_ + "/" + d).ok());
    }
    WriteEtc("mail.conf",
             "# test node\nhostname=mx1.example.net\nmydomain=example.net\n");
    WriteEtc("cluster.conf", "node-id t1\n");
    zm::spool::Spool spool(home_ + "/spool", "t1");
    ASSERT_TRUE(spool.CreateLayout().ok());
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  void WriteEtc(const std::string& name, const std::string& text) {
    ASSERT_TRUE(zm::fs::WriteFileAtomically(home_ + "/etc", name, text).ok());
  }

  // Runs `program` with `args`, `input` on stdin, ZMAILER_HOME = the node.
  RunResult Run(const std::string& program, std::vector<std::string> args,
                const std::string& input) {
    std::string in_path = home_ + "/stdin", out_path = home_ + "/stdout",
                err_path = home_ + "/stderr";
    EXPECT_TRUE(zm::fs::WriteFileAtomically(home_, "stdin", input).ok());
    pid_t pid = ::fork();
    if (pid == 0) {
      int in = ::open(in_path.c_str(), O_RDONLY);
      int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::setenv("ZMAILER_HOME", home_.c_str(), 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(program.c_str()));
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(program.c_str(), argv.data());
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    RunResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = zm::fs::ReadFile(out_path).value_or("");
    r.err = zm::fs::ReadFile(err_path).value_or("");
    return r;
  }
  RunResult Sendmail(std::vector<std::string> args, const std::string& input) {
    return Run(ZM_SENDMAIL_BIN, std::move(args), input);
  }

  std::vector<std::string> RouterFiles() {
    auto names = zm::fs::ListDir(home_ + "/spool/router");
    EXPECT_TRUE(names.ok());
    std::vector<std::string> v =
        names.ok() ? *names : std::vector<std::string>{};
    std::sort(v.begin(), v.end());
    return v;
  }

  struct Stored {
    zm::mail::Envelope env;
    std::string message;
    std::vector<std::string> rcpts;
  };
  // The one message in router/.
  Stored OnlyMessage() {
    Stored s;
    auto files = RouterFiles();
    EXPECT_EQ(files.size(), 1u);
    if (files.size() != 1) return s;
    auto data = zm::fs::ReadFile(home_ + "/spool/router/" + files[0]);
    EXPECT_TRUE(data.ok());
    auto mf = zm::mail::ParseMessageFile(*data);
    EXPECT_TRUE(mf.ok()) << mf.status();
    if (!mf.ok()) return s;
    s.env = mf->envelope;
    s.message = data->substr(mf->body_offset);
    for (const auto& r : s.env.recipients) s.rcpts.push_back(r.address);
    return s;
  }

  static std::string Header(const std::string& message,
                            const std::string& name) {
    std::string key = "\n" + name + ":";
    std::string m = "\n" + message.substr(0, message.find("\n\n") + 1);
    size_t p = m.find(key);
    if (p == std::string::npos) return "<absent>";
    size_t end = m.find('\n', p + 1);
    return m.substr(p + key.size(), end - p - key.size());
  }
  static std::string Body(const std::string& message) {
    return message.substr(message.find("\n\n") + 2);
  }

  std::string home_;
};

TEST_F(SendmailProgramTest, PlainSubmissionAddsHeadersAndLogs) {
  RunResult r = Sendmail({"root"}, "hi\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(s.rcpts, std::vector<std::string>{"root"});
  EXPECT_NE(s.env.sender.find("@example.net"), std::string::npos);
  EXPECT_EQ(s.env.protocol, "local");
  EXPECT_FALSE(s.env.local_user.empty());
  EXPECT_EQ(
      s.message.rfind("Received: by mx1.example.net (zmnode, from userid ", 0),
      0u)
      << s.message;
  EXPECT_NE(s.message.find("\tid " + s.env.queue_id + "; "), std::string::npos);
  EXPECT_EQ(Header(s.message, "Message-ID"),
            " <" + s.env.queue_id + "@mx1.example.net>");
  EXPECT_NE(Header(s.message, "Date"), "<absent>");
  EXPECT_NE(Header(s.message, "From").find("@example.net"), std::string::npos);
  EXPECT_EQ(Body(s.message), "hi\n");
  EXPECT_EQ(s.env.size, s.message.size());
  auto log = zm::fs::ReadFile(home_ + "/log/maillog");
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("zmnode/sendmail["), std::string::npos);
  EXPECT_NE(log->find(s.env.queue_id + ": uid=" + std::to_string(::getuid()) +
                      " from=<" + s.env.sender + ">"),
            std::string::npos)
      << *log;
}

TEST_F(SendmailProgramTest, ExistingHeadersAreKept) {
  RunResult r =
      Sendmail({"a@x.org"},
               "From: Me <me@x.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
               "Message-ID: <keep@x.org>\nSubject: s\n\nbody\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(Header(s.message, "From"), " Me <me@x.org>");
  EXPECT_EQ(Header(s.message, "Message-ID"), " <keep@x.org>");
  EXPECT_EQ(Header(s.message, "Date"), " Mon, 1 Jan 2024 00:00:00 +0000");
  size_t from_count = 0;
  for (size_t p = 0; (p = s.message.find("\nFrom:", p)) != std::string::npos;
       ++p) {
    ++from_count;
  }
  EXPECT_EQ(from_count, 1u);
  EXPECT_EQ(Body(s.message), "body\n");
}

TEST_F(SendmailProgramTest, PhpDashTDashI) {
  RunResult r = Sendmail({"-t", "-i"},
                         "To: Alice <alice@example.org>\r\n"
                         "Subject: php\r\n\r\nline\r\n.\r\nafter the dot\r\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(s.rcpts, std::vector<std::string>{"alice@example.org"});
  EXPECT_EQ(Body(s.message), "line\n.\nafter the dot\n");
}

TEST_F(SendmailProgramTest, CronFlags) {
  RunResult r = Sendmail({"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "user"},
                         "Subject: Cron <user@host> job\n\noutput\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(s.rcpts, std::vector<std::string>{"user"});
  EXPECT_EQ(s.env.bodytype, "8BITMIME");
  std::string from = Header(s.message, "From");
  EXPECT_EQ(from.rfind(" CronDaemon <", 0), 0u) << from;
  EXPECT_NE(from.find("@example.net>"), std::string::npos) << from;
}

TEST_F(SendmailProgramTest, MuttFlags) {
  RunResult r =
      Sendmail({"-oem", "-oi", "--", "bob@example.org"},
               "From: alice@example.org\nTo: bob@example.org\n\nx\n.\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(s.rcpts, std::vector<std::string>{"bob@example.org"});
  EXPECT_EQ(Body(s.message), "x\n.\n");
}

TEST_F(SendmailProgramTest, MailxFlags) {
  RunResult r = Sendmail({"-oi", "-f", "x@example.org", "-t"},
                         "To: a@example.org\nCc: b@example.org\n\nm\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(s.env.sender, "x@example.org");
  EXPECT_EQ(s.rcpts,
            (std::vector<std::string>{"a@example.org", "b@example.org"}));
}

TEST_F(SendmailProgramTest, GitSendEmailFlags) {
  RunResult r = Sendmail(
      {"-i", "-f", "dev@example.org", "a@example.org", "b@example.org"},
      "From: Dev <dev@example.org>\nSubject: [PATCH]\n\n"
      "diff\n.\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(s.env.sender, "dev@example.org");
  EXPECT_EQ(s.rcpts,
            (std::vector<std::string>{"a@example.org", "b@example.org"}));
  EXPECT_EQ(Body(s.message), "diff\n.\n");
}

TEST_F(SendmailProgramTest, DashTRemovesBccAndAddsArguments) {
  RunResult r = Sendmail({"-t", "extra@example.org", "a@example.org"},
                         "To: a@example.org\nBcc: hidden@example.org\n"
                         "Resent-Date: no resent recipients here\n"
                         "Subject: s\n\nb\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(s.rcpts,
            (std::vector<std::string>{"a@example.org", "hidden@example.org",
                                      "extra@example.org"}));
  EXPECT_EQ(s.message.find("hidden"), std::string::npos) << s.message;
  EXPECT_EQ(Header(s.message, "Bcc"), "<absent>");
}

TEST_F(SendmailProgramTest, FromSenderAndNullSender) {
  RunResult r = Sendmail({"-f", "<>", "a@example.org"}, "x\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(s.env.sender, "");
  auto log = zm::fs::ReadFile(home_ + "/log/maillog");
  EXPECT_NE(log->find(" from=<>"), std::string::npos);
}

TEST_F(SendmailProgramTest, DsnParameters) {
  RunResult r = Sendmail({"-N", "success,delay", "-Rfull", "-V", "env-42", "-B",
                          "7bit", "a@example.org", "b@example.org"},
                         "x\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  ASSERT_EQ(s.env.recipients.size(), 2u);
  EXPECT_EQ(s.env.recipients[0].notify, "SUCCESS,DELAY");
  EXPECT_EQ(s.env.recipients[1].notify, "SUCCESS,DELAY");
  EXPECT_EQ(s.env.ret, "FULL");
  EXPECT_EQ(s.env.envid, "env-42");
  EXPECT_EQ(s.env.bodytype, "7BIT");
}

TEST_F(SendmailProgramTest, DotEndsTheMessageWithoutI) {
  RunResult r =
      Sendmail({"a@example.org"},
               "Subject: s\r\n\r\nbefore\r\n..stays\r\n.\r\nafter\r\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(Body(s.message), "before\n..stays\n");
}

TEST_F(SendmailProgramTest, BodyWithoutHeaderGetsASeparator) {
  RunResult r = Sendmail({"a@example.org"}, "hello world\nSubject: not one\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(Body(s.message), "hello world\nSubject: not one\n");
  EXPECT_EQ(Header(s.message, "Subject"), "<absent>");
}

TEST_F(SendmailProgramTest, NoRecipientsIsUsage) {
  RunResult r = Sendmail({}, "x\n");
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_NE(r.err.find("sendmail: "), std::string::npos);
  RunResult t = Sendmail({"-t"}, "Subject: nobody\n\nx\n");
  EXPECT_EQ(t.exit_code, 64) << t.err;
  RunResult g = Sendmail({"-t"}, "To: undisclosed-recipients:;\n\nx\n");
  EXPECT_EQ(g.exit_code, 64) << g.err;
  EXPECT_TRUE(RouterFiles().empty());
}

TEST_F(SendmailProgramTest, BadFlagsAreUsage) {
  EXPECT_EQ(Sendmail({"-Z", "a@b"}, "x\n").exit_code, 64);
  EXPECT_EQ(Sendmail({"-N", "often", "a@b"}, "x\n").exit_code, 64);
  RunResult r = Sendmail({"Joe Bloggs joe@x"}, "x\n");
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(RouterFiles().empty());
}

TEST_F(SendmailProgramTest, UnparseableHeaderUnderDashTIsDataError) {
  RunResult r = Sendmail({"-t"}, "To: Joe Bloggs joe@example.org\n\nx\n");
  EXPECT_EQ(r.exit_code, 65);
  EXPECT_NE(r.err.find("To: header"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  RunResult q = Sendmail({"-t"}, "To: \"open quote@example.org\n\nx\n");
  EXPECT_EQ(q.exit_code, 65);
  EXPECT_TRUE(RouterFiles().empty());
}

TEST_F(SendmailProgramTest, UnwritableSpoolIsTempFail) {
  // A file where public/ should be: fails for root too (unlike chmod).
  std::filesystem::remove_all(home_ + "/spool/public");
  ASSERT_TRUE(
      zm::fs::WriteFileAtomically(home_ + "/spool", "public", "not a dir")
          .ok());
  RunResult r = Sendmail({"a@example.org"}, "x\n");
  EXPECT_EQ(r.exit_code, 75) << r.err;
  EXPECT_NE(r.err.find("try again later"), std::string::npos) << r.err;
  EXPECT_TRUE(RouterFiles().empty());
}

TEST_F(SendmailProgramTest, ChmoddedSpoolIsTempFailForUsers) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  ASSERT_EQ(::chmod((home_ + "/spool/public").c_str(), 0500), 0);
  RunResult r = Sendmail({"a@example.org"}, "x\n");
  EXPECT_EQ(r.exit_code, 75) << r.err;
  ::chmod((home_ + "/spool/public").c_str(), 0750);
}

TEST_F(SendmailProgramTest, MissingNodeIsConfigError) {
  RunResult r =
      Sendmail({"-C", home_ + "/nonexistent", "a@example.org"}, "x\n");
  EXPECT_EQ(r.exit_code, 78) << r.err;
}

TEST_F(SendmailProgramTest, QueueRunWithoutSchedulerIsUnavailable) {
  RunResult r = Sendmail({"-q"}, "");
  EXPECT_EQ(r.exit_code, 69) << r.err;
  EXPECT_NE(r.err.find("scheduler"), std::string::npos) << r.err;
  EXPECT_EQ(Sendmail({"-qR", "example.org"}, "").exit_code, 69);
}

TEST_F(SendmailProgramTest, RmailTakesTheSenderFromFromLines) {
  RunResult r = Run(ZM_RMAIL_BIN, {"alice", "bob@example.org"},
                    "From joe Fri Nov 20 10:00:00 2026 remote from hostb\n"
                    ">From joe Fri Nov 20 09:00:00 2026 remote from hosta\n"
                    "Subject: uucp\n\nline\n.\nmore\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Stored s = OnlyMessage();
  EXPECT_EQ(s.env.sender, "hostb!hosta!joe");
  EXPECT_EQ(s.env.protocol, "UUCP");
  EXPECT_EQ(s.rcpts, (std::vector<std::string>{"alice", "bob@example.org"}));
  EXPECT_EQ(s.message.find("From joe"), std::string::npos);
  EXPECT_EQ(Header(s.message, "Subject"), " uucp");
  EXPECT_EQ(Body(s.message), "line\n.\nmore\n");
  auto log = zm::fs::ReadFile(home_ + "/log/maillog");
  EXPECT_NE(log->find("zmnode/rmail["), std::string::npos);
}

TEST_F(SendmailProgramTest, RmailWithoutRecipientsIsUsage) {
  EXPECT_EQ(Run(ZM_RMAIL_BIN, {}, "From a b\n\nx\n").exit_code, 64);
}

}  // namespace
