#include "node/admind/admind_health.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/daemon/health.h"
#include "node/metrics/metrics.h"

namespace zm::admind {
namespace {

// The programs /readyz needs up (admind itself and clusterd are not).
constexpr const char* kNeeded[] = {"scheduler", "router", "smtpserver"};

bool SpoolWritable(const NodeDir& node, std::string* why) {
  std::string probe = StrCat(node.spool(), "/.admind-ready.", getpid());
  int fd =
      ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *why = StrCat("spool not writable: ", strerror(errno));
    return false;
  }
  bool ok = ::write(fd, "x", 1) == 1;
  if (!ok) *why = StrCat("spool not writable: ", strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
  return ok;
}

}  // namespace

std::string DrainingMarker(const NodeDir& node) {
  return node.run() + "/draining";
}

Readiness CheckReadiness(const NodeDir& node) {
  Readiness r;
  std::string why;
  if (!SpoolWritable(node, &why)) r.failures.push_back(why);
  for (const char* p : kNeeded) {
    if (!health::ReadProgramState(node, p).running) {
      r.failures.push_back(StrCat(p, " not running"));
    }
  }
  r.draining = fs::Exists(DrainingMarker(node));
  if (r.draining) r.failures.push_back("node is draining");
  r.ready = r.failures.empty();
  return r;
}

int64_t ProcessStartUnix(int pid) {
  if (pid <= 0) return 0;
  auto stat = fs::ReadFile(StrCat("/proc/", pid, "/stat"), 4096);
  auto uptime = fs::ReadFile("/proc/uptime", 256);
  if (!stat.ok() || !uptime.ok()) return 0;
  auto paren = stat->rfind(')');
  if (paren == std::string::npos) return 0;
  // Fields after the command: state is field 3; starttime is field 22.
  auto fields = SplitWhitespace(std::string_view(*stat).substr(paren + 1));
  if (fields.size() < 20) return 0;
  uint64_t ticks = 0;
  if (!ParseNumber(fields[19], &ticks)) return 0;
  auto up = SplitWhitespace(*uptime);
  if (up.empty()) return 0;
  double since_boot = std::strtod(std::string(up[0]).c_str(), nullptr);
  long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) return 0;
  double age =
      since_boot - static_cast<double>(ticks) / static_cast<double>(hz);
  return static_cast<int64_t>(std::time(nullptr)) - static_cast<int64_t>(age);
}

std::vector<ProcessInfo> Processes(const NodeDir& node) {
  // The supervisor counts restarts into its metrics file.
  std::map<std::string, int64_t> restarts;
  auto sup_stats =
      metrics::ReadStatsFile(node.run() + "/metrics/zmailer.stats");
  if (sup_stats.ok()) {
    for (const auto& s : sup_stats->samples) {
      if (s.name != "zmnode_restarts_total") continue;
      // labels: program="NAME"
      std::string_view l = s.labels;
      if (ConsumePrefix(&l, "program=\"") && !l.empty()) {
        restarts[std::string(l.substr(0, l.size() - 1))] = s.value;
      }
    }
  }
  std::vector<ProcessInfo> out;
  std::vector<std::string> names = {"zmailer"};
  for (const auto& p : health::DaemonPrograms(node)) names.push_back(p);
  for (const auto& name : names) {
    auto st = health::ReadProgramState(node, name);
    ProcessInfo p;
    p.name = name;
    p.pid = st.pid;
    p.up = st.running;
    p.restarts = restarts.count(name) ? restarts[name] : 0;
    p.start_unix = st.running ? ProcessStartUnix(st.pid) : 0;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace zm::admind
