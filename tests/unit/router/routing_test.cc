#include "node/router/routing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>

#include "node/common/strings.h"
#include "node/relations/newdb.h"
#include "tests/unit/dns/dnsmasq.h"
#include "tests/unit/router/test_node.h"

namespace zm::router {

void PrintTo(const Route& r, std::ostream* os) {
  *os << r.channel << "/" << r.host << "/" << r.user << " (" << r.diag << ")";
}

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using zm::test::TestNode;

class RoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    t_.Append("etc/aliases",
              "team:      alice, bob@partner.example\n"
              "alice:     alice, /var/mail-archive/alice\n"  // keeps a copy
              "prog:      \"|/usr/bin/logger -t prog\"\n"
              "box:       /srv/mail/box/\n"
              "outer:     middle\n"
              "middle:    inner\n"
              "inner:     alice\n"
              "loop1:     loop2\n"
              "loop2:     loop1\n"
              "ghostlist: ghost\n"
              "list:      :include:" +
                  t_.Path("etc/list.inc") +
                  "\n"
                  "escaped:   \\prog\n");
    t_.Write("etc/list.inc",
             "# members\nalice, \"|/bin/cat\"\n/tmp/list.log\n");
    t_.Append("etc/routes",
              "example.org        smtp![192.0.2.1]\n"
              ".partner.example   smtp!relay.partner.example\n"
              "closed.example     error!nouser\n"
              "gone.example       error!moved this domain has moved\n"
              "inside.example     local\n");
    t_.Append("etc/fqdnaliases",
              "sales@example.org: alice, carol@remote.example\n");
    t_.Append("etc/localnames", "Other.Example\n");
    // Local users without system accounts: a mailbox file, a Maildir.
    t_.Write("mail/alice", "");
    std::filesystem::create_directories(t_.Path("mail/dora/cur"));
    std::string report;
    ASSERT_TRUE(relations::NewDb(t_.node(), "", &report).ok());
    auto r = Routing::Open(t_.node());
    ASSERT_TRUE(r.ok()) << r.status();
    routing_ = std::move(*r);
  }

  std::vector<Route> R(std::string_view a) { return routing_->RouteAddress(a); }

  TestNode t_;
  std::unique_ptr<Routing> routing_;
};

Route Local(const std::string& user) { return {"local", user, user, "", ""}; }
Route Err(const std::string& host, const std::string& user,
          const std::string& diag) {
  return {"error", host, user, diag, ""};
}

TEST_F(RoutingTest, LocalUsers) {
  EXPECT_THAT(R("root"), ElementsAre(Local("root")));  // getpwnam
  EXPECT_THAT(R("dora"), ElementsAre(Local("dora")));  // Maildir in mail/
  EXPECT_THAT(R("Dora@MX1.example.net"), ElementsAre(Local("dora")));
  EXPECT_THAT(R("<dora@example.net>"), ElementsAre(Local("dora")));
  EXPECT_THAT(R("dora@localhost"), ElementsAre(Local("dora")));
  EXPECT_THAT(R("dora@[127.0.0.1]"), ElementsAre(Local("dora")));
  EXPECT_THAT(R("dora@[IPv6:::1]"), ElementsAre(Local("dora")));
  EXPECT_THAT(R("dora@other.example"),
              ElementsAre(Local("dora")));  // localnames
}

TEST_F(RoutingTest, UnknownUserGoesToTheErrorChannel) {
  EXPECT_THAT(R("nosuchuser12345@mx1.example.net"),
              ElementsAre(Err("nouser", "nosuchuser12345@mx1.example.net",
                              "user unknown")));
  EXPECT_THAT(R("ghostlist"),
              ElementsAre(Err("nouser", "ghost", "user unknown")));
  // Path tricks are never users.
  EXPECT_EQ(R("..@localhost")[0].channel, "error");
  EXPECT_EQ(R("\"a/b\"@localhost")[0].channel, "error");
}

