#include "node/admind/admind_api.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>

#include "cluster/client/cluster_client.h"
#include "cluster/client/policy_overlay.h"
#include "node/admin/admin_grpc_client.h"
#include "node/admind/admind_health.h"
#include "node/admind/admind_metrics.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/daemon/health.h"
#include "node/metrics/metrics_catalog.h"

namespace zm::admind {
namespace {

namespace v1 = ::zmnode::cluster::v1;
using json = nlohmann::json;

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

int HttpStatusOf(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    default:
      return 503;
  }
}

ApiReply Ok(const json& j) { return ApiReply{200, j.dump()}; }

ApiReply FromStatus(const absl::Status& s) {
  return ErrorReply(HttpStatusOf(s), Message(s));
}

std::string MemberStateName(v1::MemberState s) {
  switch (s) {
    case v1::MEMBER_STATE_ALIVE:
      return "alive";
    case v1::MEMBER_STATE_SUSPECT:
      return "suspect";
    case v1::MEMBER_STATE_DEAD:
      return "dead";
    case v1::MEMBER_STATE_LEFT:
      return "left";
    default:
      return "unknown";
  }
}

// "ip4:192.0.2.7" -> ip, "ip6:2001:db8::/64" -> net64, "user:alice" -> user.
std::string KeyKind(std::string_view key) {
  if (key.starts_with("user:")) return "user";
  if (key.starts_with("ip6:") && key.ends_with("/64")) return "net64";
  if (key.starts_with("ip4:") || key.starts_with("ip6:")) return "ip";
  return "other";
}

json PolicyEntryJson(const v1::PolicyEntry& e) {
  json j;
  j["key"] = e.subject();
  j["action"] = std::string(cluster::PolicyActionName(e.action()));
  if (e.action() == v1::POLICY_ACTION_RATE_CLASS) j["class"] = e.rate_class();
  j["reason"] = e.reason();
  j["author_node"] = e.author_node();
  j["created_unix"] = e.created_unix_ms() / 1000;
  j["expires_unix"] = e.expires_unix_ms() / 1000;
  return j;
}

bool ValidDomain(std::string_view d) {
  if (d.empty() || d.size() > 255) return false;
  for (char c : d) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
          c == '@' || c == '#' || c == '_')) {
      return false;
    }
  }
  return true;
}

// The first integer in `text` ("ETRN x: 3 recipients ..." -> 3).
int64_t FirstNumber(std::string_view text) {
  auto colon = text.find(": ");
  if (colon != std::string_view::npos) text = text.substr(colon + 2);
  int64_t n = 0;
  size_t i = 0;
  while (i < text.size() && isdigit(static_cast<unsigned char>(text[i]))) {
    n = n * 10 + (text[i] - '0');
    ++i;
  }
  return n;
}

}  // namespace

ApiReply ErrorReply(int status, std::string_view message) {
  json j;
  j["error"] = std::string(message);
  return ApiReply{status, j.dump()};
}

Api::Api(NodeDir node, AdminConfig conf, std::string node_id, History* history,
         bool fleet, std::unique_ptr<cluster::ClusterClient> client)
    : node_(std::move(node)),
      conf_(std::move(conf)),
      node_id_(std::move(node_id)),
      started_unix_(NowUnix()),
      history_(history),
      fleet_(fleet),
      client_(std::move(client)) {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  hostname_ = host;
}

Api::~Api() = default;

ApiReply Api::Get(std::string_view what, const Params& params) {
  auto param = [&](const char* name) -> std::string {
    auto it = params.find(name);
    return it == params.end() ? "" : it->second;
  };
  if (what == "node") return Ok(Node());
  if (what == "members") return Ok(Members());
  if (what == "rates/top") {
    std::string kind = param("kind");
    if (!kind.empty() && kind != "ip" && kind != "net64" && kind != "user" &&
        kind != "all") {
      return ErrorReply(400, "kind is ip, net64, user or all");
    }
    std::string limit = param("limit");
    int n = 0;
    if (!limit.empty() && (!ParseNumber(limit, &n) || n < 1 || n > 1000)) {
      return ErrorReply(400, "limit is 1 to 1000");
    }
    return Ok(RatesTop(params));
  }
  if (what == "policy") return Policy();
  if (what == "queues") return Ok(Queues());
  if (what == "history") {
    std::string m = param("minutes");
    size_t minutes = 60;
    if (!m.empty() &&
        (!ParseNumber(m, &minutes) || minutes < 1 || minutes > 180)) {
      return ErrorReply(400, "minutes is 1 to 180");
    }
    return Ok(HistoryJson(minutes));
  }
  if (what == "etrn") {
    std::string id = param("id");
    if (id.empty()) return ErrorReply(400, "etrn needs ?id=");
    return EtrnReply(id);
  }
  return ErrorReply(404, StrCat("no such resource /api/v1/", what));
}

