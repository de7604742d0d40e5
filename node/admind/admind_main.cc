#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <thread>

#include "cluster/client/cluster_client.h"
#include "node/admind/admind.h"
#include "node/admind/admind_api.h"
#include "node/admind/admind_config.h"
#include "node/admind/admind_events.h"
#include "node/admind/admind_history.h"
#include "node/admind/admind_metrics.h"
#include "node/admind/admind_server.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/daemon/daemon.h"

namespace zm::admind {
namespace {

constexpr char kProgram[] = "admind";
// How often the history sampler reads the metrics files.
constexpr int kSampleMs = 5000;

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

// json-log yes: make log/maillog.json, which every zm::Logger then also
// writes (see node/common/log.h).
void EnsureJsonLog(const NodeDir& node, Logger& log) {
  std::string path = node.maillog() + ".json";
  if (fs::Exists(path)) return;
  int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    log.Warning("", Message(fs::ErrnoStatus("create", path, errno)));
    return;
  }
  ::close(fd);
  log.Info("", StrCat("JSON event log on: ", path));
}

}  // namespace

int Main(int argc, char** argv) {
  auto d = Daemon::Init(kProgram, argc, argv);
  if (!d.ok()) return Daemon::Fail(kProgram, d.status());
  Daemon& daemon = **d;
  const NodeDir& node = daemon.node();
  auto conf = LoadAdminConfig(node);
  if (!conf.ok()) return Daemon::Fail(kProgram, conf.status());
  if (conf->json_log) EnsureJsonLog(node, daemon.log());

  std::unique_ptr<cluster::ClusterClient> client;
  if (cluster::HasCluster(node)) {
    auto c = cluster::ClusterClient::ForNode(node);
    if (c.ok()) client = std::move(*c);
  }
  History history(180);
  Api api(node, *conf, NodeIdOf(node), &history, std::move(client));
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
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_sample) {
      sample();
      api.Tick();
      next_sample = now + std::chrono::milliseconds(kSampleMs);
    }
    int wait = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(next_sample - now)
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
