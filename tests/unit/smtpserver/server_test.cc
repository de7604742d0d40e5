// Starts the real smtpserver on a free loopback port with a throw-away
// node directory and talks SMTP to it over a socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mail/envelope.h"
#include "node/spool/spool.h"
#include "tests/unit/testing/wait.h"

namespace zm {
namespace {

using Clock = std::chrono::steady_clock;
using testutil::FreeLoopbackPort;
using testutil::WaitFor;

class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Client() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }
  void Send(std::string_view s) { (void)fs::WriteAll(fd_, s, "socket"); }
  // One complete reply (all lines up to "NNN "), or "" on EOF/timeout.
  std::string Reply() {
    std::string out;
    for (;;) {
      auto nl = buf_.find("\r\n");
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl + 2);
        buf_.erase(0, nl + 2);
        out += line;
        if (line.size() >= 4 && line[3] == ' ') return out;
        continue;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20000) <= 0) return out;
      char b[4096];
      ssize_t n = ::read(fd_, b, sizeof b);
      if (n <= 0) return out;
      buf_.append(b, static_cast<size_t>(n));
    }
  }
  std::string Cmd(std::string_view line) {
    Send(StrCat(line, "\r\n"));
    return Reply();
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

class SmtpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/zm-smtpserver-XXXXXX";
    dir_ = ::mkdtemp(t);
    port_ = FreeLoopbackPort();
    for (const char* d : {"etc", "spool", "log", "run"}) {
      std::filesystem::create_directories(dir_ + "/" + d);
    }
    Write("etc/smtpserver.conf",
          StrCat("PARAM BindAddress [127.0.0.1]\nPARAM BindPort ", port_,
                 "\nPARAM maxsize 100000\n"));
    Write("etc/mail.conf", "hostname=mx.test\nmydomain=test.example\n");
    Write("etc/cluster.conf", "node-id t1\n");
    Write("etc/localnames", "other.example\n");
  }
  void TearDown() override {
    Stop();
    std::filesystem::remove_all(dir_);
  }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }
  // Starts the server; returns false (with its stderr in *err) if it exits.
  bool Start(std::string* err = nullptr, int* status = nullptr) {
    std::string errfile = dir_ + "/stderr";
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(errfile.c_str(), "w", stderr);
      (void)f;
      ::execl(ZM_SMTPSERVER_BIN, "smtpserver", "-C", dir_.c_str(), nullptr);
      ::_exit(127);
    }
    std::string pidfile = dir_ + "/run/smtpserver.pid";
    bool exited = false;
    bool up = WaitFor([&] {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        exited = true;
        if (status) *status = st;
        return true;
      }
      return fs::Exists(pidfile);
    });
    if (exited || !up) {
      if (err) *err = fs::ReadFile(errfile).value_or("");
      if (exited) pid_ = -1;
      return false;
    }
    return true;
  }
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return st;
  }
  std::vector<std::string> Files(std::string_view folder) {
    auto l = spool::Spool(dir_ + "/spool", "").Files(folder);
    return l.ok() ? *l : std::vector<std::string>{};
  }

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

