#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cluster/client/cluster_client.h"
#include "gtest/gtest.h"
#include "node/admind/admind_api.h"
#include "node/admind/admind_assets.h"
#include "node/admind/admind_auth.h"
#include "node/admind/admind_config.h"
#include "node/admind/admind_events.h"
#include "node/admind/admind_health.h"
#include "node/admind/admind_history.h"
#include "node/admind/admind_jsonlog.h"
#include "node/admind/admind_metrics.h"
#include "node/metrics/metrics_catalog.h"

namespace zm::admind {
namespace {

NodeDir TestNode() { return NodeDir{"/srv/n1"}; }

TEST(AdminConfigTest, DefaultsWithoutFile) {
  auto c = ParseAdminConfig("", "admin.conf", TestNode());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen_host, "127.0.0.1");
  EXPECT_EQ(c->listen_port, 8025);
  EXPECT_EQ(c->auth_file, "/srv/n1/etc/scheduler.auth");
  EXPECT_FALSE(c->tls());
  EXPECT_FALSE(c->ReadNeedsAuth());
  EXPECT_EQ(c->Url(), "http://127.0.0.1:8025/");
}

TEST(AdminConfigTest, ParsesEveryKey) {
  auto c = ParseAdminConfig(
      "# comment\n"
      "listen [::]:9000\n"
      "tls-cert tls/a.pem\n"
      "tls-key  /x/k.pem   # trailing comment\n"
      "auth-file $MAILVAR/users\n"
      "read-auth no\n"
      "max-body 2048\n"
      "max-headers 20\n"
      "max-events-clients 3\n"
      "json-log yes\n"
      "tls-cipher-list ECDHE+AES\n",
      "admin.conf", TestNode());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen_host, "::");
  EXPECT_EQ(c->listen_port, 9000);
  EXPECT_EQ(c->tls_cert, "/srv/n1/etc/tls/a.pem");
  EXPECT_EQ(c->tls_key, "/x/k.pem");
  EXPECT_EQ(c->auth_file, "/srv/n1/etc/users");
  EXPECT_FALSE(c->ReadNeedsAuth());
  EXPECT_EQ(c->max_body, 2048u);
  EXPECT_EQ(c->max_headers, 20);
  EXPECT_EQ(c->max_events_clients, 3);
  EXPECT_TRUE(c->json_log);
  EXPECT_EQ(c->tls_cipher_list, "ECDHE+AES");
  EXPECT_EQ(c->Url(), "https://[::1]:9000/");
}

TEST(AdminConfigTest, ReadAuthAutoFollowsTheAddress) {
  auto wide = ParseAdminConfig("listen 0.0.0.0:8025\n", "a", TestNode());
  ASSERT_TRUE(wide.ok());
  EXPECT_TRUE(wide->ReadNeedsAuth());
  auto v6lo = ParseAdminConfig("listen [::1]:8025\n", "a", TestNode());
  ASSERT_TRUE(v6lo.ok());
  EXPECT_FALSE(v6lo->ReadNeedsAuth());
  auto yes = ParseAdminConfig("read-auth yes\n", "a", TestNode());
  ASSERT_TRUE(yes.ok());
  EXPECT_TRUE(yes->ReadNeedsAuth());
}

TEST(AdminConfigTest, ErrorsNameFileAndLine) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"listen 127.0.0.1\n", "admin.conf:1: "},
      {"\nlisten 127.0.0.1:0\n", "admin.conf:2: "},
      {"listen nohost:80\n", "admin.conf:1: "},
      {"read-auth maybe\n", "admin.conf:1: read-auth"},
      {"bogus 1\n", "admin.conf:1: unknown key 'bogus'"},
      {"listen 1.2.3.4:80 extra\n", "admin.conf:1: 'listen' takes"},
      {"max-body 10\n", "admin.conf:1: max-body"},
      {"tls-cert a.pem\n", "admin.conf:1: tls-cert and tls-key"},
      {"json-log maybe\n", "admin.conf:1: json-log"},
      {"# TLS\ntls-cipher-list ECDHE+AESGCM\n",
       "admin.conf:2: tls-cipher-list without tls-cert"},
  };
  for (const Case& c : cases) {
    auto r = ParseAdminConfig(c.text, "admin.conf", TestNode());
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_TRUE(std::string(r.status().message()).starts_with(c.want))
        << c.text << " -> " << r.status();
  }
}

TEST(ParseListenTest, Forms) {
  std::string h;
  int p = 0;
  ASSERT_TRUE(ParseListen("*:25", &h, &p).ok());
  EXPECT_EQ(h, "0.0.0.0");
  EXPECT_EQ(p, 25);
  ASSERT_TRUE(ParseListen("[2001:db8::1]:443", &h, &p).ok());
  EXPECT_EQ(h, "2001:db8::1");
  EXPECT_FALSE(ParseListen("[2001:db8::1]443", &h, &p).ok());
  EXPECT_FALSE(ParseListen("1.2.3.4:70000", &h, &p).ok());
  EXPECT_FALSE(ParseListen(":80", &h, &p).ok());
}

