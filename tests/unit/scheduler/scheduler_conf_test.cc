#include "node/scheduler/scheduler_conf.h"

#include <gtest/gtest.h>

#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::scheduler {
namespace {

NodeDir TestNode() { return NodeDir{"/srv/node"}; }

SchedulerConf ParseOk(std::string_view text) {
  auto c = ParseSchedulerConf(text, "scheduler.conf", TestNode());
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : SchedulerConf{};
}

std::string ParseError(std::string_view text) {
  auto c = ParseSchedulerConf(text, "scheduler.conf", TestNode());
  EXPECT_FALSE(c.ok());
  return c.ok() ? "" : Message(c.status());
}

TEST(GlobTest, Basics) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("*.edu", "cs.rutgers.edu"));
  EXPECT_FALSE(GlobMatch("*.edu", "edu"));
  EXPECT_TRUE(GlobMatch("*funet.fi", "funet.fi"));
  EXPECT_TRUE(GlobMatch("file*", "file"));
  EXPECT_TRUE(GlobMatch("h?st", "host"));
  EXPECT_FALSE(GlobMatch("h?st", "hst"));
  EXPECT_TRUE(GlobMatch("[a-c]x", "bx"));
  EXPECT_FALSE(GlobMatch("[!a-c]x", "bx"));
  EXPECT_TRUE(GlobMatch("a\\*b", "a*b"));
  EXPECT_FALSE(GlobMatch("a\\*b", "axb"));
  EXPECT_TRUE(GlobMatch("*.EXAMPLE.org", "mx.example.ORG"));
}

TEST(GlobTest, BraceAlternatives) {
  for (const char* h : {"a.se", "b.dk", "x.y.is", "n.no"}) {
    EXPECT_TRUE(GlobMatch("*.{se,dk,is,no}", h)) << h;
  }
  EXPECT_FALSE(GlobMatch("*.{se,dk,is,no}", "a.fi"));
  EXPECT_FALSE(GlobMatch("*.{se,dk}", "a.sed"));
  EXPECT_TRUE(GlobMatch("{mx,smtp{1,2}}.example", "smtp2.example"));
  EXPECT_FALSE(GlobMatch("{mx,smtp{1,2}}.example", "smtp3.example"));
  EXPECT_TRUE(GlobMatch("{,www.}example", "example"));
}

