#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "node/admin/admin_grpc_client.h"
#include "node/admin/admin_render.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/daemon/health.h"
#include "node/mailq/mailq.h"

namespace zm::mailq {
namespace {

constexpr int kExUsage = 64;
constexpr int kExUnavailable = 69;
constexpr int kExNoPerm = 77;
constexpr int kExConfig = 78;  // no node there: as sendmail answers

}  // namespace

std::string RenderListing(const std::vector<std::string>& json_lines,
                          const std::string& channel, const std::string& host,
                          long long now) {
  struct Entry {
    std::string qid;
    int attempts = 0;
    long long expires = 0;
    std::string diag;
  };
  std::map<std::string, std::vector<Entry>> groups;
  for (const auto& line : json_lines) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    std::string qid = j.value("queue_id", "");
    // One entry per message and thread: the worst attempt count, the
    // last diagnostic.
    std::map<std::string, Entry> per_thread;
    for (const auto& r : j.value("recipients", nlohmann::json::array())) {
      std::string ch = r.value("channel", ""), h = r.value("host", "");
      if ((!channel.empty() && ch != channel) || (!host.empty() && h != host))
        continue;
      Entry& e = per_thread[StrCat(ch, "/", h)];
      e.qid = qid;
      e.attempts = std::max(e.attempts, r.value("attempts", 0));
      e.expires = r.value("expires", 0LL);
      std::string d = r.value("delay_reason", "");
      if (!d.empty()) e.diag = d;
    }
    for (auto& [k, e] : per_thread) groups[k].push_back(std::move(e));
  }
  if (groups.empty()) return "Mail queue is empty\n";
  std::string out;
  for (const auto& [thread, entries] : groups) {
    StrAppend(&out, thread, ":\n");
    for (const auto& e : entries) {
      StrAppend(&out, "  ", e.qid, ": (", e.attempts,
                e.attempts == 1 ? " try" : " tries", ", expires in ",
                admin::FormatDuration(e.expires - now), ")");
      if (!e.diag.empty()) {
        StrAppend(&out, " \\\n    ", e.diag);
      }
      out += "\n";
    }
  }
  return out;
}

std::vector<HeldFile> ListHeld(const std::string& spool_dir) {
  std::vector<HeldFile> out;
  for (std::string folder : {"freezer", "postman"}) {
    std::string dir = StrCat(spool_dir, "/", folder);
    auto names = fs::ListDir(dir);
    if (!names.ok()) continue;
    std::sort(names->begin(), names->end());
    for (const auto& n : *names) {
      HeldFile f;
      f.folder = folder;
      f.name = n;
      size_t dot = n.find('.');
      f.queue_id = n.substr(0, dot);
      if (dot != std::string::npos) f.cause = n.substr(dot + 1);
      struct stat st;
      if (::stat(StrCat(dir, "/", n).c_str(), &st) == 0) {
        f.size = static_cast<uint64_t>(st.st_size);
        f.mtime = static_cast<long long>(st.st_mtime);
      }
      out.push_back(std::move(f));
    }
  }
  return out;
}

std::string RenderHeld(const std::vector<HeldFile>& files, long long now) {
  std::string out, folder;
  for (const auto& f : files) {
    if (f.folder != folder) {
      folder = f.folder;
      StrAppend(&out, folder == "freezer" ? "Frozen" : "Postman", " (spool/",
                folder, "/):\n");
    }
    StrAppend(&out, "  ", f.queue_id, ": (",
              f.cause.empty() ? "no cause" : f.cause, ", ", f.size, " bytes, ",
              admin::FormatDuration(now - f.mtime), " old)\n");
  }
  return out;
}

