#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/smtpserver/smtpserver_config.h"
#include "node/smtpserver/smtpserver_policy.h"
#include "node/smtpserver/smtpserver_settings.h"

namespace zm::smtpserver {
namespace {

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/zm-smtpconf-XXXXXX";
    path_ = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string p = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p) << text;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string Template(const std::string& name) {
  auto t = fs::ReadFile(std::string(ZM_DEFAULTS_DIR) + "/" + name);
  EXPECT_TRUE(t.ok()) << t.status();
  std::string s = t.ok() ? *t : "";
  for (auto [k, v] :
       {std::pair{"@SMTP_ADDRESS@", "127.0.0.1"},
        std::pair{"@SMTP_PORT@", "2525"}, std::pair{"@HOSTNAME@", "mx.test"},
        std::pair{"@NODE_ID@", "t1"}}) {
    for (size_t p; (p = s.find(k)) != std::string::npos;)
      s.replace(p, strlen(k), v);
  }
  return s;
}

TEST(ServerConfig, DefaultTemplateParses) {
  TempDir d;
  auto c = ParseServerConfig(
      d.Write("smtpserver.conf", Template("smtpserver.conf")));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->bind_addresses.size(), 1u);
  EXPECT_EQ(c->bind_addresses[0], "127.0.0.1");
  EXPECT_EQ(c->bind_port, 2525);
  EXPECT_EQ(c->max_size, 10000000u);
  EXPECT_EQ(c->max_same_ip_source, 10);
  EXPECT_EQ(c->max_parallel_connections, 800);
  EXPECT_EQ(c->helo_patterns.size(), 3u);
  EXPECT_FALSE(c->help.empty());
}

TEST(ServerConfig, SeedStyleFileParses) {
  TempDir d;
  auto c = ParseServerConfig(d.Write("smtpserver.conf", R"(#
PARAM maxsize          10000000  # Same as -M -option
PARAM BindAddress    [0.0.0.0] # all
PARAM BindAddress    [IPv6.0::0]
PARAM  DEBUGcmd
PARAM  enable-router
PARAM      smtp-auth      # enable
PARAM      deliverby 60
PARAM No8BITIME
PARAM NoCHUNKING
PARAM no-multiline-replies # except to EHLO
PARAM hdr220 %H ESMTP (NO UCE)(NO UBE) our local time is now %T
PARAM help -----
PARAM help
PARAM policydb btree /opt/mail/db/smtp-policy
PARAM tarpit 20 2
PARAM use-tls
PARAM tls-cert-file /opt/mail/db/smtpserver-cert.pem
PARAM etrn-cluster   localhost      etrn zzETRNzz
localhost                999 ftveR
some.host.domain         999 !NO EMAIL ACCEPTED FROM YOUR MACHINE
\[*\]                    999 ve
*                          999 veR
)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bind_addresses, (std::vector<std::string>{"0.0.0.0", "::"}));
  EXPECT_TRUE(c->no_8bitmime);
  EXPECT_TRUE(c->no_chunking);
  EXPECT_EQ(c->help, (std::vector<std::string>{"-----", ""}));
  ASSERT_EQ(c->helo_patterns.size(), 4u);
  EXPECT_EQ(c->helo_patterns[1].refusal, "NO EMAIL ACCEPTED FROM YOUR MACHINE");
  EXPECT_EQ(c->helo_patterns[3].flags, "veR");
  EXPECT_EQ(ExpandHdr220("%H says %% hi", "mx.test", 0), "mx.test says % hi");
}