TEST(SchedulerConfTest, SeedExampleParsesAndInherits) {
  std::string path = std::string(ZM_TESTDATA) + "/seed-scheduler.conf";
  auto text = fs::ReadFile(path);
  ASSERT_TRUE(text.ok()) << text.status();
  auto conf = ParseSchedulerConf(*text, path, TestNode());
  ASSERT_TRUE(conf.ok()) << conf.status();
  EXPECT_EQ(conf->authfile, "/opt/mail/scheduler.auth");
  EXPECT_EQ(conf->mailsock, "UNIX:/srv/node/run/mailq.sock");
  EXPECT_EQ(conf->maxta, 0);
  EXPECT_EQ(conf->EffectiveMaxTa(), AutoMaxTa());
  EXPECT_GE(AutoMaxTa(), 10);
  EXPECT_LE(AutoMaxTa(), 1000);
  ASSERT_FALSE(conf->clauses.empty());
  EXPECT_EQ(conf->clauses[0].selectors, std::vector<std::string>{"*/*"});

  // local/file* and local/pipe* share one parameter block.
  ThreadParams file = conf->Resolve("local", "file");
  EXPECT_EQ(file.command, "mailbox -8");
  EXPECT_EQ(file.interval_ms, 300'000);
  EXPECT_EQ(file.idlemax_ms, 540'000);
  EXPECT_EQ(file.maxchannel, 15);
  EXPECT_EQ(file.maxring, 5);
  EXPECT_EQ(file.ring_name, "local/file*");
  ThreadParams pipe = conf->Resolve("local", "pipe");
  EXPECT_EQ(pipe.ring, file.ring);
  // ...and inherit */* (column-0 continuation lines included).
  EXPECT_EQ(file.expiry_ms, 3 * 86'400'000LL);
  EXPECT_EQ(file.retries, (std::vector<int>{1, 1, 2, 3, 5, 8, 13, 21, 34}));
  EXPECT_EQ(file.user, "root");
  EXPECT_EQ(file.group, "daemon");
  EXPECT_TRUE(file.ageorder);
  EXPECT_EQ(file.overfeed, 150);
  EXPECT_EQ(file.skew, 1);

  ThreadParams user = conf->Resolve("local", "root");
  EXPECT_EQ(user.ring_name, "local/*");
  EXPECT_NE(user.ring, file.ring);

  // The first matching clause with a command wins.
  ThreadParams gw = conf->Resolve("smtp", "core-gw.funet.fi");
  EXPECT_EQ(gw.command, "smtp -s");
  EXPECT_EQ(gw.expiry_ms, 60'000);
  EXPECT_EQ(gw.interval_ms, 15'000);
  EXPECT_EQ(gw.retries, std::vector<int>{1});
  EXPECT_EQ(gw.maxring, 5);
  ThreadParams funet = conf->Resolve("smtp", "www.funet.fi");
  EXPECT_EQ(funet.ring_name, "smtp/*funet.fi");
  EXPECT_EQ(funet.interval_ms, 600'000);
  EXPECT_EQ(funet.maxring, 9);

  ThreadParams se = conf->Resolve("smtp", "mail.kth.se");
  EXPECT_EQ(se.ring_name, "smtp/*.{se,dk,is,no}");
  EXPECT_EQ(se.maxring, 20);
  EXPECT_EQ(se.maxchannel, 199);

  ThreadParams etrn = conf->Resolve("smtp-etrn", "client.example");
  EXPECT_TRUE(etrn.queueonly);
  EXPECT_EQ(etrn.interval_ms, 3'600'000);
  EXPECT_EQ(etrn.retries, std::vector<int>{12});
  auto cmd =
      ExpandCommand(etrn.command, "smtp-etrn", "client.example", TestNode());
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(*cmd,
            "smtp -S /opt/mail/smtp-tls.conf -s -c smtp-etrn -l "
            "/srv/node/log/smtp-etrn");

  ThreadParams other = conf->Resolve("smtp", "example.zz");
  EXPECT_EQ(other.ring_name, "smtp/*");
  EXPECT_EQ(other.maxring, 50);
  EXPECT_EQ(other.interval_ms, 60'000);  // from */*

  ThreadParams err = conf->Resolve("error", "nouser");
  EXPECT_EQ(err.command, "errormail");
  EXPECT_EQ(err.idlemax_ms, 120'000);

  ThreadParams bb = conf->Resolve("bitbucket", "x");
  EXPECT_EQ(bb.command, "sm -c $channel bitbucket");

  ThreadParams none = conf->Resolve("nosuchchannel", "x");
  EXPECT_EQ(none.ring, -1);
  EXPECT_TRUE(none.command.empty());
}

TEST(SchedulerConfTest, ParamsOnSelectorLineAndSeveralPerLine) {
  auto conf = ParseOk(
      "*/*  interval=2m expiry=1d\n"
      "smtp/*.example maxring=3 command=\"smtp -v\" queueonly\n"
      "smtp/*\n"
      "\tmaxchannel=4 bhost nice=5 priority=-1\n"
      "\tcommand=smtp\n"
      "PARAMmailsock = \"TCP:1174\"\n");
  EXPECT_EQ(conf.mailsock, "TCP:1174");
  ThreadParams a = conf.Resolve("smtp", "mx.example");
  EXPECT_EQ(a.command, "smtp -v");
  EXPECT_EQ(a.maxring, 3);
  EXPECT_TRUE(a.queueonly);
  EXPECT_EQ(a.interval_ms, 120'000);
  EXPECT_EQ(a.expiry_ms, 86'400'000);
  ThreadParams b = conf.Resolve("smtp", "other.net");
  EXPECT_EQ(b.command, "smtp");
  EXPECT_EQ(b.maxchannel, 4);
  EXPECT_FALSE(b.queueonly);
  EXPECT_TRUE(b.bhost);
  EXPECT_EQ(b.nice, 5);
  EXPECT_EQ(b.priority, -1);
}

TEST(SchedulerConfTest, GrpcTlsNeedsCertKeyAndAddress) {
  SchedulerConf c = ParseOk(
      "PARAMgrpcaddr = \"TCP:1740\"\n"
      "PARAMgrpccert = \"$MAILVAR/admin.crt\"\n"
      "PARAMgrpckey = \"$MAILVAR/admin.key\"\n"
      "*/*  maxta=2\n");
  EXPECT_EQ(c.grpcaddr, "127.0.0.1:1740");
  EXPECT_EQ(c.grpccert, "/srv/node/etc/admin.crt");
  EXPECT_EQ(c.grpccert_line, 2);
  EXPECT_EQ(c.grpckey_line, 3);
  EXPECT_EQ(ParseError("PARAMgrpcaddr = \"TCP:1740\"\n"
                       "PARAMgrpccert = \"/a.crt\"\n*/* maxta=2\n"),
            "scheduler.conf:2: PARAMgrpccert without PARAMgrpckey");
  EXPECT_EQ(ParseError("*/* maxta=2\nPARAMgrpcaddr = \"TCP:1740\"\n"
                       "PARAMgrpckey = \"/a.key\"\n"),
            "scheduler.conf:3: PARAMgrpckey without PARAMgrpccert");
  EXPECT_NE(ParseError("PARAMgrpccert = \"/a.crt\"\n"
                       "PARAMgrpckey = \"/a.key\"\n*/* maxta=2\n")
                .find("scheduler.conf:1: PARAMgrpccert needs PARAMgrpcaddr"),
            std::string::npos);
}

TEST(SchedulerConfTest, BychannelIsRefusedWithItsLine) {
  EXPECT_EQ(ParseError("uucp/*\n  maxchannel=5\n  bychannel\n  command=sm\n"),
            "scheduler.conf:3: 'bychannel' is not supported: jobs always go "
            "per channel/host thread (remove it; see docs/scheduler.md)");
}

TEST(SchedulerConfTest, ErrorsNameFileAndLine) {
  EXPECT_EQ(ParseError("*/*\n  interval=1m\n  bogus=3\n"),
            "scheduler.conf:3: unknown parameter 'bogus'");
  EXPECT_EQ(ParseError("*/*\n  interval=soon\n"),
            "scheduler.conf:2: bad duration for interval: 'soon'");
  EXPECT_EQ(ParseError("*/*\n  maxring=-1\n"),
            "scheduler.conf:2: bad value for maxring: '-1' (0..100000)");
  EXPECT_EQ(ParseError("*/*\n  retries=\"1 x\"\n"),
            "scheduler.conf:2: bad retries factor 'x' (positive integers)");
  EXPECT_EQ(ParseError("  interval=1m\n"),
            "scheduler.conf:1: parameter before any channel/host clause");
  EXPECT_EQ(ParseError("*/*\n  ageorder=yes\n"),
            "scheduler.conf:2: 'ageorder' is a flag and takes no value");
  EXPECT_EQ(ParseError("# c\n\nPARAMbogus = \"x\"\n"),
            "scheduler.conf:3: unknown PARAM 'bogus'");
  EXPECT_EQ(ParseError("*/*\n  command=\"smtp -s\n"),
            "scheduler.conf:2: unterminated quote in 'command=\"smtp -s'");
  EXPECT_EQ(ParseError("foo\n"),
            "scheduler.conf:1: expected a channel/host selector, got 'foo'");
  EXPECT_EQ(ParseError("*/*\n  interval\n"),
            "scheduler.conf:2: 'interval' needs a value (interval=...)");
}

TEST(SchedulerConfTest, DefaultTemplateParses) {
  std::string path = std::string(ZM_DEFAULTS) + "/scheduler.conf";
  auto text = fs::ReadFile(path);
  ASSERT_TRUE(text.ok()) << text.status();
  auto conf = ParseSchedulerConf(*text, path, TestNode());
  ASSERT_TRUE(conf.ok()) << conf.status();
  EXPECT_EQ(conf->Resolve("local", "root").command, "mailbox");
  EXPECT_EQ(conf->Resolve("error", "nouser").command, "errormail");
  EXPECT_EQ(conf->Resolve("hold", "dns:example.org").command, "hold");
  EXPECT_EQ(conf->Resolve("smtp", "example.net").warning_ms, 4 * 3'600'000);
  EXPECT_EQ(conf->Resolve("smtp", "example.net").interval_ms, 60'000);
  EXPECT_FALSE(conf->Resolve("smtp", "example.net").command.empty());
  EXPECT_EQ(conf->authfile, "/srv/node/etc/scheduler.auth");
}

TEST(SchedulerConfTest, CommandWords) {
  EXPECT_EQ(SplitCommandWords("sm -c \"a b\" x"),
            (std::vector<std::string>{"sm", "-c", "a b", "x"}));
  EXPECT_EQ(SplitCommandWords("  mailbox  "),
            std::vector<std::string>{"mailbox"});
}

}  // namespace
}  // namespace zm::scheduler