TEST(BasicAuthTest, Parse) {
  // "root:se:cret" -> user root, password "se:cret".
  auto c = ParseBasicAuth("Basic cm9vdDpzZTpjcmV0");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->user, "root");
  EXPECT_EQ(c->password, "se:cret");
  // "a:b" with padding.
  c = ParseBasicAuth("basic YTpi");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->user, "a");
  EXPECT_EQ(c->password, "b");
  EXPECT_FALSE(ParseBasicAuth("Bearer xyz").has_value());
  EXPECT_FALSE(ParseBasicAuth("Basic !!!!").has_value());
  EXPECT_FALSE(ParseBasicAuth("Basic bm9jb2xvbg==").has_value());  // nocolon
  EXPECT_FALSE(ParseBasicAuth("").has_value());
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm_admind_authXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/scheduler.auth")
        << "nobody:nobody:SNMP QQ TT ETRN:[127.0.0.1]/32\n"
           "root:secret:ALL:[127.0.0.1]/32\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(AuthenticatorTest, RightsAndAddresses) {
  Authenticator auth(dir_ + "/scheduler.auth");
  // root:secret
  const std::string root = "Basic cm9vdDpzZWNyZXQ=";
  // nobody:nobody
  const std::string nobody = "Basic bm9ib2R5Om5vYm9keQ==";
  // root:wrong
  const std::string wrong = "Basic cm9vdDp3cm9uZw==";
  EXPECT_EQ(auth.Check("", "127.0.0.1", 0).code, 401);
  EXPECT_EQ(auth.Check(wrong, "127.0.0.1", 0).code, 401);
  EXPECT_EQ(auth.Check(root, "127.0.0.1", admin::kTokenKill).code, 200);
  EXPECT_EQ(auth.Check(root, "127.0.0.1", 0).user, "root");
  EXPECT_EQ(auth.Check(nobody, "127.0.0.1", admin::kTokenEtrn).code, 200);
  EXPECT_EQ(auth.Check(nobody, "127.0.0.1", admin::kTokenKill).code, 403);
  // Every user's mask is 127.0.0.1/32: from another address nobody may
  // log in, and every request gets 403, with the right password, a wrong
  // one, none, or an unknown user.
  AuthResult outside = auth.Check(root, "192.0.2.1", 0);
  EXPECT_EQ(outside.code, 403);
  EXPECT_NE(outside.reason.find("no scheduler.auth user may log in from "
                                "192.0.2.1"),
            std::string::npos)
      << outside.reason;
  EXPECT_EQ(auth.Check(wrong, "192.0.2.1", 0).code, 403);
  EXPECT_EQ(auth.Check("", "192.0.2.1", 0).code, 403);
  // ghost:x
  EXPECT_EQ(auth.Check("Basic Z2hvc3Q6eA==", "192.0.2.1", 0).code, 403);
  // From 127.0.0.1 an unknown user gets the same 401 as a wrong password;
  // the reason (for the log) says which.
  AuthResult ghost = auth.Check("Basic Z2hvc3Q6eA==", "127.0.0.1", 0);
  EXPECT_EQ(ghost.code, 401);
  EXPECT_EQ(ghost.reason, "unknown user 'ghost'");
  EXPECT_EQ(auth.Check(wrong, "127.0.0.1", 0).reason,
            "wrong password for user 'root'");
}

// One user admitted from a network the other's mask excludes: the other
// user gets 401 there, exactly as a user that does not exist.
TEST_F(AuthenticatorTest, AUserOutsideItsMasksLooksUnknown) {
  std::ofstream(dir_ + "/scheduler.auth") << "alice:pw:ALL:[192.0.2.0]/24\n"
                                             "root:secret:ALL:[127.0.0.1]/32\n";
  Authenticator auth(dir_ + "/scheduler.auth");
  const std::string root = "Basic cm9vdDpzZWNyZXQ=";  // root:secret
  const std::string ghost = "Basic Z2hvc3Q6eA==";     // ghost:x
  AuthResult r = auth.Check(root, "192.0.2.7", 0);
  EXPECT_EQ(r.code, 401);
  EXPECT_EQ(r.reason,
            "user 'root' may not log in from 192.0.2.7 (scheduler.auth "
            "address masks)");
  EXPECT_EQ(auth.Check(ghost, "192.0.2.7", 0).code, 401);
  EXPECT_EQ(auth.Check("Basic YWxpY2U6cHc=", "192.0.2.7", 0).code,
            200);  // alice:pw
  EXPECT_EQ(auth.Check(root, "198.51.100.1", 0).code, 403);
}