struct BadCase {
  const char* text;
  const char* error;  // expected "smtpserver.conf:LINE: ..." fragment
};

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, NamesFileAndLine) {
  TempDir d;
  std::string path = d.Write("smtpserver.conf", GetParam().text);
  auto c = ParseServerConfig(path);
  ASSERT_FALSE(c.ok()) << GetParam().text;
  EXPECT_NE(std::string(c.status().message()).find(GetParam().error),
            std::string::npos)
      << c.status();
  EXPECT_EQ(std::string(c.status().message()).rfind(path, 0), 0u) << c.status();
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadConfig,
    ::testing::Values(
        BadCase{"# x\nPARAM bogus 1\n", ":2: unknown PARAM 'bogus'"},
        BadCase{"PARAM BindAddress 127.0.0.1\n", ":1: BindAddress needs"},
        BadCase{"PARAM BindAddress [1.2.3]\n", ":1: BindAddress needs"},
        BadCase{"PARAM BindPort 70000\n", ":1: BindPort needs a number"},
        BadCase{"PARAM BindPort x\n", ":1: BindPort needs a number"},
        BadCase{"PARAM maxsize -1\n", ":1: maxsize needs a number"},
        BadCase{"PARAM RcptLimitCount 10\n",
                ":1: RcptLimitCount needs a number from 100"},
        BadCase{"PARAM MaxSameIpSource lots\n", ":1: MaxSameIpSource"},
        BadCase{"PARAM MaxParallelConnections 0\n",
                ":1: MaxParallelConnections"},
        BadCase{"PARAM ListenQueueSize 0\n", ":1: ListenQueueSize"},
        BadCase{"PARAM NoDSN please\n", ":1: NoDSN takes no value"},
        BadCase{"PARAM hdr220\n", ":1: hdr220 needs a text"},
        BadCase{"PARAM\n", ":1: PARAM needs a key"},
        BadCase{"localhost\n", ":1: HELO pattern 'localhost' needs"},
        BadCase{"localhost high veR\n", ":1: HELO pattern"},
        BadCase{"localhost 999 v e\n", ":1: style flags"},
        BadCase{"localhost 999 v9\n", ":1: bad style flag '9'"},
        BadCase{"PARAM tarpit 20\n", ":1: tarpit needs"},
        BadCase{"PARAM tarpit 20 x 30\n", ":1: tarpit needs"},
        BadCase{"PARAM tls-ask-cert maybe\n", ":1: tls-ask-cert takes 0 or 1"},
        BadCase{"PARAM tls-cert-file\n", ":1: tls-cert-file needs a value"},
        BadCase{"PARAM BindSubmit 99999\n", ":1: BindSubmit needs a number"},
        BadCase{"PARAM listen-ssmtp x\n", ":1: listen-ssmtp takes"},
        BadCase{"PARAM spf-threshold maybe\n", ":1: spf-threshold takes"},
        BadCase{"PARAM enable-router yes\n", ":1: enable-router takes no"},
        BadCase{"PARAM deliverby soon\n", ":1: deliverby takes"},
        BadCase{"PARAM data-timeout 0\n", ":1: data-timeout needs"},
        BadCase{"PARAM data-min-rate fast\n", ":1: data-min-rate needs"},
        BadCase{"PARAM data-min-rate 100 0\n", ":1: data-min-rate needs"},
        BadCase{"PARAM data-min-rate 100 2 3\n", ":1: data-min-rate needs"},
        BadCase{"PARAM dnsbl-zones bad/zone\n", ":1: dnsbl-zones needs"},
        BadCase{"PARAM client-dns-timeout 0\n", ":1: client-dns-timeout"},
        BadCase{"PARAM no-reverse-dns 1\n", ":1: no-reverse-dns takes no"},
        BadCase{"PARAM identflg 1\n", ":1: identflg takes no value"},
        BadCase{"PARAM ident-timeout 0\n", ":1: ident-timeout needs"},
        BadCase{"PARAM ident-timeout 61\n", ":1: ident-timeout needs"},
        BadCase{"PARAM ident-port 70000\n", ":1: ident-port needs"}));

TEST(ServerConfig, ClientDnsAndDataRateKeys) {
  TempDir d;
  auto defaults = ParseServerConfig(d.Write("a.conf", "# nothing\n"));
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_TRUE(defaults->reverse_dns);
  EXPECT_EQ(defaults->client_dns_timeout_sec, 5);
  EXPECT_EQ(defaults->data_min_rate, 500);
  EXPECT_EQ(defaults->data_min_rate_window_sec, 30);
  auto c = ParseServerConfig(d.Write("b.conf", R"(PARAM no-reverse-dns
PARAM client-dns-timeout 2
PARAM dnsbl-zones Zen.Example.:bl.test
PARAM data-min-rate 100 2
PARAM tls-ccert-vd 3
PARAM tls-loglevel 0
)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->reverse_dns);
  EXPECT_EQ(c->client_dns_timeout_sec, 2);
  EXPECT_EQ(c->dnsbl_zones,
            (std::vector<std::string>{"zen.example", "bl.test"}));
  EXPECT_EQ(c->data_min_rate, 100);
  EXPECT_EQ(c->data_min_rate_window_sec, 2);
  EXPECT_EQ(c->tls.ccert_vd, 3);
  EXPECT_EQ(c->tls.loglevel, 0);
  auto off = ParseServerConfig(d.Write("c.conf", "PARAM data-min-rate 0\n"));
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->data_min_rate, 0);
}

TEST(ServerConfig, Hdr220NamesTheClient) {
  EXPECT_EQ(ExpandHdr220("%H hi %R", "mx.test", 0, "c.example"),
            "mx.test hi c.example");
  EXPECT_EQ(ExpandHdr220("%H hi %R", "mx.test", 0), "mx.test hi unknown");
}