ApiReply Api::Post(std::string_view what, std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return ErrorReply(400, "the body is not a JSON object");
  }
  if (what == "policy") return PolicyAdd(j);
  if (what == "etrn") return StartEtrn(j);
  return ErrorReply(404, StrCat("no such resource /api/v1/", what));
}

ApiReply Api::Delete(std::string_view what, const Params& params) {
  if (what == "policy") return PolicyDelete(params);
  return ErrorReply(404, StrCat("no such resource /api/v1/", what));
}

json Api::Node() {
  json j;
  j["node_id"] = node_id_;
  j["version"] = ZM_VERSION;
  j["hostname"] = hostname_;
  auto sup = health::ReadProgramState(node_, "zmailer");
  int64_t since = sup.running ? ProcessStartUnix(sup.pid) : 0;
  if (since == 0) since = started_unix_;
  j["uptime_s"] = std::max<int64_t>(0, NowUnix() - since);
  Readiness r = CheckReadiness(node_);
  j["ready"] = r.ready;
  j["not_ready"] = r.failures;
  j["draining"] = r.draining;
  j["cluster"] = fleet_;
  j["admin_url"] = conf_.Url();
  json procs = json::array();
  for (const ProcessInfo& p : Processes(node_)) {
    procs.push_back({{"name", p.name},
                     {"pid", p.pid},
                     {"up", p.up},
                     {"restarts", p.restarts}});
  }
  j["processes"] = procs;
  auto kib = fs::AvailableKiB(node_.spool());
  j["spool_free_kib"] = kib.ok() ? static_cast<int64_t>(*kib) : -1;
  return j;
}

json Api::Members() {
  json list = json::array();
  if (client_) {
    auto reply = client_->Members();
    if (reply.ok()) {
      int64_t now_ms = NowUnix() * 1000;
      for (const v1::MemberView& v : reply->members()) {
        const v1::Member& m = v.member();
        json e;
        e["node_id"] = m.node_id();
        e["state"] = v.state().empty() ? MemberStateName(m.state()) : v.state();
        e["address"] = m.address();
        e["generation"] = m.generation();
        e["incarnation"] = m.incarnation();
        int64_t up_ms = v.uptime_ms() > 0         ? v.uptime_ms()
                        : m.started_unix_ms() > 0 ? now_ms - m.started_unix_ms()
                                                  : 0;
        e["uptime_s"] = std::max<int64_t>(0, up_ms / 1000);
        e["version"] = m.version();
        e["gossip_lag_ms"] = v.gossip_lag_ms();
        e["admin_url"] = v.self() ? conf_.Url() : v.admin_url();
        e["self"] = v.self();
        list.push_back(std::move(e));
      }
      return json{{"members", list}};
    }
  }
  // Not in a fleet, or the agent is down: this node alone.
  json self = Node();
  list.push_back({{"node_id", node_id_},
                  {"state", "alive"},
                  {"address", ""},
                  {"generation", 0},
                  {"incarnation", 0},
                  {"uptime_s", self["uptime_s"]},
                  {"version", ZM_VERSION},
                  {"gossip_lag_ms", 0},
                  {"admin_url", conf_.Url()},
                  {"self", true}});
  return json{{"members", list}};
}

