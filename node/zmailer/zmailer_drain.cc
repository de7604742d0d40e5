// `zmailer drain`, etc/drain.conf and the handoff of a stopped node's
// queue to its peers over SMTP (zmailer_drain.h).
#include "node/zmailer/zmailer_drain.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <iostream>
#include <set>

#include "cluster/conf/cluster_conf.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/config/config_file.h"
#include "node/config/mail_conf.h"
#include "node/daemon/health.h"
#include "node/mail/control.h"
#include "node/mail/envelope.h"
#include "node/spool/spool.h"
#include "node/ta/smtpclient/smtpclient.h"
#include "node/zmailer/commands_internal.h"
#include "node/zmailer/supervisor_internal.h"
#include "node/zmailer/zmailer.h"

namespace zm::zmailer::internal {
namespace {

int Fail(std::string_view text) {
  std::cerr << "zmailer: " << text << "\n";
  return kExitFailure;
}

// One message to relay: envelope, text, and how to finish it here.
struct Parcel {
  std::string queue_id;
  smtpclient::Envelope envelope;
  std::string message;  // RFC 5322, LF line endings
};

// What a peer said to one transaction: per recipient, klass 2 = taken.
std::vector<smtpclient::Outcome> Relay(const HandoffPeer& peer,
                                       const std::string& helo,
                                       const Parcel& p, int timeout_ms,
                                       std::string* why) {
  auto conn =
      smtpclient::Connection::ConnectTcp(peer.host, peer.port, timeout_ms);
  if (!conn.ok()) {
    *why = Message(conn.status());
    return {};
  }
  smtpclient::Client client(*std::move(conn),
                            smtpclient::Timeouts::All(timeout_ms), false);
  if (auto f = client.Open(helo)) {
    *why = f->diag;
    return {};
  }
  std::vector<smtpclient::Outcome> out = client.Send(p.envelope, p.message);
  client.Quit();
  return out;
}

std::string PeerName(const HandoffPeer& p) {
  return p.host.find(':') != std::string::npos
             ? StrCat("[", p.host, "]:", p.port)
             : StrCat(p.host, ":", p.port);
}

// Offers `p` to the peers in turn from `first` on until one takes every
// recipient or all were tried. Returns, per recipient, whether some peer
// took it (a peer that refuses some recipients keeps them for the next).
std::vector<bool> Offer(const std::vector<HandoffPeer>& peers, size_t first,
                        const std::string& helo, Parcel p, int timeout_ms,
                        Logger& log, std::string* taken_by,
                        std::string* last_problem) {
  std::vector<std::string> wanted;
  for (const auto& r : p.envelope.recipients) wanted.push_back(r.address);
  std::vector<bool> taken(wanted.size(), false);
  for (size_t i = 0; i < peers.size() && !p.envelope.recipients.empty(); ++i) {
    const HandoffPeer& peer = peers[(first + i) % peers.size()];
    std::string why;
    auto outcomes = Relay(peer, helo, p, timeout_ms, &why);
    if (outcomes.size() != p.envelope.recipients.size()) {
      *last_problem = StrCat(PeerName(peer), ": ", why.empty() ? "no answer" : why);
      log.Warning(p.queue_id, StrCat("handoff to ", *last_problem));
      continue;
    }
    std::vector<smtpclient::Recipient> left;
    for (size_t k = 0; k < outcomes.size(); ++k) {
      const auto& r = p.envelope.recipients[k];
      if (outcomes[k].klass == 2) {
        auto it = std::find(wanted.begin(), wanted.end(), r.address);
        if (it != wanted.end()) taken[it - wanted.begin()] = true;
        log.Info(p.queue_id, StrCat("handed off to ", PeerName(peer), ": <",
                                    r.address, ">"));
        *taken_by = PeerName(peer);
      } else {
        *last_problem = StrCat(PeerName(peer), ": <", r.address, "> ",
                               outcomes[k].diag);
        log.Warning(p.queue_id, StrCat("handoff to ", *last_problem));
        left.push_back(r);
      }
    }
    p.envelope.recipients = std::move(left);
  }
  return taken;
}

// router/ or deferred/: the whole envelope goes; removed if all were taken.
bool HandOffMessageFile(const spool::Spool& spool, std::string_view folder,
                        const std::string& name,
                        const std::vector<HandoffPeer>& peers, size_t first,
                        const std::string& helo, int timeout_ms, Logger& log,
                        HandoffReport& report) {
  std::string path = spool.Path(folder, name);
  auto text = fs::ReadFile(path, kMaxMessageFileBytes);
  if (!text.ok()) {
    report.problems.push_back(StrCat(name, ": ", Message(text.status())));
    return false;
  }
  auto mf = mail::ParseMessageFile(*text);
  if (!mf.ok()) {
    report.problems.push_back(StrCat(name, ": ", Message(mf.status())));
    return false;
  }
  Parcel p;
  p.queue_id = mf->envelope.queue_id.empty() ? name : mf->envelope.queue_id;
  p.envelope.sender = mf->envelope.sender;
  p.envelope.ret = mf->envelope.ret;
  p.envelope.envid = mf->envelope.envid;
  for (const auto& r : mf->envelope.recipients) {
    p.envelope.recipients.push_back({r.address, r.notify, r.orcpt});
  }
  p.message = text->substr(mf->body_offset);
  std::string by, problem;
  auto taken = Offer(peers, first, helo, std::move(p), timeout_ms, log, &by,
                     &problem);
  bool all = std::all_of(taken.begin(), taken.end(), [](bool b) { return b; });
  if (!all) {
    report.problems.push_back(StrCat(name, ": kept: ", problem));
    return false;
  }
  if (::unlink(path.c_str()) != 0) {
    report.problems.push_back(
        StrCat(name, ": taken by ", by, " but not removed: ",
               std::strerror(errno)));
    return false;
  }
  log.Info(name, StrCat("removed: handed off to ", by));
  return true;
}

// queue/ + transport/: the recipients without a final result go (by the
// address they came in as); each taken one gets a delivered result line,
// and the message is removed once none is left.
enum class Handed { kAll, kSome, kNone };
Handed HandOffRouted(const spool::Spool& spool, const std::string& qid,
                     const std::vector<HandoffPeer>& peers, size_t first,
                     const std::string& helo, int timeout_ms, Logger& log,
                     HandoffReport& report) {
  std::string cpath = spool.Path(spool::kTransport, qid);
  std::string qpath = spool.Path(spool::kQueue, qid);
  auto ctext = fs::ReadFile(cpath, kMaxMessageFileBytes);
  if (!ctext.ok()) {
    report.problems.push_back(StrCat(qid, ": ", Message(ctext.status())));
    return Handed::kNone;
  }
  auto cf = mail::ParseControl(*ctext);
  if (!cf.ok()) {
    report.problems.push_back(StrCat(qid, ": ", Message(cf.status())));
    return Handed::kNone;
  }
  std::set<int> final_ones;
  for (const auto& r : cf->results) final_ones.insert(r.index);
  std::vector<const mail::ControlRecipient*> pending;
  for (const auto& r : cf->recipients) {
    if (!final_ones.contains(r.index)) pending.push_back(&r);
  }
  auto qtext = fs::ReadFile(qpath, kMaxMessageFileBytes);
  if (!qtext.ok() || cf->body_offset > qtext->size()) {
    report.problems.push_back(StrCat(qid, ": no readable message in queue/"));
    return Handed::kNone;
  }
  Parcel p;
  p.queue_id = qid;
  p.envelope.sender = cf->sender;
  p.envelope.ret = cf->ret;
  p.envelope.envid = cf->envid;
  std::set<std::string> seen;
  for (const auto* r : pending) {
    std::string address = r->orig.empty() ? r->user : r->orig;
    if (seen.insert(address).second) {
      p.envelope.recipients.push_back({address, r->notify, r->orcpt});
    }
  }
  p.message = qtext->substr(cf->body_offset);
  std::vector<std::string> addresses;
  for (const auto& r : p.envelope.recipients) addresses.push_back(r.address);
  std::string by, problem;
  std::vector<bool> taken;
  if (!addresses.empty()) {
    taken = Offer(peers, first, helo, std::move(p), timeout_ms, log, &by,
                  &problem);
  }
  // Results first (O_APPEND, one write per line, as the agents do), then
  // the message, then the control file: the scheduler's own order, so a
  // crash in between leaves nothing to deliver twice.
  std::string lines;
  size_t left = 0;
  for (const auto* r : pending) {
    std::string address = r->orig.empty() ? r->user : r->orig;
    size_t k = std::find(addresses.begin(), addresses.end(), address) -
               addresses.begin();
    if (k < taken.size() && taken[k]) {
      mail::ControlResult res;
      res.index = r->index;
      res.status = mail::ResultStatus::kDelivered;
      res.time = ::time(nullptr);
      res.dsn = "2.0.0";
      res.diag = StrCat("handed off to ", by);
      lines += mail::SerializeResult(res);
    } else {
      ++left;
    }
  }
  if (!lines.empty()) {
    fs::UniqueFd fd(::open(cpath.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
    absl::Status s = fd.valid() ? fs::WriteAll(fd.get(), lines, cpath)
                                : fs::ErrnoStatus("open", cpath, errno);
    if (s.ok()) s = fs::Fsync(fd.get(), cpath);
    if (!s.ok()) {
      report.problems.push_back(StrCat(qid, ": taken by ", by,
                                       " but not recorded: ", Message(s)));
      return Handed::kNone;
    }
  }
  if (left > 0) {
    report.problems.push_back(StrCat(qid, ": kept (", left,
                                     " recipients): ", problem));
    return lines.empty() ? Handed::kNone : Handed::kSome;
  }
  ::unlink(qpath.c_str());
  ::unlink(cpath.c_str());
  log.Info(qid, StrCat("removed: handed off to ", by));
  return Handed::kAll;
}

absl::StatusOr<HandoffPeer> ParsePeer(const std::string& text) {
  auto hp = cluster::ParseHostPort(text);
  if (!hp.ok()) {
    return absl::InvalidArgumentError(
        StrCat("--handoff ", text, ": ", Message(hp.status())));
  }
  return HandoffPeer{hp->host, hp->port};
}

}  // namespace

absl::StatusOr<DrainSettings> LoadDrainSettings(const NodeDir& node) {
  DrainSettings s;
  std::string path = node.etc_file("drain.conf");
  auto lines = config::ReadLines(path);
  if (!lines.ok()) {
    if (absl::IsNotFound(lines.status())) return s;
    return lines.status();
  }
  for (const auto& l : *lines) {
    auto words = SplitWhitespace(l.text);
    if (words.size() != 2) {
      return config::Error(path, l.number, "expected KEY VALUE");
    }
    int64_t* field = nullptr;
    if (words[0] == "readiness-delay") field = &s.readiness_delay_ms;
    if (words[0] == "stop-timeout") field = &s.stop_timeout_ms;
    if (words[0] == "handoff-timeout") field = &s.handoff_timeout_ms;
    if (field == nullptr) {
      return config::Error(path, l.number,
                           StrCat("unknown key '", words[0], "'"));
    }
    auto ms = config::ParseDurationMs(words[1]);
    bool zero_ok = field == &s.readiness_delay_ms;
    if (!ms.ok() || *ms < 0 || (*ms == 0 && !zero_ok) ||
        *ms > 24LL * 3600 * 1000) {
      return config::Error(path, l.number,
                           StrCat(words[0], " needs a duration up to 24h, not '",
                                  words[1], "'"));
    }
    *field = *ms;
  }
  return s;
}

int64_t DrainBoundMs(const NodeDir& node, const DrainSettings& settings) {
  return settings.readiness_delay_ms +
         settings.stop_timeout_ms *
             static_cast<int64_t>(health::DaemonPrograms(node).size() + 1) +
         10000;
}

HandoffReport HandOff(const NodeDir& node, const std::vector<HandoffPeer>& peers,
                      const DrainSettings& settings, Logger& log) {
  HandoffReport report;
  spool::Spool spool(node.spool(), "");
  std::string helo = "localhost";
  if (auto mc = config::LoadMailConf(node); mc.ok() && !mc->hostname.empty()) {
    helo = mc->hostname;
  }
  int timeout_ms = static_cast<int>(settings.handoff_timeout_ms);
  size_t turn = 0;
  for (std::string_view folder : {spool::kRouter, spool::kDeferred}) {
    auto names = fs::ListDir(spool.Path(folder));
    if (!names.ok()) continue;
    std::sort(names->begin(), names->end());
    for (const auto& name : *names) {
      if (HandOffMessageFile(spool, folder, name, peers, turn++, helo,
                             timeout_ms, log, report)) {
        ++report.handed;
      } else {
        ++report.kept;
      }
    }
  }
  auto controls = fs::ListDir(spool.Path(spool::kTransport));
  if (controls.ok()) {
    std::sort(controls->begin(), controls->end());
    for (const auto& qid : *controls) {
      switch (HandOffRouted(spool, qid, peers, turn++, helo, timeout_ms, log,
                            report)) {
        case Handed::kAll:
          ++report.handed;
          break;
        case Handed::kSome:
          ++report.partial;
          ++report.kept;
          break;
        case Handed::kNone:
          ++report.kept;
          break;
      }
    }
  }
  return report;
}

void AddDrainCommand(CLI::App& app, DrainCommand* cmd) {
  cmd->sub = app.add_subcommand(
      "drain",
      "stop the node without losing mail: readiness off, 421 4.3.2 to new "
      "SMTP clients, running transactions finish, leave the fleet");
  cmd->sub
      ->add_option("--handoff", cmd->handoff,
                   "then relay the queued mail over SMTP to these peers "
                   "(repeatable)")
      ->type_name("HOST:PORT")
      ->expected(1)
      ->take_all();
  cmd->sub->add_option("--timeout", cmd->timeout,
                       "how long to wait for the node to stop (default: "
                       "from etc/drain.conf)")
      ->type_name("DURATION");
}

int CmdDrain(const NodeDir& node, const DrainCommand& cmd) {
  if (auto s = RequireNode(node); !s.ok()) return Fail(Message(s));
  std::vector<HandoffPeer> peers;
  for (const auto& h : cmd.handoff) {
    auto p = ParsePeer(h);
    if (!p.ok()) {
      std::cerr << "zmailer: " << Message(p.status()) << "\n";
      return kExitUsage;
    }
    peers.push_back(*p);
  }
  auto settings = LoadDrainSettings(node);
  if (!settings.ok()) return Fail(Message(settings.status()));
  int64_t bound = DrainBoundMs(node, *settings);
  if (!cmd.timeout.empty()) {
    auto t = config::ParseDurationMs(cmd.timeout);
    if (!t.ok() || *t <= 0) {
      std::cerr << "zmailer: --timeout needs a duration, not '" << cmd.timeout
                << "'\n";
      return kExitUsage;
    }
    bound = *t;
  }
  auto sup = health::ReadProgramState(node, "zmailer");
  if (sup.running) {
    ::kill(sup.pid, SIGTERM);
    std::cout << "draining node " << node.home << " (supervisor pid "
              << sup.pid << ")\n"
              << std::flush;
    if (!WaitForExit(sup.pid, static_cast<int>(std::min<int64_t>(
                                  bound, 24LL * 3600 * 1000)))) {
      return Fail(StrCat("the supervisor (pid ", sup.pid,
                         ") did not finish draining within ", bound / 1000,
                         "s; 'zmailer kill' forces it"));
    }
    std::cout << "node " << node.home << " stopped\n";
  } else {
    // Not running: a handoff still works; the marker says why it is down.
    for (const auto& p : health::DaemonPrograms(node)) {
      if (health::ReadProgramState(node, p).running) {
        return Fail(StrCat(p, " runs without a supervisor; 'zmailer stop' "
                              "first"));
      }
    }
    if (auto s = fs::WriteFileAtomically(node.run(), "draining",
                                         StrCat(::time(nullptr), "\n"));
        !s.ok()) {
      return Fail(Message(s));
    }
    std::cout << "node " << node.home << " is not running\n";
  }
  if (peers.empty()) return kExitOk;
  Logger log("zmailer", node.maillog(), false);
  HandoffReport r = HandOff(node, peers, *settings, log);
  std::cout << "handoff: " << r.handed << " messages handed off, " << r.kept
            << " kept";
  if (r.partial > 0) std::cout << " (" << r.partial << " partly handed off)";
  std::cout << "\n";
  for (const auto& p : r.problems) std::cout << "  " << p << "\n";
  return r.kept == 0 ? kExitOk : kExitFailure;
}

}  // namespace zm::zmailer::internal