TEST(ServerConfig, IdentKeysAndHdr220Tag) {
  TempDir d;
  auto defaults = ParseServerConfig(d.Write("a.conf", "# nothing\n"));
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_FALSE(defaults->ident);
  EXPECT_EQ(defaults->ident_timeout_sec, 5);
  EXPECT_EQ(defaults->ident_port, 113);
  auto c = ParseServerConfig(d.Write("b.conf", R"(PARAM identflg
PARAM ident-timeout 2
PARAM ident-port 1113
)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->ident);
  EXPECT_EQ(c->ident_timeout_sec, 2);
  EXPECT_EQ(c->ident_port, 1113);
  // ZMailer's %I: "+IDENT" when ident lookups are on.
  EXPECT_EQ(ExpandHdr220("%H ESMTP%I", "mx.test", 0, "", true),
            "mx.test ESMTP+IDENT");
  EXPECT_EQ(ExpandHdr220("%H ESMTP%I", "mx.test", 0, "", false),
            "mx.test ESMTP");
}

TEST(ServerConfig, EveryActedOnKeyIsParsed) {
  TempDir d;
  auto c = ParseServerConfig(d.Write("smtpserver.conf", R"(
PARAM BindSubmit 2587
PARAM listen-ssmtp
PARAM user mail
PARAM TcpRcvBufferSize 32000
PARAM tarpit 0.5 2 4
PARAM deliverby 60
PARAM VRFYcmd
PARAM EXPNcmd
PARAM enable-router
PARAM contentfilter $MAILBIN/filter
PARAM smtp-auth
PARAM AUTH-LOGIN-also-without-TLS
PARAM auth-failrate 5
PARAM max-error-recipients 7
PARAM data-timeout 60
PARAM data-end-timeout 90
PARAM tls-cert-file $MAILVAR/c.pem
PARAM tls-key-file $MAILVAR/k.pem
PARAM tls-CAfile $MAILVAR/ca.pem
PARAM tls-use-scache
PARAM tls-scache-timeout 600
PARAM tls-ask-cert 1
PARAM tls-require-cert 0
PARAM rcvd-auth-user
PARAM rcvd-tls-mode
PARAM spf-threshold softfail
)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->submission_port, 2587);
  EXPECT_EQ(c->smtps_port, 465);
  EXPECT_EQ(c->run_as_user, "mail");
  EXPECT_EQ(c->tcp_rcv_buffer, 32000);
  EXPECT_DOUBLE_EQ(c->tarpit_initial, 0.5);
  EXPECT_DOUBLE_EQ(c->tarpit_exponent, 2);
  EXPECT_DOUBLE_EQ(c->tarpit_max, 4);
  EXPECT_EQ(c->deliverby_min_sec, 60);
  EXPECT_TRUE(c->vrfy && c->expn && c->enable_router && c->smtp_auth &&
              c->auth_without_tls);
  EXPECT_EQ(c->content_filter, "$MAILBIN/filter");
  EXPECT_EQ(c->auth_failrate, 5);
  EXPECT_EQ(c->max_error_recipients, 7);
  EXPECT_EQ(c->data_timeout_sec, 60);
  EXPECT_EQ(c->data_end_timeout_sec, 90);
  EXPECT_EQ(c->tls.cert_file, "$MAILVAR/c.pem");
  EXPECT_EQ(c->tls.ca_file, "$MAILVAR/ca.pem");
  EXPECT_TRUE(c->tls.use_scache);
  EXPECT_EQ(c->tls.scache_timeout_sec, 600);
  EXPECT_TRUE(c->tls.ask_cert);
  EXPECT_FALSE(c->tls.require_cert);
  EXPECT_TRUE(c->rcvd_auth_user && c->rcvd_tls_mode);
  EXPECT_FALSE(c->rcvd_ident);
}

TEST(Policy, DefaultsTrustLoopbackOnly) {
  Policy p;
  EXPECT_TRUE(p.IsTrusted("127.0.0.1"));
  EXPECT_TRUE(p.IsTrusted("127.9.9.9"));
  EXPECT_TRUE(p.IsTrusted("::1"));
  EXPECT_TRUE(p.IsTrusted("::ffff:127.0.0.1"));
  EXPECT_FALSE(p.IsTrusted("192.0.2.1"));
  EXPECT_FALSE(p.IsTrusted("2001:db8::1"));
  EXPECT_FALSE(p.IsTrusted("garbage"));
}

TEST(Policy, DefaultTemplatesParse) {
  std::vector<std::pair<std::string, std::string>> comp = {
      {"smtp-policy.relay", Template("smtp-policy.relay")},
      {"smtp-policy.mx", Template("smtp-policy.mx")},
      {"smtp-policy.spam", Template("smtp-policy.spam")},
  };
  auto p = Policy::Parse("smtp-policy.src", Template("smtp-policy.src"), comp);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->IsTrusted("127.0.0.1"));
  EXPECT_TRUE(p->IsTrusted("::1"));
  EXPECT_FALSE(p->IsTrusted("192.0.2.1"));
  EXPECT_FALSE(p->IsTrusted("2001:db8::1"));
}