TEST_F(RoutingTest, AliasesNestedAndSelfCopy) {
  EXPECT_THAT(R("postmaster"), ElementsAre(Local("root")));
  EXPECT_THAT(R("MAILER-DAEMON@example.net"), ElementsAre(Local("root")));
  EXPECT_THAT(R("alice"), ElementsAre(Local("alice"),
                                      Route{"local", "file",
                                            "/var/mail-archive/alice", "", ""}));
  EXPECT_THAT(R("outer"), ElementsAre(Local("alice"),
                                      Route{"local", "file",
                                            "/var/mail-archive/alice", "", ""}));
  EXPECT_THAT(
      R("team"),
      ElementsAre(
          Local("alice"), Route{"local", "file", "/var/mail-archive/alice", "", ""},
          Route{"smtp", "relay.partner.example", "bob@partner.example", "", ""}));
}

TEST_F(RoutingTest, AliasLoopIsAnError) {
  auto r = R("loop1");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].channel, "error");
  EXPECT_EQ(r[0].host, "loop");
  EXPECT_EQ(r[0].diag, "alias loop (loop1 -> loop2 -> loop1)");
}

TEST_F(RoutingTest, DeepNestingIsBounded) {
  std::string text;
  for (int i = 0; i < 15; ++i) text += StrCat("deep", i, ": deep", i + 1, "\n");
  text += "deep15: root\n";
  t_.Append("etc/aliases", text);
  ASSERT_TRUE(relations::NewDb(t_.node(), "aliases", nullptr).ok());
  ASSERT_TRUE(routing_->ReloadIfChanged().ok());
  auto r = R("deep0");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].channel, "error");
  EXPECT_THAT(r[0].diag, HasSubstr("deeper than 10"));
  EXPECT_THAT(R("deep10"), ElementsAre(Local("root")));
}

TEST_F(RoutingTest, PipesAndFilesOnlyFromAliases) {
  EXPECT_THAT(R("prog"), ElementsAre(Route{"local", "pipe",
                                           "|/usr/bin/logger -t prog", "", ""}));
  EXPECT_THAT(R("box"),
              ElementsAre(Route{"local", "file", "/srv/mail/box/", "", ""}));
  EXPECT_THAT(R("list"),
              ElementsAre(Local("alice"),
                          Route{"local", "file", "/var/mail-archive/alice", "", ""},
                          Route{"local", "pipe", "|/bin/cat", "", ""},
                          Route{"local", "file", "/tmp/list.log", "", ""}));
  // From the sender: refused, never run.
  for (const char* a : {"|/bin/sh -c evil", "/etc/passwd", "<|cmd>",
                        "\"|cmd\"@mx1.example.net", "\"/etc/x\"@localhost"}) {
    auto r = R(a);
    ASSERT_EQ(r.size(), 1u) << a;
    EXPECT_EQ(r[0].channel, "error") << a;
    EXPECT_EQ(r[0].host, "refused") << a;
  }
  // `\prog` in an alias means the user prog, not the alias.
  EXPECT_THAT(R("escaped"), ElementsAre(Err("nouser", "prog", "user unknown")));
}

TEST_F(RoutingTest, RemoteDomainsAndRoutes) {
  EXPECT_THAT(
      R("Bob@Remote.Example"),
      ElementsAre(Route{"smtp", "remote.example", "Bob@remote.example", "", ""}));
  EXPECT_THAT(R("x@example.org"),
              ElementsAre(Route{"smtp", "[192.0.2.1]", "x@example.org", "", ""}));
  EXPECT_THAT(R("x@a.b.partner.example"),
              ElementsAre(Route{"smtp", "relay.partner.example",
                                "x@a.b.partner.example", "", ""}));
  EXPECT_THAT(R("x@closed.example"),
              ElementsAre(Err("nouser", "x@closed.example", "user unknown")));
  EXPECT_THAT(R("x@gone.example"), ElementsAre(Err("moved", "x@gone.example",
                                                   "this domain has moved")));
  EXPECT_THAT(R("dora@inside.example"), ElementsAre(Local("dora")));
  // Source routes are dropped; %-hack is not a relay.
  EXPECT_THAT(
      R("<@hop.example:Bob@remote.example>"),
      ElementsAre(Route{"smtp", "remote.example", "Bob@remote.example", "", ""}));
  EXPECT_EQ(R("bob%remote.example@mx1.example.net")[0].host, "nouser");
}