json Api::RatesFromFleetRates(const Params& params) {
  auto param = [&](const char* name, std::string def) {
    auto it = params.find(name);
    return it == params.end() || it->second.empty() ? def : it->second;
  };
  std::string kind = param("kind", "all");
  int limit = 20;
  (void)ParseNumber(param("limit", "20"), &limit);
  std::string q = param("q", "");
  json out;
  out["window_s"] = 0;
  json sources = json::array();
  if (client_) {
    v1::FleetRatesRequest req;
    // Ask for more than `limit`: kind and q filter afterwards.
    req.set_limit(static_cast<uint32_t>(std::min(limit * 4, 1000)));
    auto reply = client_->FleetRates(req);
    if (reply.ok()) {
      out["window_s"] = reply->window_end_unix() - reply->window_start_unix();
      for (const v1::FleetRate& r : reply->rates()) {
        std::string k = KeyKind(r.key());
        if (kind != "all" && k != kind) continue;
        if (!q.empty() && r.key().find(q) == std::string::npos) continue;
        json s;
        s["key"] = r.key();
        s["kind"] = k;
        s["class"] = "";
        s["count"] = r.total().messages();
        s["limit"] = 0;
        s["state"] = r.total().excesses() > 0 ? "deferred" : "ok";
        json nodes = json::array();
        for (const v1::RateSlot& n : r.per_node()) {
          nodes.push_back({{"node_id", n.node_id()}, {"count", n.messages()}});
        }
        s["nodes"] = nodes;
        s["spark"] = std::vector<int64_t>(60, 0);
        sources.push_back(std::move(s));
        if (static_cast<int>(sources.size()) >= limit) break;
      }
    }
  }
  out["sources"] = sources;
  return out;
}

ApiReply Api::Policy() {
  if (!client_) {
    return ErrorReply(503,
                      "the policy overlay needs the node's cluster agent "
                      "(clusterd), which this node does not run");
  }
  auto reply = client_->PolicyList(v1::PolicyListRequest());
  if (!reply.ok()) return FromStatus(reply.status());
  json entries = json::array();
  for (const auto& e : reply->entries()) {
    if (!e.deleted()) entries.push_back(PolicyEntryJson(e));
  }
  return Ok(json{{"entries", entries}});
}

ApiReply Api::PolicyAdd(const json& body) {
  if (!client_) {
    return ErrorReply(503,
                      "the policy overlay needs the node's cluster agent "
                      "(clusterd), which this node does not run");
  }
  if (!body.contains("key") || !body["key"].is_string() ||
      !body.contains("action") || !body["action"].is_string()) {
    return ErrorReply(400, "policy needs {key, action[, reason, ttl_s]}");
  }
  auto action = cluster::ParsePolicyAction(body["action"].get<std::string>());
  if (!action) {
    return ErrorReply(400,
                      "action is reject, defer, freeze, allow or "
                      "rate-class");
  }
  auto subject = cluster::ParseSubject(body["key"].get<std::string>());
  if (!subject.ok()) return FromStatus(subject.status());
  v1::PolicyAddRequest req;
  req.set_subject(subject->text);
  req.set_action(*action);
  if (body.contains("reason") && body["reason"].is_string()) {
    req.set_reason(body["reason"].get<std::string>());
  }
  if (*action == v1::POLICY_ACTION_RATE_CLASS) {
    if (!body.contains("class") || !body["class"].is_string()) {
      return ErrorReply(400, "rate-class needs \"class\"");
    }
    req.set_rate_class(body["class"].get<std::string>());
  }
  if (body.contains("ttl_s")) {
    if (!body["ttl_s"].is_number_unsigned() ||
        body["ttl_s"].get<uint64_t>() > 365ull * 86400) {
      return ErrorReply(400, "ttl_s is 0 (no expiry) to a year in seconds");
    }
    req.set_ttl_seconds(body["ttl_s"].get<uint32_t>());
  }
  auto reply = client_->PolicyAdd(req);
  if (!reply.ok()) return FromStatus(reply.status());
  json entries = json::array();
  for (const auto& e : reply->entries()) entries.push_back(PolicyEntryJson(e));
  return Ok(json{{"entries", entries}});
}

ApiReply Api::PolicyDelete(const Params& params) {
  if (!client_) {
    return ErrorReply(503,
                      "the policy overlay needs the node's cluster agent "
                      "(clusterd), which this node does not run");
  }
  auto it = params.find("key");
  if (it == params.end() || it->second.empty()) {
    return ErrorReply(400, "DELETE policy needs ?key=");
  }
  auto subject = cluster::ParseSubject(it->second);
  if (!subject.ok()) return FromStatus(subject.status());
  v1::PolicyDeleteRequest req;
  req.set_subject(subject->text);
  auto reply = client_->PolicyDelete(req);
  if (!reply.ok()) return FromStatus(reply.status());
  return Ok(json{{"deleted", subject->text}});
}

