#include "node/daemon/health.h"

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/spool/spool.h"

namespace zm::health {

bool ProcessRuns(int pid, std::string_view name) {
  if (pid <= 0) return false;
  auto stat = fs::ReadFile(StrCat("/proc/", pid, "/stat"), 4096);
  if (!stat.ok()) return false;
  // The state letter follows the command name, which is in parentheses and
  // may itself hold ')'.
  auto paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size() ||
      (*stat)[paren + 2] == 'Z' || (*stat)[paren + 2] == 'X') {
    return false;
  }
  auto comm = fs::ReadFile(StrCat("/proc/", pid, "/comm"), 64);
  if (!comm.ok()) return false;
  // The kernel keeps the first 15 bytes of the executable's name.
  return Trim(*comm) == name.substr(0, 15);
}

ProgramState ReadProgramState(const NodeDir& node, const std::string& program) {
  ProgramState st;
  st.name = program;
  auto text = fs::ReadFile(node.pid_file(program), 64);
  if (!text.ok()) return st;
  int pid = 0;
  if (!ParseNumber(Trim(*text), &pid) || pid <= 0) return st;
  st.pid = pid;
  st.running = ProcessRuns(pid, program);
  return st;
}

std::vector<std::string> DaemonPrograms(const NodeDir& node) {
  std::vector<std::string> programs = DaemonPrograms();
  auto conf = fs::ReadFile(node.etc_file("cluster.conf"), 1 << 20);
  const std::string text = conf.ok() ? *conf : "";
  // A node that names itself (node-id) runs its agent, solo when it does
  // not gossip (docs/cluster.md, "A node alone").
  for (std::string_view line : Split(text, '\n')) {
    auto words = SplitWhitespace(line);
    if (words.size() >= 2 &&
        (words[0] == "gossip-listen" || words[0] == "node-id")) {
      programs.push_back("clusterd");
      break;
    }
  }
  programs.push_back("admind");  // the admin HTTP listener, last
  return programs;
}

NodeHealth Collect(const NodeDir& node) {
  NodeHealth h;
  h.home = node.home;
  h.frozen = fs::Exists(node.freeze_marker());
  h.supervisor = ReadProgramState(node, "zmailer");
  for (const auto& p : DaemonPrograms(node)) {
    h.programs.push_back(ReadProgramState(node, p));
  }
  // Counting needs no node tag.
  h.spool_counts = spool::Spool(node.spool(), "").Counts();
  return h;
}

static std::string Line(const ProgramState& p, std::string_view label) {
  std::string name = label.empty() ? p.name : StrCat(p.name, " ", label);
  name.resize(std::max<size_t>(name.size(), 22), ' ');
  if (p.running) return StrCat(name, "running  pid ", p.pid, "\n");
  if (p.pid != 0) return StrCat(name, "NOT running (stale pid ", p.pid, ")\n");
  return StrCat(name, "NOT running\n");
}

std::string Render(const NodeHealth& h) {
  std::string out =
      StrCat("node ", h.home, " (frozen: ", h.frozen ? "yes" : "no", ")\n");
  out += Line(h.supervisor, "(supervisor)");
  for (const auto& p : h.programs) out += Line(p, "");
  out += "spool:";
  for (const auto& [folder, n] : h.spool_counts) {
    StrAppend(&out, " ", folder, " ", n);
  }
  out += "\n";
  return out;
}

}  // namespace zm::health
