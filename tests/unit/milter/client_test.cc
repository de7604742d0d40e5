// Client against a small milter played by a thread on a UNIX socket.
#include "node/milter/client.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <thread>

namespace zm::milter {
namespace {

using std::string_literals::operator""s;

std::string OptNegAnswer(uint32_t actions, uint32_t steps) {
  std::string d = EncodeOptNeg(6, actions, steps);
  return d;  // the same layout as the MTA's
}

// Accepts one connection; answers each command from `replies` (missing:
// "c" for commands that expect an answer). An answer "hang" sends nothing.
// Records the commands seen (macros as "D<cmd>").
class FakeMilter {
 public:
  explicit FakeMilter(std::map<char, std::string> replies)
      : replies_(std::move(replies)) {
    char tmpl[] = "/tmp/milter_test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/m.sock";
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::strcpy(un.sun_path, path_.c_str());
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&un), sizeof un),
              0);
    EXPECT_EQ(::listen(listen_fd_, 4), 0);
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeMilter() {
    thread_.join();
    ::close(listen_fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string address() const { return "unix:" + path_; }
  // Valid after the client closed (the destructor joined).
  std::string seen;

 private:
  void Run() {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return;
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    PacketReader reader;
    char buf[4096];
    for (int rounds = 0; rounds < 1000; ++rounds) {
      pollfd q{fd, POLLIN, 0};
      if (::poll(&q, 1, 10000) != 1) break;
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      reader.Feed(std::string_view(buf, static_cast<size_t>(n)));
      Packet pk;
      while (reader.Next(&pk) == PacketReader::kPacket) {
        if (pk.command == 'D') {
          seen += "D";
          seen += pk.data.substr(0, 1);
          continue;
        }
        seen += pk.command;
        if (pk.command == 'A' || pk.command == 'Q') continue;
        std::string answer;
        auto it = replies_.find(pk.command);
        if (it != replies_.end()) {
          answer = it->second;
        } else if (pk.command == 'O') {
          answer = OptNegAnswer(0xff, 0);
        } else {
          answer = EncodePacket('c', "");
        }
        if (answer == "hang") continue;
        (void)!::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
      }
    }
    ::close(fd);
  }

  std::map<char, std::string> replies_;
  std::string dir_, path_;
  int listen_fd_ = -1;
  std::thread thread_;
};

Spec TestSpec(const std::string& address) {
  auto s = ParseSpec("t " + address +
                     " timeout=1 eom-timeout=1 "
                     "connect-timeout=2");
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

TEST(MilterClient, TransactionWithRejectAndModifications) {
  std::string seen;
  {
    FakeMilter m({
        {'R', EncodePacket('y', "550 5.7.1 <x@y>: no such user\0"s)},
        {'E', EncodePacket('h', "X-Test\0yes\0"s) +
                  EncodePacket('+', "<new@y>\0"s) + EncodePacket('p', "") +
                  EncodePacket('a', "")},
    });
    Client c(TestSpec(m.address()));
    ASSERT_TRUE(c.Open().ok());
    EXPECT_EQ(c.actions(), 0xffu);
    Result r = c.Connect({{"j", "mx"}}, "client", '4', 25, "192.0.2.1");
    EXPECT_EQ(r.action, Result::Action::kContinue);
    r = c.Helo({}, "client");
    EXPECT_EQ(r.action, Result::Action::kContinue);
    r = c.Mail({}, "<a@b>", {"SIZE=10"});
    EXPECT_EQ(r.action, Result::Action::kContinue);
    r = c.Rcpt({}, "<x@y>", {});
    EXPECT_EQ(r.action, Result::Action::kReject);
    EXPECT_EQ(r.code, 550);
    EXPECT_EQ(r.enhanced, "5.7.1");
    ASSERT_EQ(r.text.size(), 1u);
    EXPECT_EQ(r.text[0], "<x@y>: no such user");
    EXPECT_EQ(c.Data({}).action, Result::Action::kContinue);
    EXPECT_EQ(c.Header("Subject", " hi").action, Result::Action::kContinue);
    EXPECT_EQ(c.EndOfHeaders({{"i", "Q1"}}).action, Result::Action::kContinue);
    EXPECT_EQ(c.Body("hello\r\n").action, Result::Action::kContinue);
    std::vector<Modification> mods;
    r = c.EndOfMessage({}, [&](const Modification& mod) {
      mods.push_back(mod);
      return absl::OkStatus();
    });
    EXPECT_EQ(r.action, Result::Action::kAccept);
    ASSERT_EQ(mods.size(), 2u);
    EXPECT_EQ(mods[0].type, Modification::Type::kAddHeader);
    EXPECT_EQ(mods[1].name, "<new@y>");
    c.Close();
    EXPECT_FALSE(c.is_open());
  }
}

TEST(MilterClient, NegotiatedStepsAreHonoured) {
  FakeMilter m({{'O', OptNegAnswer(action::kAddHeaders,
                                   step::kNoConnect | step::kNrHelo)},
                {'H', "hang"}});
  Client c(TestSpec(m.address()));
  ASSERT_TRUE(c.Open().ok());
  // Not sent at all, and no answer awaited for HELO (the milter never
  // answers it).
  EXPECT_EQ(c.Connect({}, "h", 'U', 0, "").action, Result::Action::kContinue);
  EXPECT_EQ(c.Helo({}, "h").action, Result::Action::kContinue);
  EXPECT_EQ(c.Mail({{"{mail_addr}", "a@b"}}, "<a@b>", {}).action,
            Result::Action::kContinue);
  c.Close();
}

TEST(MilterClient, HangingMilterTimesOut) {
  FakeMilter m({{'R', "hang"}});
  Client c(TestSpec(m.address()));
  ASSERT_TRUE(c.Open().ok());
  ASSERT_EQ(c.Mail({}, "<a@b>", {}).action, Result::Action::kContinue);
  Result r = c.Rcpt({}, "<c@d>", {});
  EXPECT_EQ(r.action, Result::Action::kFailed);
  EXPECT_NE(r.error.find("no answer"), std::string::npos) << r.error;
  EXPECT_FALSE(c.is_open());
}

TEST(MilterClient, GarbageReplyFails) {
  {
    FakeMilter m({{'M', EncodePacket('Z', "??")}});
    Client c(TestSpec(m.address()));
    ASSERT_TRUE(c.Open().ok());
    Result r = c.Mail({}, "<a@b>", {});
    EXPECT_EQ(r.action, Result::Action::kFailed);
    EXPECT_FALSE(c.is_open());
  }
  // A bad packet length fails as well.
  FakeMilter m({{'R', "\xff\xff\xff\xff junk"s}});
  Client c(TestSpec(m.address()));
  ASSERT_TRUE(c.Open().ok());
  Result r = c.Rcpt({}, "<a@b>", {});
  EXPECT_EQ(r.action, Result::Action::kFailed);
}

TEST(MilterClient, BadNegotiationFails) {
  FakeMilter m({{'O', EncodePacket('O', "\0\0\0\x01\0\0\0\0\0\0\0\0"s)}});
  Client c(TestSpec(m.address()));
  absl::Status st = c.Open();
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(c.is_open());
}

TEST(MilterClient, DownMilterFails) {
  Client c(TestSpec("unix:/nonexistent/milter.sock"));
  absl::Status st = c.Open();
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  Client t(TestSpec("inet:127.0.0.1:1"));
  EXPECT_FALSE(t.Open().ok());
}

TEST(MilterSpec, Parses) {
  auto s = ParseSpec(
      "dkim inet:127.0.0.1:8891 timeout=5 default=accept "
      "listeners=smtp,Submission eom-timeout=60");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->name, "dkim");
  EXPECT_EQ(s->reply_timeout_ms, 5000);
  EXPECT_EQ(s->eom_timeout_ms, 60000);
  EXPECT_EQ(s->connect_timeout_ms, 30000);
  EXPECT_EQ(s->on_failure, Spec::Default::kAccept);
  EXPECT_EQ(s->listeners, (std::vector<std::string>{"smtp", "submission"}));
  EXPECT_TRUE(ParseSpec("a inet:8891@localhost").ok());
  EXPECT_TRUE(ParseSpec("a inet6:[::1]:8891").ok());
  EXPECT_TRUE(ParseSpec("a unix:/run/m.sock").ok());
  EXPECT_FALSE(ParseSpec("a").ok());
  EXPECT_FALSE(ParseSpec("a tcp:1.2.3.4:5").ok());
  EXPECT_FALSE(ParseSpec("a inet:1.2.3.4").ok());
  EXPECT_FALSE(ParseSpec("a inet:1.2.3.4:0").ok());
  EXPECT_FALSE(ParseSpec("a unix:relative").ok());
  EXPECT_FALSE(ParseSpec("a unix:/x timeout=0").ok());
  EXPECT_FALSE(ParseSpec("a unix:/x default=maybe").ok());
  EXPECT_FALSE(ParseSpec("a unix:/x listeners=pop3").ok());
  EXPECT_FALSE(ParseSpec("a unix:/x listeners=local").ok());  // no milters
  EXPECT_FALSE(ParseSpec("a unix:/x colour=blue").ok());
  EXPECT_FALSE(ParseSpec("a unix:/x timeout").ok());
}

}  // namespace
}  // namespace zm::milter