ApiReply Api::StartEtrn(const json& body) {
  if (!body.contains("domain") || !body["domain"].is_string() ||
      !ValidDomain(body["domain"].get<std::string>())) {
    return ErrorReply(400, "etrn needs {domain} (a domain, @domain or #queue)");
  }
  std::string domain = body["domain"].get<std::string>();
  if (client_) {
    v1::StartEtrnRequest req;
    req.set_domain(domain);
    auto reply = client_->StartEtrn(req);
    if (reply.ok()) {
      absl::MutexLock lock(&mu_);
      last_etrn_ = reply->request().id();
      return Ok(json{{"id", last_etrn_}});
    }
    // A node alone whose agent is not there asks its scheduler itself.
    if (fleet_ || !absl::IsUnavailable(reply.status())) {
      return FromStatus(reply.status());
    }
  }
  // No agent: the local scheduler, at once.
  json result = {{"node_id", node_id_},
                 {"state", "failed"},
                 {"messages", 0},
                 {"detail", ""}};
  auto etrn = admin::LocalEtrn(node_, domain);
  if (!etrn.ok()) {
    result["detail"] = Message(etrn.status());
  } else {
    result["state"] = "done";
    result["messages"] = FirstNumber(etrn->text());
    result["detail"] = etrn->text();
  }
  absl::MutexLock lock(&mu_);
  std::string id = StrCat(node_id_, "-", NowUnix(), "-", ++etrn_seq_);
  local_etrn_[id] = json{{"id", id}, {"domain", domain}, {"results", {result}}};
  while (local_etrn_.size() > 100) local_etrn_.erase(local_etrn_.begin());
  last_etrn_ = id;
  return Ok(json{{"id", id}});
}

json Api::Etrn(const std::string& id) {
  ApiReply r = EtrnReply(id);
  if (r.status != 200) return json::object();
  return json::parse(r.body, nullptr, false);
}

std::string Api::LastEtrnId() {
  absl::MutexLock lock(&mu_);
  return last_etrn_;
}

ApiReply Api::EtrnReply(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = local_etrn_.find(id); it != local_etrn_.end()) {
      return Ok(it->second);
    }
  }
  if (!client_) return ErrorReply(404, StrCat("no ETRN ", id));
  v1::EtrnStatusRequest req;
  req.set_request_id(id);
  auto reply = client_->EtrnStatus(req);
  if (!reply.ok()) return FromStatus(reply.status());
  json results = json::array();
  for (const v1::EtrnResult& r : reply->results()) {
    bool ok = r.code() >= 200 && r.code() < 300;
    results.push_back({{"node_id", r.node_id()},
                       {"state", ok ? "done" : "failed"},
                       {"messages", ok ? FirstNumber(r.text()) : 0},
                       {"detail", r.text()}});
  }
  for (const std::string& n : reply->pending_nodes()) {
    results.push_back({{"node_id", n},
                       {"state", "pending"},
                       {"messages", 0},
                       {"detail", ""}});
  }
  return Ok(json{
      {"id", id}, {"domain", reply->request().domain()}, {"results", results}});
}

json Api::LocalQueue() {
  auto samples = ReadAllSamples(node_);
  json q;
  q["node_id"] = node_id_;
  q["messages"] = SumOf(samples, metrics::kQueueMessages);
  q["recipients"] = SumOf(samples, metrics::kQueueRecipients);
  q["threads"] = SumOf(samples, metrics::kQueueThreads);
  q["oldest_age_s"] = SumOf(samples, metrics::kQueueOldestAge);
  // Top destinations: the scheduler's threads, biggest backlog first.
  json top = json::array();
  auto c = admin::GrpcAdminClient::Connect(node_);
  absl::StatusOr<admin::pb::QueueThreads> threads =
      c.ok() ? (*c)->ShowQueueThreads()
             : absl::StatusOr<admin::pb::QueueThreads>(c.status());
  if (threads.ok()) {
    std::vector<const admin::pb::Thread*> dests;
    for (const auto& ring : threads->rings()) {
      for (const auto& t : ring.threads()) dests.push_back(&t);
    }
    std::stable_sort(dests.begin(), dests.end(), [](auto* a, auto* b) {
      return a->recipients() > b->recipients();
    });
    for (size_t i = 0; i < dests.size() && i < 10; ++i) {
      top.push_back({{"channel", dests[i]->channel()},
                     {"host", dests[i]->host()},
                     {"recipients", dests[i]->recipients()}});
    }
  }
  q["top_destinations"] = top;
  q["updated_unix"] = NowUnix();
  return q;
}

}  // namespace zm::admind
