// `zmailer rates`: the top counted sources of the rate-tracker.
#include "node/zmailer/zmailer_rates.h"

#include <ctime>
#include <iostream>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/ratetrack/rate_tracker.h"
#include "node/smtpserver/smtpserver_config.h"
#include "node/zmailer/zmailer.h"
#include "node/zmailer/zmailer_policy.h"

namespace zm::zmailer::internal {
namespace {

constexpr int kExitConfig = 78;  // EX_CONFIG: no node, broken config
constexpr const char* kFields[] = {"messages", "recipients", "auth_failures",
                                   "aborts", "excesses"};

// "ip4:..."/"ip6:..."/"user:..." as given; an IP address becomes its key;
// anything else is a user name.
std::string SourceKey(const std::string& arg) {
  if (arg.starts_with("ip4:") || arg.starts_with("ip6:") ||
      arg.starts_with("user:")) {
    return arg;
  }
  absl::StatusOr<std::string> ip = ratetrack::KeyForIp(arg);
  return ip.ok() ? *ip : ratetrack::KeyForUser(arg);
}

nlohmann::json CountsJson(const ratetrack::Counts& c) {
  nlohmann::json j;
  for (const char* f : kFields) j[f] = ratetrack::FieldValue(c, f);
  return j;
}

void PrintTable(const std::vector<ratetrack::TopEntry>& rows) {
  std::cout << fmt::format("{:<32} {:>9} {:>10} {:>9} {:>7} {:>8}  {}\n",
                           "SOURCE", "MESSAGES", "RECIPIENTS", "AUTHFAILS",
                           "ABORTS", "EXCESSES", "NODES");
  for (const ratetrack::TopEntry& e : rows) {
    std::string nodes;
    for (const auto& [node, c] : e.per_node) {
      if (!nodes.empty()) nodes += ",";
      nodes += fmt::format("{}={}", node.empty() ? "?" : node, c.messages);
    }
    std::cout << fmt::format("{:<32} {:>9} {:>10} {:>9} {:>7} {:>8}  {}\n",
                             e.key, e.total.messages, e.total.recipients,
                             e.total.auth_failures, e.total.aborts,
                             e.total.excesses, nodes);
  }
}

ratetrack::Counts FromSlot(const ::zmnode::cluster::v1::RateSlot& s) {
  return ratetrack::Counts{.messages = s.messages(),
                           .recipients = s.recipients(),
                           .auth_failures = s.auth_failures(),
                           .aborts = s.aborts(),
                           .excesses = s.excesses()};
}

// The fleet's top sources, from the cluster agent.
absl::StatusOr<std::vector<ratetrack::TopEntry>> FleetTop(
    const NodeDir& node, const RatesCommand& cmd) {
  auto client = FleetClient(node);
  if (!client.ok()) return client.status();
  ::zmnode::cluster::v1::FleetRatesRequest req;
  req.set_limit(static_cast<uint32_t>(std::min<size_t>(cmd.top, 1000000)));
  req.set_field(cmd.by);
  if (!cmd.key.empty()) req.set_key(SourceKey(cmd.key));
  auto reply = (*client)->FleetRates(req);
  if (!reply.ok()) return reply.status();
  std::vector<ratetrack::TopEntry> rows;
  for (const auto& r : reply->rates()) {
    ratetrack::TopEntry e;
    e.key = r.key();
    e.total = FromSlot(r.total());
    for (const auto& n : r.per_node()) {
      e.per_node.emplace_back(n.node_id(), FromSlot(n));
    }
    rows.push_back(std::move(e));
  }
  if (rows.empty() && !cmd.key.empty()) {
    rows.push_back(ratetrack::TopEntry{SourceKey(cmd.key), {}, {}});
  }
  return rows;
}

}  // namespace

void AddRatesCommand(CLI::App& app, RatesCommand* cmd) {
  cmd->sub = app.add_subcommand(
      "rates", "the sources the rate-tracker counted in its window");
  cmd->sub->add_option("-n", cmd->top, "how many sources (default 20)")
      ->check(CLI::Range(1, 1000000));
  cmd->sub
      ->add_option("--by", cmd->by,
                   "sort by messages|recipients|auth_failures|aborts|"
                   "excesses")
      ->check(CLI::IsMember({"messages", "recipients", "auth_failures",
                             "aborts", "excesses"}));
  cmd->sub->add_flag("--json", cmd->json, "print JSON");
  cmd->sub->add_flag("--fleet", cmd->fleet,
                     "every node's counts, from the cluster agent");
  cmd->sub->add_option("KEY", cmd->key,
                       "one source: an IP address, ip4:/ip6:/user: key, or "
                       "a user name");
}

int CmdRates(const NodeDir& node, const RatesCommand& cmd) {
  if (absl::Status s = RequireNode(node); !s.ok()) {
    std::cerr << "zmailer: " << Message(s) << "\n";
    return kExitConfig;
  }
  absl::StatusOr<smtpserver::ServerConfig> config =
      smtpserver::LoadServerConfig(node);
  if (!config.ok()) {
    std::cerr << "zmailer: " << Message(config.status()) << "\n";
    return kExitConfig;
  }
  ratetrack::RateWindow window{.slots = config->rate_slots,
                               .slot_seconds = config->rate_slot_seconds};
  const int64_t now = static_cast<int64_t>(std::time(nullptr));

  std::vector<ratetrack::TopEntry> rows;
  if (cmd.fleet) {
    auto fleet = FleetTop(node, cmd);
    if (!fleet.ok()) return FleetError("rates --fleet", fleet.status());
    rows = std::move(*fleet);
  } else if (fs::Exists(node.db() + "/ratetrack/CURRENT")) {
    // (No database yet: nothing was counted.)
    absl::StatusOr<std::unique_ptr<ratetrack::RateTracker>> rt =
        ratetrack::RateTracker::OpenReadOnly(node, window);
    if (!rt.ok()) {
      std::cerr << "zmailer: rates: " << Message(rt.status()) << "\n";
      return kExitFailure;
    }
    if (cmd.key.empty()) {
      rows = (*rt)->Top(cmd.top, cmd.by, now);
    } else {
      // Top over every field finds the key with its per-node counts.
      std::string key = SourceKey(cmd.key);
      for (const char* f : kFields) {
        for (ratetrack::TopEntry& e : (*rt)->Top(SIZE_MAX, f, now)) {
          if (e.key == key) {
            rows.push_back(std::move(e));
            break;
          }
        }
        if (!rows.empty()) break;
      }
      if (rows.empty()) rows.push_back(ratetrack::TopEntry{key, {}, {}});
    }
  } else if (!cmd.key.empty()) {
    rows.push_back(ratetrack::TopEntry{SourceKey(cmd.key), {}, {}});
  }

  if (cmd.json) {
    nlohmann::json out;
    out["now"] = now;
    out["window"] = {{"slots", window.slots},
                     {"slot_seconds", window.slot_seconds}};
    out["by"] = cmd.by;
    out["fleet"] = cmd.fleet;
    out["sources"] = nlohmann::json::array();
    for (const ratetrack::TopEntry& e : rows) {
      nlohmann::json j = CountsJson(e.total);
      j["key"] = e.key;
      j["nodes"] = nlohmann::json::object();
      for (const auto& [node_id, c] : e.per_node) {
        j["nodes"][node_id] = CountsJson(c);
      }
      out["sources"].push_back(std::move(j));
    }
    std::cout << out.dump(2) << "\n";
  } else {
    PrintTable(rows);
  }
  return kExitOk;
}

}  // namespace zm::zmailer::internal
