// The Api's fleet-wide views: rates/top, queues and history of every node,
// this node's published status, and the agent's gossip figures. They use
// the cluster agent's TopSources, PublishNodeStatus, FleetStatus and
// AgentStats (ZM_ADMIND_FLEET_RPCS: cluster/client has them); without a
// fleet they show this node alone.
#include <ctime>

#include "cluster/client/cluster_client.h"
#include "node/admind/admind_api.h"
#include "node/admind/admind_health.h"
#include "node/daemon/health.h"
#include "node/common/strings.h"

namespace zm::admind {
namespace {

namespace v1 = ::zmnode::cluster::v1;
using json = nlohmann::json;

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

#ifdef ZM_ADMIND_FLEET_RPCS
json QueueJson(const std::string& node_id, const v1::QueueSummary& q,
               int64_t updated_unix) {
  json top = json::array();
  for (const auto& d : q.top_destinations()) {
    top.push_back({{"channel", d.channel()},
                   {"host", d.host()},
                   {"recipients", d.recipients()}});
  }
  return json{{"node_id", node_id},
              {"messages", q.messages()},
              {"recipients", q.recipients()},
              {"threads", q.threads()},
              {"oldest_age_s", q.oldest_age_s()},
              {"top_destinations", top},
              {"updated_unix", updated_unix}};
}

const google::protobuf::RepeatedField<uint64_t>& SeriesOf(
    const v1::NodeHistory& h, size_t i) {
  switch (i) {
    case 0:
      return h.received();
    case 1:
      return h.delivered();
    case 2:
      return h.deferred();
    case 3:
      return h.bounced();
    case 4:
      return h.rejected_policy();
    default:
      return h.rejected_rate();
  }
}

google::protobuf::RepeatedField<uint64_t>* MutableSeries(v1::NodeHistory* h,
                                                         size_t i) {
  switch (i) {
    case 0:
      return h->mutable_received();
    case 1:
      return h->mutable_delivered();
    case 2:
      return h->mutable_deferred();
    case 3:
      return h->mutable_bounced();
    case 4:
      return h->mutable_rejected_policy();
    default:
      return h->mutable_rejected_rate();
  }
}
#endif

}  // namespace

json Api::RatesTop(const Params& params) {
#ifdef ZM_ADMIND_FLEET_RPCS
  if (client_) {
    auto param = [&](const char* name, std::string def) {
      auto it = params.find(name);
      return it == params.end() || it->second.empty() ? def : it->second;
    };
    v1::TopSourcesRequest req;
    req.set_kind(param("kind", "all"));
    uint32_t limit = 20;
    (void)ParseNumber(param("limit", "20"), &limit);
    req.set_limit(limit);
    req.set_filter(param("q", ""));
    auto reply = client_->TopSources(req);
    if (reply.ok()) {
      json sources = json::array();
      for (const v1::TopSource& t : reply->sources()) {
        json nodes = json::array();
        for (const auto& n : t.nodes()) {
          nodes.push_back({{"node_id", n.node_id()}, {"count", n.count()}});
        }
        std::vector<uint64_t> spark(t.spark().begin(), t.spark().end());
        sources.push_back({{"key", t.key()},
                           {"kind", t.kind()},
                           {"class", t.rate_class()},
                           {"count", t.count()},
                           {"limit", t.limit()},
                           {"state", t.state().empty() ? "ok" : t.state()},
                           {"nodes", nodes},
                           {"spark", spark}});
      }
      return json{{"window_s", reply->window_s()}, {"sources", sources}};
    }
    if (!absl::IsUnimplemented(reply.status())) {
      return json{{"window_s", 0}, {"sources", json::array()}};
    }
  }
#endif
  return RatesFromFleetRates(params);
}

json Api::Queues() {
  json nodes = json::array();
  json mine = LocalQueue();
#ifdef ZM_ADMIND_FLEET_RPCS
  if (client_) {
    auto reply = client_->FleetStatus();
    if (reply.ok()) {
      for (const v1::NodeStatus& st : reply->statuses()) {
        if (st.node_id() == node_id_) continue;  // ours is fresher
        nodes.push_back(
            QueueJson(st.node_id(), st.queue(), st.updated_unix_ms() / 1000));
      }
    }
  }
#endif
  nodes.insert(nodes.begin(), mine);
  return json{{"nodes", nodes}};
}

json Api::HistoryJson(size_t minutes) {
  HistorySeries h = history_->Last(minutes, NowUnix());
  json mins = json::array();
  for (size_t i = 0; i < minutes; ++i) {
    mins.push_back(h.first_minute + 60 * static_cast<int64_t>(i));
  }
  std::array<std::vector<int64_t>, kHistorySeries> fleet = h.series;
  json series;
  json mine;
  for (size_t i = 0; i < kHistorySeries; ++i) {
    mine[std::string(kHistoryNames[i])] = h.series[i];
  }
  series[node_id_] = mine;
#ifdef ZM_ADMIND_FLEET_RPCS
  if (client_) {
    auto reply = client_->FleetStatus();
    if (reply.ok()) {
      for (const v1::NodeStatus& st : reply->statuses()) {
        if (st.node_id() == node_id_) continue;
        const v1::NodeHistory& nh = st.history();
        json theirs;
        for (size_t i = 0; i < kHistorySeries; ++i) {
          std::vector<int64_t> v(minutes, 0);
          const auto& src = SeriesOf(nh, i);
          for (int k = 0; k < src.size(); ++k) {
            int64_t minute = nh.first_minute_unix() + 60 * int64_t{k};
            if (minute < h.first_minute) continue;
            size_t idx = static_cast<size_t>((minute - h.first_minute) / 60);
            if (idx >= minutes) continue;
            v[idx] = static_cast<int64_t>(src.Get(k));
            fleet[i][idx] += v[idx];
          }
          theirs[std::string(kHistoryNames[i])] = v;
        }
        series[st.node_id()] = theirs;
      }
    }
  }
#endif
  json sum;
  for (size_t i = 0; i < kHistorySeries; ++i) {
    sum[std::string(kHistoryNames[i])] = fleet[i];
  }
  series["fleet"] = sum;
  return json{{"minutes", mins}, {"series", series}};
}

void Api::Tick() {
  if (!client_) return;
  int64_t now = NowUnix();
  {
    absl::MutexLock lock(&mu_);
    if (now - last_publish_ < 10) return;
    last_publish_ = now;
  }
  PublishStatus();
}

void Api::PublishStatus() {
#ifdef ZM_ADMIND_FLEET_RPCS
  v1::NodeStatus st;
  st.set_zm_version(ZM_VERSION);
  auto sup = health::ReadProgramState(node_, "zmailer");
  int64_t since = sup.running ? ProcessStartUnix(sup.pid) : 0;
  st.set_started_unix_ms((since > 0 ? since : started_unix_) * 1000);
  st.set_updated_unix_ms(NowUnix() * 1000);
  // Peers reach a wildcard listener by this node's host name.
  st.set_admin_url(conf_.Url(hostname_));
  st.set_hostname(hostname_);
  Readiness r = CheckReadiness(node_);
  st.set_ready(r.ready);
  st.set_draining(r.draining);
  json q = LocalQueue();
  v1::QueueSummary* qs = st.mutable_queue();
  qs->set_messages(q["messages"].get<uint64_t>());
  qs->set_recipients(q["recipients"].get<uint64_t>());
  qs->set_threads(q["threads"].get<uint64_t>());
  qs->set_oldest_age_s(q["oldest_age_s"].get<int64_t>());
  for (const auto& d : q["top_destinations"]) {
    v1::QueueDestination* qd = qs->add_top_destinations();
    qd->set_channel(d["channel"].get<std::string>());
    qd->set_host(d["host"].get<std::string>());
    qd->set_recipients(d["recipients"].get<uint64_t>());
  }
  HistorySeries h = history_->Last(60, NowUnix());
  v1::NodeHistory* nh = st.mutable_history();
  nh->set_first_minute_unix(h.first_minute);
  for (size_t i = 0; i < kHistorySeries; ++i) {
    auto* dst = MutableSeries(nh, i);
    for (int64_t v : h.series[i]) dst->Add(static_cast<uint64_t>(v));
  }
  (void)client_->PublishNodeStatus(st);
#endif
}

std::vector<metrics::Sample> Api::FleetSamples() {
  std::vector<metrics::Sample> out;
#ifdef ZM_ADMIND_FLEET_RPCS
  if (!client_) return out;
  auto s = client_->AgentStats();
  if (!s.ok()) return out;
  auto add = [&](std::string name, std::string labels, metrics::Kind kind,
                 int64_t v) {
    out.push_back(metrics::Sample{std::move(name), std::move(labels), kind, v});
  };
  using metrics::Kind;
  add("zmnode_gossip_members", "state=\"alive\"", Kind::kGauge,
      s->members_alive());
  add("zmnode_gossip_members", "state=\"suspect\"", Kind::kGauge,
      s->members_suspect());
  add("zmnode_gossip_members", "state=\"dead\"", Kind::kGauge,
      s->members_dead());
  add("zmnode_gossip_members", "state=\"left\"", Kind::kGauge,
      s->members_left());
  add("zmnode_gossip_sent_bytes_total", "", Kind::kCounter,
      static_cast<int64_t>(s->gossip_bytes_sent()));
  add("zmnode_gossip_received_bytes_total", "", Kind::kCounter,
      static_cast<int64_t>(s->gossip_bytes_received()));
  add("zmnode_gossip_merges_total", "", Kind::kCounter,
      static_cast<int64_t>(s->records_merged()));
  if (s->propagation_count() > 0) {
    // Milliseconds, rendered as seconds with three decimals.
    add("zmnode_gossip_propagation_delay_seconds", "", Kind::kGauge,
        static_cast<int64_t>(s->propagation_sum_ms() / s->propagation_count()));
    out.back().milli = true;
  }
#endif
  return out;
}

}  // namespace zm::admind