TEST(HistoryTest, PerMinuteDeltasAndRestarts) {
  History h(5);
  int64_t t0 = 1'700'000'040;         // a minute boundary
  h.Record(t0, {10, 0, 0, 0, 0, 0});  // the first sample sets the base
  h.Record(t0 + 10, {13, 1, 0, 0, 0, 0});
  h.Record(t0 + 70, {15, 1, 2, 0, 0, 0});
  h.Record(t0 + 130, {4, 1, 2, 0, 1, 7});  // received restarted from 0
  auto s = h.Last(3, t0 + 130);
  EXPECT_EQ(s.first_minute, t0);
  EXPECT_EQ(s.series[0], (std::vector<int64_t>{3, 2, 4}));
  EXPECT_EQ(s.series[1], (std::vector<int64_t>{1, 0, 0}));
  EXPECT_EQ(s.series[2], (std::vector<int64_t>{0, 2, 0}));
  EXPECT_EQ(s.series[5], (std::vector<int64_t>{0, 0, 7}));
  // Older than the ring: zeros.
  auto longer = h.Last(10, t0 + 130);
  EXPECT_EQ(longer.series[0].size(), 10u);
  EXPECT_EQ(longer.series[0][9], 4);
  EXPECT_EQ(longer.series[0][0], 0);
}

TEST(HistoryTest, TotalsFromSamples) {
  using metrics::Kind;
  std::vector<metrics::Sample> s = {
      {std::string(metrics::kSmtpMessagesReceived), "", Kind::kCounter, 5},
      {std::string(metrics::kSchedulerRecipients),
       "channel=\"local\",result=\"delivered\"", Kind::kCounter, 3},
      {std::string(metrics::kSchedulerRecipients),
       "channel=\"smtp\",result=\"delivered\"", Kind::kCounter, 4},
      {std::string(metrics::kSchedulerRecipients),
       "channel=\"smtp\",result=\"deferred\"", Kind::kCounter, 2},
      {std::string(metrics::kSmtpRateLimitRejections), "reason=\"mail\"",
       Kind::kCounter, 9},
  };
  Totals t = CurrentTotals(s);
  EXPECT_EQ(t, (Totals{5, 7, 2, 0, 0, 9}));
}

TEST(PrometheusTest, GroupsFamiliesWithHelpAndType) {
  using metrics::Kind;
  std::vector<metrics::Sample> s = {
      {"zmnode_smtp_connections_total", "listener=\"smtp\"", Kind::kCounter, 2},
      {"zmnode_queue_messages", "", Kind::kGauge, 4},
      {"zmnode_smtp_connections_total", "listener=\"submission\"",
       Kind::kCounter, 1},
      {"zmnode_smtp_connections_total", "listener=\"smtp\"", Kind::kCounter, 3},
      {"custom_thing", "", Kind::kGauge, 1},
  };
  std::string text = RenderPrometheus(s);
  EXPECT_NE(text.find("# TYPE zmnode_smtp_connections_total counter\n"
                      "zmnode_smtp_connections_total{listener=\"smtp\"} 5\n"
                      "zmnode_smtp_connections_total{listener=\"submission\"}"
                      " 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# HELP zmnode_queue_messages Messages in the queue.\n"
                      "# TYPE zmnode_queue_messages gauge\n"
                      "zmnode_queue_messages 4\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE custom_thing gauge\ncustom_thing 1\n"),
            std::string::npos);
}