TEST_F(RoutingTest, FqdnAliases) {
  EXPECT_THAT(
      R("Sales@example.org"),
      ElementsAre(Local("alice"),
                  Route{"local", "file", "/var/mail-archive/alice", "", ""},
                  Route{"smtp", "remote.example", "carol@remote.example", "", ""}));
}

TEST_F(RoutingTest, BadSyntax) {
  for (const char* a : {"", "<>", "a b@c", "bob@", "<x@y"}) {
    auto r = R(a);
    ASSERT_EQ(r.size(), 1u) << a;
    EXPECT_EQ(r[0].channel, "error") << a;
    EXPECT_EQ(r[0].host, "syntax") << a;
  }
}

TEST_F(RoutingTest, ReloadSeesNewAliases) {
  EXPECT_EQ(R("newname")[0].host, "nouser");
  t_.Append("etc/aliases", "newname: root\n");
  ASSERT_TRUE(relations::NewDb(t_.node(), "aliases", nullptr).ok());
  ASSERT_TRUE(routing_->ReloadIfChanged().ok());
  EXPECT_THAT(R("newname"), ElementsAre(Local("root")));
  ASSERT_TRUE(routing_->ReloadIfChanged().ok());  // nothing changed: fine
}

TEST(RoutingOpenTest, MissingDatabaseNamesNewdb) {
  TestNode t;
  auto r = Routing::Open(t.node());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status()));
  EXPECT_THAT(Message(r.status()), HasSubstr("zmailer newdb"));
  EXPECT_THAT(Message(r.status()), HasSubstr("'aliases'"));
}

TEST(RoutingOpenTest, BadConfigNamesFileAndLine) {
  TestNode t;
  t.Append("etc/dbases.conf", "broken\n");
  auto r = Routing::Open(t.node());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Message(r.status()), HasSubstr(t.Path("etc/dbases.conf") + ":"));
}

// New rules: owner-LIST, userdb, .forward, the DNS check, the trace.
class RoutingRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dns_.Start()) << dns_.error();
    ResolveVia(dns_.server());
    t_.Append("etc/aliases",
              "team: alice, ghost\nowner-team: carol\nplain: alice\n");
    t_.Append("etc/userdb", "virt  a virtual user\n");
    t_.Write("mail/alice", "");
    t_.Write("mail/dora", "");
    t_.Write("mail/erin", "");
    std::filesystem::create_directories(t_.Path("fwd"));
  }
  void ResolveVia(const std::string& server) {
    t_.Write("etc/resolver.conf",
             "nameserver " + server + "\ntimeout 300\nattempts 1\n");
  }
  void Open() {
    std::string report;
    ASSERT_TRUE(relations::NewDb(t_.node(), "", &report).ok()) << report;
    auto r = Routing::Open(t_.node());
    ASSERT_TRUE(r.ok()) << r.status();
    routing_ = std::move(*r);
  }
  std::vector<Route> R(std::string_view a) { return routing_->RouteAddress(a); }

  testutil::Dnsmasq dns_{{"mx-host=mx.test,mail.mx.test,10",
                          "host-record=aonly.test,192.0.2.5",
                          "dns-rr=nullmx.test,15,000000"}};
  TestNode t_;
  std::unique_ptr<Routing> routing_;
};

