// `zmailer cluster`: the member list of the node's cluster agent.
#include "node/zmailer/zmailer_cluster.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "cluster/conf/cluster_conf.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "node/common/strings.h"
#include "node/zmailer/zmailer.h"
#include "zmnode/cluster/v1/local.grpc.pb.h"

namespace zm::zmailer::internal {
namespace {

namespace pb = ::zmnode::cluster::v1;

constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE: agent not answering
constexpr int kExitConfig = 78;       // EX_CONFIG: no node, not in a fleet

int Fail(int code, std::string_view why) {
  std::cerr << "zmailer: cluster: " << why << "\n";
  return code;
}

std::string StateName(pb::MemberState s) {
  switch (s) {
    case pb::MEMBER_STATE_ALIVE:
      return "alive";
    case pb::MEMBER_STATE_SUSPECT:
      return "suspect";
    case pb::MEMBER_STATE_DEAD:
      return "dead";
    case pb::MEMBER_STATE_LEFT:
      return "left";
    default:
      return "unknown";
  }
}

// "0.4s ago", "3m12s ago", "-" for never.
std::string Ago(int64_t then_ms, int64_t now_ms) {
  if (then_ms <= 0) return "-";
  int64_t d = std::max<int64_t>(0, now_ms - then_ms);
  if (d < 10'000) return fmt::format("{:.1f}s ago", d / 1000.0);
  if (d < 3'600'000) return fmt::format("{}m{}s ago", d / 60000, d / 1000 % 60);
  return fmt::format("{}h{}m ago", d / 3'600'000, d / 60000 % 60);
}

}  // namespace

void AddClusterCommand(CLI::App& app, ClusterCommand* cmd) {
  cmd->sub = app.add_subcommand(
      "cluster", "the fleet's members as this node's cluster agent sees them");
  cmd->sub->add_flag("--json", cmd->json, "print JSON");
  cmd->sub
      ->add_option("--timeout", cmd->timeout_ms,
                   "milliseconds to wait for the agent (default 3000)")
      ->check(CLI::Range(1, 600000));
}

int CmdCluster(const NodeDir& node, const ClusterCommand& cmd) {
  if (absl::Status s = RequireNode(node); !s.ok()) {
    return Fail(kExitConfig, Message(s));
  }
  auto conf = cluster::LoadClusterConf(node);
  if (!conf.ok()) return Fail(kExitConfig, Message(conf.status()));
  if (!conf->Enabled()) {
    return Fail(kExitConfig,
                StrCat(node.etc_file("cluster.conf"),
                       " has no gossip-listen: this node is not in a fleet"));
  }
  struct stat st;
  if (::stat(conf->local_socket.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    return Fail(kExitUnavailable,
                StrCat("the cluster agent is not running (no socket ",
                       conf->local_socket, "; 'zmailer start' runs it)"));
  }

  auto channel = grpc::CreateChannel("unix:" + conf->local_socket,
                                     grpc::InsecureChannelCredentials());
  auto stub = pb::Local::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(cmd.timeout_ms));
  pb::MembersReply reply;
  grpc::Status st_rpc = stub->Members(&ctx, pb::MembersRequest(), &reply);
  if (!st_rpc.ok()) {
    return Fail(kExitUnavailable,
                StrCat("the cluster agent does not answer on ",
                       conf->local_socket, ": ", st_rpc.error_message()));
  }

  std::vector<pb::MemberView> members(reply.members().begin(),
                                      reply.members().end());
  std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) {
    return a.member().node_id() < b.member().node_id();
  });
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count();
  if (cmd.json) {
    nlohmann::json out;
    out["node_id"] = reply.node_id();
    out["now_unix_ms"] = now_ms;
    out["members"] = nlohmann::json::array();
    for (const auto& v : members) {
      const auto& m = v.member();
      out["members"].push_back({
          {"node_id", m.node_id()},
          {"self", v.self()},
          {"state", StateName(m.state())},
          {"generation", m.generation()},
          {"incarnation", m.incarnation()},
          {"address", m.address()},
          {"version", m.version()},
          {"started_unix_ms", m.started_unix_ms()},
          {"last_contact_unix_ms", v.last_contact_unix_ms()},
          {"gossip_lag_ms", v.gossip_lag_ms()},
      });
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << fmt::format("{:<24} {:<8} {:>20} {:<28} {:>14} {:>9}\n", "NODE",
                           "STATE", "GENERATION", "ADDRESS", "LAST CONTACT",
                           "LAG");
  for (const auto& v : members) {
    const auto& m = v.member();
    std::cout << fmt::format(
        "{:<24} {:<8} {:>20} {:<28} {:>14} {:>9}\n",
        m.node_id() + (v.self() ? " *" : ""), StateName(m.state()),
        m.generation(), m.address(),
        v.self() ? "(self)" : Ago(v.last_contact_unix_ms(), now_ms),
        v.self() ? "-" : fmt::format("{}ms", v.gossip_lag_ms()));
  }
  return kExitOk;
}

}  // namespace zm::zmailer::internal