TEST(AssetsTest, ContentTypes) {
  EXPECT_EQ(ContentType("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentType("js/app.js"), "application/javascript; charset=utf-8");
  EXPECT_EQ(ContentType("a.css"), "text/css; charset=utf-8");
  EXPECT_EQ(ContentType("x.bin"), "application/octet-stream");
  EXPECT_EQ(FindAsset("no/such/file.js"), nullptr);
  EXPECT_NE(FallbackIndex().find("/api/v1/node"), std::string_view::npos);
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm_admind_apiXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    node_.home = tmpl;
    for (const char* d : {"etc", "spool", "run", "log"}) {
      std::filesystem::create_directories(node_.home + "/" + d);
    }
  }
  void TearDown() override { std::filesystem::remove_all(node_.home); }
  Api MakeApi() {
    auto conf = ParseAdminConfig("", "admin.conf", node_);
    return Api(node_, *conf, "t1", &history_, false, nullptr);
  }
  NodeDir node_;
  History history_{60};
};

TEST_F(ApiTest, NodeAloneAnswersForItself) {
  Api api = MakeApi();
  auto node = nlohmann::json::parse(api.Get("node", {}).body);
  EXPECT_EQ(node["node_id"], "t1");
  EXPECT_EQ(node["cluster"], false);
  // Nothing runs in this node directory: not ready, and it says why.
  EXPECT_EQ(node["ready"], false);
  EXPECT_EQ(node["draining"], false);
  auto members = nlohmann::json::parse(api.Get("members", {}).body);
  ASSERT_EQ(members["members"].size(), 1u);
  EXPECT_EQ(members["members"][0]["self"], true);
  EXPECT_EQ(members["members"][0]["state"], "alive");
  // The overlay is a fleet feature.
  EXPECT_EQ(api.Get("policy", {}).status, 503);
  EXPECT_EQ(
      api.Post("policy", R"({"key":"192.0.2.1","action":"reject"})").status,
      503);
}

TEST_F(ApiTest, BadRequestsAreJsonErrors) {
  Api api = MakeApi();
  for (const auto& [what, params] : std::vector<std::pair<std::string, Params>>{
           {"history", {{"minutes", "0"}}},
           {"history", {{"minutes", "x"}}},
           {"rates/top", {{"kind", "bogus"}}},
           {"rates/top", {{"limit", "0"}}},
           {"etrn", {}},
       }) {
    ApiReply r = api.Get(what, params);
    EXPECT_EQ(r.status, 400) << what;
    EXPECT_TRUE(nlohmann::json::parse(r.body).contains("error")) << r.body;
  }
  EXPECT_EQ(api.Get("nothing", {}).status, 404);
  EXPECT_EQ(api.Get("etrn", {{"id", "unknown"}}).status, 404);
  EXPECT_EQ(api.Post("etrn", "[1,2]").status, 400);
  EXPECT_EQ(api.Post("etrn", R"({"domain":"a b"})").status, 400);
  EXPECT_EQ(api.Delete("node", {}).status, 404);
}

TEST_F(ApiTest, HistoryHasOneEntryPerMinute) {
  Api api = MakeApi();
  auto h = nlohmann::json::parse(api.Get("history", {{"minutes", "3"}}).body);
  ASSERT_EQ(h["minutes"].size(), 3u);
  EXPECT_EQ(h["minutes"][1].get<int64_t>() - h["minutes"][0].get<int64_t>(),
            60);
  for (const char* series : {"t1", "fleet"}) {
    for (std::string_view name : kHistoryNames) {
      EXPECT_EQ(h["series"][series][std::string(name)].size(), 3u);
    }
  }
}

TEST_F(ApiTest, ReadinessFollowsTheDrainingMarker) {
  Readiness r = CheckReadiness(node_);
  EXPECT_FALSE(r.draining);
  std::ofstream(DrainingMarker(node_)) << "";
  r = CheckReadiness(node_);
  EXPECT_TRUE(r.draining);
  EXPECT_FALSE(r.ready);
  EXPECT_NE(std::find(r.failures.begin(), r.failures.end(), "node is draining"),
            r.failures.end());
}

TEST(JsonLogTest, LoggerLinesBecomeJson) {
  time_t now = 1795248224;  // November 2026
  auto j = nlohmann::json::parse(MaillogLineToJson(
      "Nov 21 08:03:44 mx1 zmnode/scheduler[4712]: 1K0R3N6QPY9P11PK-mx1: "
      "to=<root@mx1>, status=sent (ok)",
      now));
  EXPECT_EQ(j["host"], "mx1");
  EXPECT_EQ(j["program"], "scheduler");
  EXPECT_EQ(j["pid"], 4712);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "to=<root@mx1>, status=sent (ok)");
  EXPECT_TRUE(j["ts"].get<std::string>().starts_with("2026-11-2"));
  EXPECT_TRUE(j["ts"].get<std::string>().ends_with("Z"));
  // Queue ids are recognised, not any "word: ".
  j = nlohmann::json::parse(MaillogLineToJson(
      "Nov  1 00:00:01 mx1 zmnode/admind[9]: warning: admin POST /x: no", now));
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["queue_id"], "");
  EXPECT_EQ(j["msg"], "admin POST /x: no");
  j = nlohmann::json::parse(MaillogLineToJson(
      "Dec 31 23:59:59 h zmnode/router[1]: error: bad \xff byte", now));
  EXPECT_EQ(j["level"], "error");
  // A December line read in November is from last year.
  EXPECT_TRUE(j["ts"].get<std::string>().starts_with("2025-12-31") ||
              j["ts"].get<std::string>().starts_with("2026-01-01"));
  EXPECT_EQ(MaillogLineToJson("garbage", now), "");
  EXPECT_EQ(MaillogLineToJson("Nov 21 08:03:44 mx1 sshd[1]: x", now), "");
}

TEST(EventsTest, Format) {
  EXPECT_EQ(EventHub::Format("members", "{\"a\":1}"),
            "event: members\ndata: {\"a\":1}\n\n");
}

}  // namespace
}  // namespace zm::admind