TEST_F(RoutingRulesTest, ListOwnerBecomesTheSender) {
  Open();
  auto r = R("team");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].channel, "local");
  EXPECT_THAT(r[0].sender, ::testing::StartsWith("owner-team@"));
  EXPECT_EQ(r[1].host, "nouser");
  EXPECT_EQ(r[1].sender, r[0].sender);  // its bounce goes to the owner
  EXPECT_EQ(R("plain")[0].sender, "");  // no owner-plain: sender unchanged
}

TEST_F(RoutingRulesTest, UserdbNamesLocalUsers) {
  Open();
  EXPECT_THAT(R("virt"), ElementsAre(Local("virt")));
  EXPECT_EQ(R("nobody-here")[0].host, "nouser");
}

TEST_F(RoutingRulesTest, ForwardOnlyWhenSwitchedOn) {
  t_.Write("fwd/dora", "erin, \\dora\n");
  t_.Append("etc/router.conf",
            "forward-file " + t_.Path("fwd") + "/%u\n");
  Open();
  EXPECT_THAT(R("dora"), ElementsAre(Local("dora")));
  t_.Append("etc/router.conf", "forward yes\n");
  Open();
  EXPECT_THAT(R("dora"), ElementsAre(Local("erin"), Local("dora")));
}

TEST_F(RoutingRulesTest, ForwardWritableByOthersMayNotRunCommands) {
  t_.Write("fwd/dora", "\"|/bin/true\"\n");
  ::chmod(t_.Path("fwd/dora").c_str(), 0666);
  t_.Append("etc/router.conf",
            "forward yes\nforward-file " + t_.Path("fwd") + "/%u\n");
  Open();
  auto r = R("dora");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].host, "refused");
}

TEST_F(RoutingRulesTest, DnsDecidesRemoteDomains) {
  Open();
  EXPECT_THAT(R("u@mx.test"),
              ElementsAre(Route{"smtp", "mx.test", "u@mx.test", "", ""}));
  EXPECT_THAT(R("u@aonly.test"),
              ElementsAre(Route{"smtp", "aonly.test", "u@aonly.test", "", ""}));
  EXPECT_EQ(R("u@nullmx.test")[0].host, "nullmx");
  EXPECT_EQ(R("u@nosuch.test")[0].host, "nodomain");
  auto held = R("u@x.fail.test");
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].channel, "hold");
  EXPECT_EQ(held[0].host, "dns:x.fail.test");
  EXPECT_EQ(held[0].user, "u@x.fail.test");
  EXPECT_THAT(held[0].diag, HasSubstr("temporary DNS failure"));
  // Domain literals never need DNS.
  EXPECT_EQ(R("u@[192.0.2.9]")[0].channel, "smtp");
}

TEST_F(RoutingRulesTest, DnsCheckOffWithoutResolverConf) {
  std::filesystem::remove(t_.Path("etc/resolver.conf"));
  Open();
  EXPECT_EQ(R("u@nosuch.test")[0].channel, "smtp");
  t_.Append("etc/router.conf", "dns-check no\n");
  ResolveVia(dns_.server());
  Open();
  EXPECT_EQ(R("u@nosuch.test")[0].channel, "smtp");
}

TEST_F(RoutingRulesTest, TraceNamesEachStep) {
  Open();
  std::vector<std::string> trace;
  routing_->RouteAddress("team@localhost", &trace);
  std::string all;
  for (const auto& l : trace) all += l + "\n";
  EXPECT_THAT(all, HasSubstr("own domain: localhost"));
  EXPECT_THAT(all, HasSubstr("aliases: team -> alice, ghost"));
  EXPECT_THAT(all, HasSubstr("owner: envelope sender becomes <owner-team@"));
  EXPECT_THAT(all, HasSubstr("=> local alice alice"));
  trace.clear();
  routing_->RouteAddress("u@mx.test", &trace);
  all.clear();
  for (const auto& l : trace) all += l + "\n";
  EXPECT_THAT(all, HasSubstr("dns: mx.test MX 10 mail.mx.test"));
}