std::string HeldJson(const HeldFile& f, const std::string& node_tag) {
  nlohmann::json j;
  j["node"] = node_tag;
  j["queue_name"] = f.folder == "freezer" ? "hold" : "corrupt";
  j["queue_id"] = f.queue_id;
  j["file"] = StrCat(f.folder, "/", f.name);
  j["cause"] = f.cause;
  j["arrival_time"] = f.mtime;
  j["message_size"] = f.size;
  j["recipients"] = nlohmann::json::array();
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int Main(const std::vector<std::string>& args, std::ostream& out,
         std::ostream& err) {
  int q = 0, s = 0;
  bool json = false;
  std::string dir, channel, host, user = "nobody", pass = "nobody", port,
                                  cafile;
  auto usage = [&](std::string_view why) {
    err << "mailq: " << why
        << " (usage: mailq [-Q|-QQ] [-s|-ss] [--json] [-c channel] [-h host] "
           "[-U user/pass] [-p [host:]port [--cafile FILE]] [-C DIR])\n";
    return kExUsage;
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* dst) {
      if (i + 1 >= args.size()) return false;
      *dst = args[++i];
      return true;
    };
    if (a == "--json") {
      json = true;
    } else if (a == "-c" || a == "-h" || a == "-C" || a == "-U" || a == "-p" ||
               a == "--cafile") {
      std::string v;
      if (!value(&v)) return usage(StrCat(a, " needs a value"));
      if (a == "-c") channel = v;
      if (a == "-h") host = v;
      if (a == "-C") dir = v;
      if (a == "-p") port = v;
      if (a == "--cafile") cafile = v;
      if (a == "-U") {
        size_t slash = v.find('/');
        if (slash == std::string::npos) return usage("-U needs user/password");
        user = v.substr(0, slash);
        pass = v.substr(slash + 1);
      }
    } else if (a.size() >= 2 && a[0] == '-' &&
               a.find_first_not_of("Qs", 1) == std::string::npos) {
      for (char c : a.substr(1)) (c == 'Q' ? q : s)++;
    } else {
      return usage(StrCat("unknown argument '", a, "'"));
    }
  }
  if (!cafile.empty() && port.empty()) {
    return usage("--cafile is for TLS to -p [host:]port");
  }
  NodeDir node = LocateNode(dir);
  if (auto st = RequireNode(node); !st.ok()) {
    err << "mailq: " << st.message() << "\n";
    return kExConfig;
  }
  if (s > 0) {
    out << health::Render(health::Collect(node));
    if (s >= 2) return 0;
  }
  // The gRPC admin service: run/scheduler.sock, or -p [host:]port (TLS
  // with --cafile).
  auto client = port.empty() ? admin::GrpcAdminClient::Connect(node, user, pass)
                             : admin::GrpcAdminClient::ConnectTo(
                                   port.find(':') == std::string::npos
                                       ? StrCat("127.0.0.1:", port)
                                       : port,
                                   user, pass, 30'000, cafile);
  auto fail = [&](std::string_view what, const absl::Status& st) {
    err << "mailq: " << what << st.message() << "\n";
    return st.code() == absl::StatusCode::kPermissionDenied ||
                   st.code() == absl::StatusCode::kUnauthenticated
               ? kExNoPerm
               : kExUnavailable;
  };
  if (!client.ok()) return fail("", client.status());
  admin::GrpcAdminClient& c = **client;
  long long now = static_cast<long long>(::time(nullptr));
  if (json) {
    auto msgs = c.ListMessages(channel, host);
    if (!msgs.ok()) return fail("listing: ", msgs.status());
    for (const auto& m : *msgs) out << admin::MessageJson(m) << "\n";
    if (channel.empty() && host.empty()) {
      auto tag = config::LoadNodeTag(node);
      for (const auto& f : ListHeld(node.spool()))
        out << HeldJson(f, tag.ok() ? *tag : "") << "\n";
    }
    return 0;
  }
  if (q >= 2) {
    auto s = c.ShowQueueShort();
    if (!s.ok()) return fail("queue summary: ", s.status());
    for (const auto& l : admin::QueueShortLines(*s)) out << l << "\n";
    return 0;
  }
  if (q == 1 && channel.empty() && host.empty()) {
    auto t = c.ShowQueueThreads();
    if (!t.ok()) return fail("threads: ", t.status());
    for (const auto& l : admin::QueueThreadsLines(*t)) out << l << "\n";
    return 0;
  }
  if (q == 1) {
    if (channel.empty() || host.empty())
      return usage("-Q with -c needs -h too");
    auto t = c.ShowThread(channel, host);
    if (!t.ok()) return fail("thread: ", t.status());
    out << channel << "/" << host << ":\n";
    for (const auto& m : t->messages()) {
      out << "  " << m.queue_id() << ": " << m.sender() << " (" << m.attempts()
          << " tries, expires in "
          << admin::FormatDuration(m.expires() - now) << ")";
      if (!m.diagnostic().empty()) out << " \\\n    " << m.diagnostic();
      out << "\n";
    }
    return 0;
  }
  auto msgs = c.ListMessages(channel, host);
  if (!msgs.ok()) return fail("listing: ", msgs.status());
  std::vector<std::string> lines;
  lines.reserve(msgs->size());
  for (const auto& m : *msgs) lines.push_back(admin::MessageJson(m));
  out << RenderListing(lines, channel, host, now);
  if (channel.empty() && host.empty())
    out << RenderHeld(ListHeld(node.spool()), now);
  return 0;
}

}  // namespace zm::mailq