TEST_F(SmtpServerTest, LocalMessageLandsInRouterWithItsEnvelope) {
  ASSERT_TRUE(Start());
  Client c(port_);
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.Reply(), "220 mx.test ESMTP zmnode\r\n");
  EXPECT_EQ(c.Cmd("EHLO client.example").substr(0, 20), "250-mx.test Hello cl");
  EXPECT_EQ(c.Cmd("MAIL FROM:<alice@client.example> RET=HDRS ENVID=x1"),
            "250 2.1.0 Ok\r\n");
  EXPECT_EQ(c.Cmd("RCPT TO:<root@localhost> NOTIFY=FAILURE"),
            "250 2.1.5 Ok\r\n");
  EXPECT_EQ(c.Cmd("RCPT TO:<bob@other.example>"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(c.Cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
  std::string r = c.Cmd("Subject: hello\r\n\r\n..dotted\r\nbody\r\n.");
  ASSERT_EQ(r.rfind("250 2.0.0 Ok: queued as ", 0), 0u) << r;
  std::string qid = r.substr(24, r.size() - 26);
  // Acknowledged means durable and handed to the router.
  auto router = Files("router");
  ASSERT_EQ(router, std::vector<std::string>{qid});
  EXPECT_TRUE(Files("public").empty());
  auto file = fs::ReadFile(dir_ + "/spool/router/" + qid);
  ASSERT_TRUE(file.ok());
  auto mf = mail::ParseMessageFile(*file);
  ASSERT_TRUE(mf.ok()) << mf.status();
  const mail::Envelope& e = mf->envelope;
  EXPECT_EQ(e.sender, "alice@client.example");
  ASSERT_EQ(e.recipients.size(), 2u);
  EXPECT_EQ(e.recipients[0].address, "root@localhost");
  EXPECT_EQ(e.recipients[0].notify, "FAILURE");
  EXPECT_EQ(e.recipients[1].address, "bob@other.example");
  EXPECT_EQ(e.ret, "HDRS");
  EXPECT_EQ(e.envid, "x1");
  EXPECT_EQ(e.protocol, "ESMTP");
  EXPECT_EQ(e.client_addr, "127.0.0.1");
  EXPECT_EQ(e.helo, "client.example");
  std::string body = file->substr(mf->body_offset);
  EXPECT_EQ(
      body.rfind("Received: from client.example (unknown [127.0.0.1])\n", 0),
      0u)
      << body;
  EXPECT_NE(body.find("\nSubject: hello\n\n.dotted\nbody\n"), std::string::npos)
      << body;
  EXPECT_EQ(c.Cmd("QUIT"), "221 2.0.0 Bye\r\n");
  c.Close();
  // The event log has the contract's lines.
  EXPECT_TRUE(WaitFor([&] {
    return fs::ReadFile(dir_ + "/log/maillog")
               .value_or("")
               .find("disconnect from unknown[127.0.0.1]") != std::string::npos;
  }));
  std::string log = fs::ReadFile(dir_ + "/log/maillog").value_or("");
  EXPECT_NE(log.find("connect from unknown[127.0.0.1]"), std::string::npos)
      << log;
  EXPECT_NE(log.find(StrCat(
                qid, ": client=unknown[127.0.0.1], helo=<client.example>")),
            std::string::npos)
      << log;
  EXPECT_EQ(WEXITSTATUS(Stop()), 0);
  EXPECT_FALSE(fs::Exists(dir_ + "/run/smtpserver.pid"));
}

TEST_F(SmtpServerTest, RelayFromAnUntrustedSourceIsRefused) {
  // A trusted network that leaves 127.0.0.1 out.
  Write("etc/smtp-policy.src",
        "_full_rights relaycustnet +\n[127.0.0.0]/8 relaycustnet -\n"
        "[192.0.2.0]/24 = _full_rights\n");
  ASSERT_TRUE(Start());
  Client c(port_);
  c.Reply();
  c.Cmd("EHLO client.example");
  c.Cmd("MAIL FROM:<alice@client.example>");
  // The policy checks' wording; the code and the echoed address matter.
  EXPECT_EQ(c.Cmd("RCPT TO:<x@foreign.example>").substr(0, 30),
            "554 5.7.1 <x@foreign.example>:");
  EXPECT_EQ(c.Cmd("RCPT TO:<x@[127.0.0.1]>"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(c.Cmd("RCPT TO:<x@TEST.example>"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(c.Cmd("QUIT"), "221 2.0.0 Bye\r\n");
  EXPECT_TRUE(Files("router").empty());
}

TEST_F(SmtpServerTest, TrustedSourceMayRelay) {
  ASSERT_TRUE(Start());  // default policy: loopback trusted
  Client c(port_);
  c.Reply();
  c.Cmd("HELO client.example");
  c.Cmd("MAIL FROM:<alice@client.example>");
  EXPECT_EQ(c.Cmd("RCPT TO:<x@foreign.example>"), "250 2.1.5 Ok\r\n");
}

TEST_F(SmtpServerTest, DisconnectInDataLeavesNothing) {
  ASSERT_TRUE(Start());
  {
    Client c(port_);
    c.Reply();
    c.Cmd("EHLO client.example");
    c.Cmd("MAIL FROM:<alice@client.example>");
    c.Cmd("RCPT TO:<root@localhost>");
    EXPECT_EQ(c.Cmd("DATA").substr(0, 3), "354");
    c.Send("Subject: half a message\r\n\r\nsome of the body\r\n");
  }  // closed in DATA
  EXPECT_TRUE(WaitFor([&] {
    return fs::ReadFile(dir_ + "/log/maillog").value_or("").find("discarded") !=
           std::string::npos;
  }));
  EXPECT_TRUE(Files("public").empty());
  EXPECT_TRUE(Files("router").empty());
}

TEST_F(SmtpServerTest, OversizeMessageIsRefused) {
  ASSERT_TRUE(Start());
  Client c(port_);
  c.Reply();
  c.Cmd("EHLO client.example");
  EXPECT_EQ(c.Cmd("MAIL FROM:<a@client.example> SIZE=200000").substr(0, 9),
            "552 5.3.4");
  c.Cmd("MAIL FROM:<a@client.example>");
  c.Cmd("RCPT TO:<root@localhost>");
  c.Cmd("DATA");
  std::string big(2000, 'x');
  for (int i = 0; i < 60; ++i) c.Send(big + "\r\n");
  EXPECT_EQ(c.Cmd(".").substr(0, 9), "552 5.3.4");
  EXPECT_TRUE(Files("router").empty());
}

TEST_F(SmtpServerTest, PerSourceConnectionLimit) {
  Write("etc/smtpserver.conf",
        StrCat("PARAM BindAddress [127.0.0.1]\nPARAM BindPort ", port_,
               "\nPARAM MaxSameIpSource 1\n"));
  ASSERT_TRUE(Start());
  Client a(port_);
  EXPECT_EQ(a.Reply().substr(0, 3), "220");
  Client b(port_);
  EXPECT_EQ(b.Reply(), "421 4.7.0 Too many connections, try again later\r\n");
  EXPECT_EQ(b.Reply(), "");  // and closed
}

TEST_F(SmtpServerTest, ConfigErrorRefusesToStart) {
  Write("etc/smtpserver.conf", "# comment\nPARAM bogus 1\n");
  std::string err;
  int status = 0;
  ASSERT_FALSE(Start(&err, &status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(err.find("smtpserver.conf:2: unknown PARAM 'bogus'"),
            std::string::npos)
      << err;
}

TEST_F(SmtpServerTest, StopLetsATransactionFinish) {
  ASSERT_TRUE(Start());
  Client c(port_);
  c.Reply();
  c.Cmd("EHLO client.example");
  c.Cmd("MAIL FROM:<alice@client.example>");
  c.Cmd("RCPT TO:<root@localhost>");
  EXPECT_EQ(c.Cmd("DATA").substr(0, 3), "354");
  ::kill(pid_, SIGTERM);
  // New clients are told to go (not reset) while this session still
  // completes its message.
  EXPECT_TRUE(WaitFor([&] {
    Client late(port_);
    return late.connected() &&
           late.Reply().rfind("421 4.3.2 ", 0) == 0;
  }));
  std::string r = c.Cmd("Subject: x\r\n\r\nbody\r\n.");
  EXPECT_EQ(r.rfind("250 2.0.0 Ok: queued as ", 0), 0u) << r;
  EXPECT_EQ(c.Reply(),
            "421 4.3.2 Service shutting down, closing connection\r\n");
  int st = 0;
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_EQ(Files("router").size(), 1u);
}

}  // namespace
}  // namespace zm