TEST_F(RoutingRulesTest, BadRouterConfIsFileLine) {
  t_.Append("etc/router.conf", "colour blue\n");
  std::string report;
  ASSERT_TRUE(relations::NewDb(t_.node(), "", &report).ok());
  auto r = Routing::Open(t_.node());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Message(r.status()), HasSubstr("router.conf:"));
  EXPECT_THAT(Message(r.status()), HasSubstr("unknown key 'colour'"));
}

// Relations an operator adds to dbases.conf take part in routing through
// router.conf `relations STEP NAME...`: consulted in the order given.
TEST_F(RoutingRulesTest, OperatorRelationsJoinTheirStep) {
  t_.Append("etc/dbases.conf",
            "aliases-2      $DBTYPE priv -la $MAILVAR/aliases-2 -lm\n"
            "partner-routes $DBTYPE -    -l  $MAILVAR/partner-routes -lm\n"
            "unused         $DBTYPE -    -l  $MAILVAR/unused -m\n");
  t_.Write("etc/aliases-2", "plain: dora\nsecond: erin\n");
  t_.Write("etc/partner-routes", ".partner.test smtp!gw.partner.test\n");
  t_.Write("etc/unused", "second\n");
  // Compiled but not named in router.conf: not consulted.
  Open();
  EXPECT_EQ(R("second")[0].host, "nouser");
  EXPECT_EQ(R("u@a.partner.test")[0].host, "nodomain");

  t_.Append("etc/router.conf",
            "relations aliases aliases aliases-2\n"
            "relations routes partner-routes routesdb\n");
  Open();
  // The first relation with the key answers: aliases before aliases-2.
  EXPECT_THAT(R("plain"), ElementsAre(Local("alice")));
  EXPECT_THAT(R("second"), ElementsAre(Local("erin")));
  EXPECT_THAT(R("u@a.partner.test"),
              ElementsAre(Route{"smtp", "gw.partner.test", "u@a.partner.test",
                                "", ""}));
  std::vector<std::string> trace;
  routing_->RouteAddress("second", &trace);
  std::string all;
  for (const auto& l : trace) all += l + "\n";
  EXPECT_THAT(all, HasSubstr("aliases-2: second -> erin"));

  // Reloaded like the built-in ones (-m).
  t_.Append("etc/aliases-2", "third: dora\n");
  ASSERT_TRUE(relations::NewDb(t_.node(), "aliases-2", nullptr).ok());
  ASSERT_TRUE(routing_->ReloadIfChanged().ok());
  EXPECT_THAT(R("third"), ElementsAre(Local("dora")));

  // A step's list replaces its built-in relations.
  t_.Append("etc/router.conf", "relations userdb unused\n");
  Open();
  EXPECT_EQ(R("virt")[0].host, "nouser");
  EXPECT_THAT(R("second"), ElementsAre(Local("erin")));
}

TEST_F(RoutingRulesTest, RelationsLinesAreChecked) {
  std::string report;
  ASSERT_TRUE(relations::NewDb(t_.node(), "", &report).ok());
  struct Case {
    std::string line, error;
  } cases[] = {
      {"relations aliases nosuch\n", "relation 'nosuch' is not listed in"},
      {"relations colours aliases\n", "unknown routing step 'colours'"},
      {"relations aliases\n", "name at least one relation"},
      {"relations   \n", "expected 'KEY VALUE'"},
      {"relations routes routesdb\nrelations routes routesdb\n",
       "relations routes given twice"},
  };
  for (const Case& c : cases) {
    t_.Write("etc/router.conf", c.line);
    auto r = Routing::Open(t_.node());
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_THAT(Message(r.status()),
                HasSubstr(t_.Path("etc/router.conf") + ":"));
    EXPECT_THAT(Message(r.status()), HasSubstr(c.error));
  }
}

}  // namespace
}  // namespace zm::router
