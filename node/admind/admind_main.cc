#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>
#include <thread>

#include "cluster/client/cluster_client.h"
#include "node/admind/admind.h"
#include "node/admind/admind_api.h"
#include "node/admind/admind_config.h"
#include "node/admind/admind_events.h"
#include "node/admind/admind_history.h"
#include "node/admind/admind_jsonlog.h"
#include "node/admind/admind_metrics.h"
#include "node/admind/admind_server.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/daemon/daemon.h"
#include "node/daemon/health.h"

namespace zm::admind {
namespace {

constexpr char kProgram[] = "admind";
// How often the history sampler reads the metrics files, and how often
// the JSON event log follows log/maillog.
constexpr int kSampleMs = 5000;
constexpr int kJsonLogMs = 1000;

std::string NodeIdOf(const NodeDir& node) {
  auto id = config::LoadNodeId(node);
  if (id.ok() && !id->empty()) return *id;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
    return "localhost";
  }
  std::string h = host;
  return h.substr(0, h.find('.'));
}

}  // namespace

int Main(int argc, char** argv) {
  auto d = Daemon::Init(kProgram, argc, argv);
  if (!d.ok()) return Daemon::Fail(kProgram, d.status());
  Daemon& daemon = **d;
  const NodeDir& node = daemon.node();
  auto conf = LoadAdminConfig(node);
  if (!conf.ok()) return Daemon::Fail(kProgram, conf.status());
  std::optional<JsonLog> json_log;
  if (conf->json_log) json_log.emplace(node);

  // The node's cluster agent, when the supervisor runs one (in a fleet,
  // or solo for a node alone); calls fail fast while it is down.
  std::unique_ptr<cluster::ClusterClient> client;
  const auto programs = health::DaemonPrograms(node);
  if (std::find(programs.begin(), programs.end(), "clusterd") !=
      programs.end()) {
    cluster::ClientOptions opts;
    opts.socket_path = cluster::SocketPath(node);
    client = cluster::ClusterClient::Connect(opts);
  }
  History history(180);
  Api api(node, *conf, NodeIdOf(node), &history, cluster::HasCluster(node),
          std::move(client));
  EventHub hub(&api, conf->max_events_clients);
  AdminServer server(node, *conf, &api, &hub, &daemon.log());
  if (auto s = server.Init(); !s.ok()) return Daemon::Fail(kProgram, s);

  // Ready before binding: a taken port must not hold up the node's start;
  // the listener retries and says so in the log.
  if (auto s = daemon.Ready(); !s.ok()) return Daemon::Fail(kProgram, s);
  hub.Start();
  std::thread listener([&server] { server.Run(); });

  auto sample = [&] {
    history.Record(static_cast<int64_t>(std::time(nullptr)),
                   CurrentTotals(ReadAllSamples(node)));
  };
  sample();
  auto next_sample = std::chrono::steady_clock::now();
  auto next_json = next_sample;
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_sample) {
      sample();
      api.Tick();
      next_sample = now + std::chrono::milliseconds(kSampleMs);
    }
    if (now >= next_json) {
      if (json_log) json_log->Poll(std::time(nullptr));
      next_json = now + std::chrono::milliseconds(kJsonLogMs);
    }
    auto next = std::min(next_sample, next_json);
    int wait = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(next - now)
            .count());
    struct pollfd p = {daemon.signal_fd(), POLLIN, 0};
    int n = ::poll(&p, 1, std::max(wait, 1));
    if (n <= 0) continue;
    Daemon::Signal sig = daemon.TakeSignal();
    if (sig == Daemon::Signal::kStop) break;
    if (sig == Daemon::Signal::kReload) {
      daemon.log().Info("",
                        "admind: reload (log reopened; restart admind to "
                        "apply admin.conf changes)");
      (void)daemon.log().Reopen();
    }
  }
  hub.Stop();
  for (int i = 0; i < 200 && !server.finished(); ++i) {
    server.Stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  listener.join();
  daemon.log().Info("", "admind stopped");
  return 0;
}

}  // namespace zm::admind