TEST(Policy, LongestPrefixAndTagsDecide) {
  auto p = Policy::Parse("smtp-policy.src", R"(
_full_rights   relaycustnet +
_inner         fulltrustnet +
_outer         = _inner
[10.0.0.0]/8   = _full_rights
[10.1.0.0]/16  relaycustnet -
[10.1.2.0]/24  = _outer
[127.0.0.0]/8  relaycustnet -
[ipv6:2001:db8::]/32 relaycustnet +
example.com    relaytarget +  message "quoted # not a comment"
)",
                         {{"smtp-policy.relay", "[192.0.2.0]/24\n# c\n"}});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->IsTrusted("10.9.9.9"));
  EXPECT_FALSE(p->IsTrusted("10.1.9.9"));
  EXPECT_TRUE(p->IsTrusted("10.1.2.3"));
  EXPECT_FALSE(p->IsTrusted("127.0.0.1"));  // the built-in default overridden
  EXPECT_TRUE(p->IsTrusted("::1"));
  EXPECT_TRUE(p->IsTrusted("2001:db8:1::5"));
  EXPECT_TRUE(p->IsTrusted("192.0.2.200"));
}

TEST(Policy, BadLinesNameFileAndLine) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {"x.example frobnicate +\n",
       "smtp-policy.src:1: unknown policy attribute 'frobnicate'"},
      {"\nx.example rejectnet\n",
       "smtp-policy.src:2: attribute 'rejectnet' needs a value"},
      {"[10.0.0.0]/33 relaycustnet +\n", "smtp-policy.src:1: bad network key"},
      {"[10.0.0]/8 relaycustnet +\n", "smtp-policy.src:1: bad network key"},
      {"x.example = _nope\n", "smtp-policy.src:1: tag _nope is not defined"},
      {"x.example =\n", "smtp-policy.src:1: '=' needs a _tag"},
      {"x.example message \"open\n", "smtp-policy.src:1: unterminated"},
      {"_a = _b\n_b = _a\nx = _a\n", "nested more than three levels"},
  };
  for (const Case& c : cases) {
    auto p = Policy::Parse("smtp-policy.src", c.text, {});
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_NE(std::string(p.status().message()).find(c.error),
              std::string::npos)
        << c.text << " -> " << p.status();
  }
  auto p = Policy::Parse("smtp-policy.src", "",
                         {{"smtp-policy.relay", "# nets\n[10.0.0.0]/40\n"}});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message())
                .find("smtp-policy.relay:2: bad network key"),
            std::string::npos)
      << p.status();
}

TEST(Policy, CompanionTagsHaveBuiltInMeanings) {
  // No smtp-policy.src definitions: the relay list still means full rights.
  auto p = Policy::Parse("smtp-policy.src", "",
                         {{"smtp-policy.relay", "[198.51.100.0]/24\n"},
                          {"localnames", "mx.test\n"}});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->IsTrusted("198.51.100.9"));
  EXPECT_EQ(p->entry_count(), 2u);
}

TEST(Settings, LoadsTheNodesNames) {
  TempDir d;
  d.Write("etc/smtpserver.conf", Template("smtpserver.conf"));
  d.Write("etc/mail.conf", "hostname=mx1.example.net\nmydomain=example.net\n");
  d.Write("etc/localnames",
          "# ours\nOther.Example.  canonical\n\nthird.example\n");
  auto s = LoadSettings(NodeDir{d.path()});
  ASSERT_TRUE(s.ok()) << s.status();
  for (const char* n : {"mx1.example.net", "example.net", "localhost",
                        "other.example", "third.example"}) {
    EXPECT_TRUE((*s)->domains.IsLocal(n)) << n;
  }
  EXPECT_FALSE((*s)->domains.IsLocal("canonical"));
  EXPECT_EQ((*s)->session.hostname, "mx1.example.net");
  EXPECT_EQ((*s)->GreetingText(0), "mx1.example.net ESMTP zmnode");
}

TEST(Settings, ErrorsComeFromTheRightFile) {
  TempDir d;
  d.Write("etc/smtpserver.conf", "PARAM maxsize 10\n");
  d.Write("etc/mail.conf", "hostname=mx1.example.net\n");
  d.Write("etc/smtp-policy.src", "\n\n[1.2.3.4]/99 relaycustnet +\n");
  auto s = LoadSettings(NodeDir{d.path()});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message())
                .find("smtp-policy.src:3: bad network key"),
            std::string::npos)
      << s.status();
}

}  // namespace
}  // namespace zm::smtpserver
