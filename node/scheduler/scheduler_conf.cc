#include "node/scheduler/scheduler_conf.h"

#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/config/config_file.h"

namespace zm::scheduler {

int AutoMaxTa() {
  struct rlimit rl;
  int64_t fds = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    fds = rl.rlim_cur == RLIM_INFINITY ? (1 << 20)
                                       : static_cast<int64_t>(rl.rlim_cur);
  }
  return static_cast<int>(std::clamp<int64_t>((fds - 100) / 2, 10, 1000));
}
namespace {

using config::Error;

constexpr size_t kMaxConfBytes = 4u << 20;

// Splits a line into whitespace-separated tokens; double quotes group and
// are kept (a parameter value is unquoted later).
std::vector<std::string> Tokenize(std::string_view line) {
  std::vector<std::string> out;
  std::string cur;
  bool in_token = false;
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      cur.push_back(c);
      if (c == '\\' && i + 1 < line.size()) {
        cur.push_back(line[++i]);
      } else if (c == '"') {
        quote = 0;
      }
      continue;
    }
    if (c == ' ' || c == '\t') {
      if (in_token) out.push_back(std::move(cur));
      cur.clear();
      in_token = false;
      continue;
    }
    in_token = true;
    cur.push_back(c);
    if (c == '"') quote = c;
  }
  if (in_token) out.push_back(std::move(cur));
  return out;
}

// "abc" -> abc, with \" and \\ unescaped; false on an unterminated quote.
bool Unquote(std::string_view in, std::string* out) {
  out->clear();
  if (in.empty() || in.front() != '"') {
    out->assign(in);
    return true;
  }
  if (in.size() < 2 || in.back() != '"') return false;
  in = in.substr(1, in.size() - 2);
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\\' && i + 1 < in.size()) {
      out->push_back(in[++i]);
    } else if (in[i] == '"') {
      return false;
    } else {
      out->push_back(in[i]);
    }
  }
  return true;
}

bool IsFlag(std::string_view key) {
  return key == "ageorder" || key == "queueonly" || key == "bychannel" ||
         key == "bhost";
}

bool IsKnownKey(std::string_view key) {
  static constexpr std::string_view kKeys[] = {
      "maxta",  "maxchannel", "maxring", "maxthr",      "interval", "idlemax",
      "expiry", "retries",    "skew",    "overfeed",    "user",     "group",
      "nice",   "priority",   "sysnice", "syspriority", "command",  "warning"};
  if (IsFlag(key)) return true;
  for (auto k : kKeys) {
    if (k == key) return true;
  }
  return false;
}

bool ParseIntIn(std::string_view v, int lo, int hi, int* out) {
  int n = 0;
  std::string_view s = v;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (!ParseNumber(s, &n)) return false;
  if (neg) n = -n;
  if (n < lo || n > hi) return false;
  *out = n;
  return true;
}

// Applies one parameter to `p`. The message names what is wrong.
absl::Status ApplyParam(const Param& prm, ThreadParams* p) {
  const std::string& k = prm.key;
  const std::string& v = prm.value;
  if (IsFlag(k)) {
    if (prm.has_value) {
      return absl::InvalidArgumentError(
          StrCat("'", k, "' is a flag and takes no value"));
    }
    if (k == "ageorder") p->ageorder = true;
    if (k == "queueonly") p->queueonly = true;
    if (k == "bychannel") {
      // ZMailer: one agent job for all of a channel's hosts. Our jobs are
      // always one channel/host thread's (an smtp connection, a host for
      // sm's $h), so this cannot be honoured; refused rather than ignored.
      return absl::InvalidArgumentError(
          "'bychannel' is not supported: jobs always go per channel/host "
          "thread (remove it; see docs/scheduler.md)");
    }
    if (k == "bhost") p->bhost = true;
    return absl::OkStatus();
  }
  if (!prm.has_value) {
    return absl::InvalidArgumentError(
        StrCat("'", k, "' needs a value (", k, "=...)"));
  }
  auto duration = [&](int64_t* out, bool allow_zero) -> absl::Status {
    auto ms = config::ParseDurationMs(v);
    if (!ms.ok() || *ms < 0 || (!allow_zero && *ms == 0)) {
      return absl::InvalidArgumentError(
          StrCat("bad duration for ", k, ": '", v, "'"));
    }
    *out = *ms;
    return absl::OkStatus();
  };
  auto integer = [&](int lo, int hi, int* out) -> absl::Status {
    if (!ParseIntIn(v, lo, hi, out)) {
      return absl::InvalidArgumentError(
          StrCat("bad value for ", k, ": '", v, "' (", lo, "..", hi, ")"));
    }
    return absl::OkStatus();
  };
  int dummy = 0;
  if (k == "interval") return duration(&p->interval_ms, false);
  if (k == "idlemax") return duration(&p->idlemax_ms, true);
  if (k == "expiry") return duration(&p->expiry_ms, false);
  if (k == "warning") return duration(&p->warning_ms, true);
  if (k == "maxchannel") return integer(0, 100000, &p->maxchannel);
  if (k == "maxring") return integer(0, 100000, &p->maxring);
  if (k == "maxthr") return integer(0, 100000, &p->maxthr);
  if (k == "maxta") return integer(0, 100000, &dummy);
  if (k == "skew") return integer(0, 1000, &p->skew);
  if (k == "overfeed") return integer(0, 100000, &p->overfeed);
  if (k == "sysnice" || k == "syspriority") return integer(-20, 19, &dummy);
  if (k == "nice" || k == "priority") {
    if (auto s = integer(-20, 19, &dummy); !s.ok()) return s;
    (k == "nice" ? p->nice : p->priority) = dummy;
    return absl::OkStatus();
  }
  if (k == "retries") {
    std::vector<int> r;
    for (auto w : SplitWhitespace(v)) {
      int n = 0;
      if (!ParseIntIn(w, 1, 100000, &n)) {
        return absl::InvalidArgumentError(
            StrCat("bad retries factor '", w, "' (positive integers)"));
      }
      r.push_back(n);
    }
    if (r.empty())
      return absl::InvalidArgumentError("retries needs at least one factor");
    p->retries = std::move(r);
    return absl::OkStatus();
  }
  if (k == "user" || k == "group") {
    if (v.empty()) return absl::InvalidArgumentError(StrCat(k, " is empty"));
    (k == "user" ? p->user : p->group) = v;
    return absl::OkStatus();
  }
  if (k == "command") {
    if (Trim(v).empty()) return absl::InvalidArgumentError("command is empty");
    p->command = v;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(StrCat("unknown parameter '", k, "'"));
}

// Glob matching on lower-cased text.
bool MatchBracket(std::string_view pat, size_t* pi, char c, bool* ok) {
  // pat[*pi] == '['. Returns whether c matches; *ok false if unterminated.
  size_t i = *pi + 1;
  bool negate = false;
  if (i < pat.size() && (pat[i] == '!' || pat[i] == '^')) {
    negate = true;
    ++i;
  }
  bool matched = false;
  bool first = true;
  while (i < pat.size() && (first || pat[i] != ']')) {
    first = false;
    char lo = pat[i];
    if (lo == '\\' && i + 1 < pat.size()) lo = pat[++i];
    char hi = lo;
    if (i + 2 < pat.size() && pat[i + 1] == '-' && pat[i + 2] != ']') {
      hi = pat[i + 2];
      if (hi == '\\' && i + 3 < pat.size()) {
        hi = pat[i + 3];
        ++i;
      }
      i += 2;
    }
    char lc = static_cast<char>(std::tolower(static_cast<unsigned char>(lo)));
    char hc = static_cast<char>(std::tolower(static_cast<unsigned char>(hi)));
    if (c >= lc && c <= hc) matched = true;
    ++i;
  }
  if (i >= pat.size()) {
    *ok = false;
    return false;
  }
  *ok = true;
  *pi = i + 1;
  return matched != negate;
}

bool GlobImpl(std::string_view pat, std::string_view text, int depth) {
  if (depth > 32) return false;
  size_t pi = 0, ti = 0;
  while (pi < pat.size()) {
    char pc = pat[pi];
    if (pc == '{') {
      // Find the matching '}' and the top-level alternatives.
      int level = 0;
      size_t close = std::string_view::npos;
      std::vector<size_t> commas;
      for (size_t j = pi; j < pat.size(); ++j) {
        if (pat[j] == '\\') {
          ++j;
          continue;
        }
        if (pat[j] == '{') ++level;
        if (pat[j] == '}' && --level == 0) {
          close = j;
          break;
        }
        if (pat[j] == ',' && level == 1) commas.push_back(j);
      }
      if (close != std::string_view::npos) {
        std::string_view rest = pat.substr(close + 1);
        size_t start = pi + 1;
        commas.push_back(close);
        for (size_t comma : commas) {
          std::string alt(pat.substr(start, comma - start));
          alt.append(rest);
          if (GlobImpl(alt, text.substr(ti), depth + 1)) return true;
          start = comma + 1;
        }
        return false;
      }
      // Unterminated: a literal '{'.
    }
    if (pc == '*') {
      while (pi < pat.size() && pat[pi] == '*') ++pi;
      if (pi == pat.size()) return true;
      for (size_t k = ti; k <= text.size(); ++k) {
        if (GlobImpl(pat.substr(pi), text.substr(k), depth + 1)) return true;
      }
      return false;
    }
    if (ti >= text.size()) return false;
    char tc = text[ti];
    if (pc == '?') {
      ++pi;
      ++ti;
      continue;
    }
    if (pc == '[') {
      bool ok = false;
      size_t save = pi;
      bool m = MatchBracket(pat, &pi, tc, &ok);
      if (ok) {
        if (!m) return false;
        ++ti;
        continue;
      }
      pi = save;  // unterminated: literal '['
    }
    if (pc == '\\' && pi + 1 < pat.size()) pc = pat[++pi];
    if (std::tolower(static_cast<unsigned char>(pc)) != tc) return false;
    ++pi;
    ++ti;
  }
  return ti == text.size();
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text) {
  return GlobImpl(pattern, ToLower(text), 0);
}

bool SelectorMatches(std::string_view selector, std::string_view channel,
                     std::string_view host) {
  size_t slash = selector.find('/');
  if (slash == std::string_view::npos) return false;
  return GlobMatch(selector.substr(0, slash), channel) &&
         GlobMatch(selector.substr(slash + 1), host);
}

ThreadParams SchedulerConf::Resolve(std::string_view channel,
                                    std::string_view host) const {
  ThreadParams p;
  for (size_t i = 0; i < clauses.size(); ++i) {
    const Clause& c = clauses[i];
    bool match = false;
    for (const auto& sel : c.selectors) {
      if (SelectorMatches(sel, channel, host)) {
        match = true;
        break;
      }
    }
    if (!match) continue;
    for (const auto& prm : c.params) {
      if (prm.key == "maxta" || prm.key == "sysnice" ||
          prm.key == "syspriority") {
        continue;
      }
      (void)ApplyParam(prm, &p);  // validated at parse time
    }
    if (c.has_command) {
      p.ring = static_cast<int>(i);
      p.ring_name = c.selectors.empty() ? "" : c.selectors.front();
      break;
    }
  }
  return p;
}

namespace {

// PARAMgrpcaddr: "TCP:port" (127.0.0.1), "TCP:host:port" (an IPv6 host in
// brackets), "off" -> the gRPC listening address, "" for off.
absl::StatusOr<std::string> GrpcAddress(std::string_view v) {
  if (EqualsIgnoreCase(v, "off")) return std::string();
  auto bad = [] {
    return absl::InvalidArgumentError(
        "PARAMgrpcaddr must be TCP:port, TCP:host:port or off");
  };
  if (!StartsWithIgnoreCase(v, "TCP:")) return bad();
  v.remove_prefix(4);
  size_t colon = v.rfind(':');
  std::string_view host =
      colon == std::string_view::npos ? "127.0.0.1" : v.substr(0, colon);
  std::string_view port_s =
      colon == std::string_view::npos ? v : v.substr(colon + 1);
  int port = 0;
  if (host.empty() || !ParseNumber(port_s, &port) || port <= 0 ||
      port > 65535) {
    return bad();
  }
  return StrCat(host, ":", port);
}

}  // namespace

absl::StatusOr<SchedulerConf> ParseSchedulerConf(std::string_view text,
                                                 const std::string& file,
                                                 const NodeDir& node) {
  SchedulerConf conf;
  conf.file = file;
  conf.mailsock = "UNIX:" + node.run() + "/mailq.sock";
  int number = 0;
  Clause* current = nullptr;
  auto add_param = [&](std::string_view tok, int line) -> absl::Status {
    Param prm;
    prm.line = line;
    size_t eq = tok.find('=');
    std::string_view key = tok.substr(0, eq);
    prm.key = std::string(key);
    if (!IsKnownKey(prm.key)) {
      return Error(file, line, StrCat("unknown parameter '", key, "'"));
    }
    if (eq != std::string_view::npos) {
      prm.has_value = true;
      if (!Unquote(tok.substr(eq + 1), &prm.value)) {
        return Error(file, line, StrCat("unterminated quote in '", tok, "'"));
      }
    }
    ThreadParams scratch;
    if (auto s = ApplyParam(prm, &scratch); !s.ok()) {
      return Error(file, line, Message(s));
    }
    if (prm.key == "command") current->has_command = true;
    current->params.push_back(std::move(prm));
    return absl::OkStatus();
  };

  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++number;
    if (raw.size() > 8192) return Error(file, number, "line too long");
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string line = config::StripComment(raw);
    if (Trim(line).empty()) {
      if (nl == text.size()) break;
      continue;
    }
    bool indented = line[0] == ' ' || line[0] == '\t';
    if (!indented && line.rfind("PARAM", 0) == 0) {
      std::string_view rest(line);
      rest.remove_prefix(5);
      size_t end = 0;
      while (end < rest.size() &&
             (std::isalnum(static_cast<unsigned char>(rest[end])) ||
              rest[end] == '_' || rest[end] == '-')) {
        ++end;
      }
      std::string name(rest.substr(0, end));
      std::string_view value = Trim(rest.substr(end));
      if (!value.empty() && value[0] == '=') value = Trim(value.substr(1));
      std::string unq;
      if (!Unquote(value, &unq))
        return Error(file, number, "unterminated quote");
      if (name.empty() || unq.empty()) {
        return Error(file, number, "PARAM line needs PARAMname = \"value\"");
      }
      auto expanded = config::ExpandVariables(unq, node);
      if (!expanded.ok())
        return Error(file, number, Message(expanded.status()));
      if (name == "authfile") {
        conf.authfile = *expanded;
      } else if (name == "mailsock") {
        std::string_view v = *expanded;
        if (!StartsWithIgnoreCase(v, "UNIX:") &&
            !StartsWithIgnoreCase(v, "TCP:")) {
          return Error(file, number,
                       "PARAMmailsock must be UNIX:/path or TCP:port");
        }
        conf.mailsock = *expanded;
      } else if (name == "grpcaddr") {
        auto addr = GrpcAddress(*expanded);
        if (!addr.ok()) return Error(file, number, Message(addr.status()));
        conf.grpcaddr = *addr;
      } else if (name == "grpccert") {
        conf.grpccert = *expanded;
        conf.grpccert_line = number;
      } else if (name == "grpckey") {
        conf.grpckey = *expanded;
        conf.grpckey_line = number;
      } else {
        return Error(file, number, StrCat("unknown PARAM '", name, "'"));
      }
      if (nl == text.size()) break;
      continue;
    }
    std::vector<std::string> toks = Tokenize(line);
    size_t i = 0;
    if (!indented) {
      std::vector<std::string> selectors;
      while (i < toks.size() && toks[i].find('=') == std::string::npos &&
             toks[i].find('/') != std::string::npos) {
        selectors.push_back(toks[i++]);
        // "*/ *" (a space after the slash, as ZMailer's own file has it).
        while (i < toks.size() && selectors.back().back() == '/' &&
               toks[i].find('=') == std::string::npos &&
               toks[i].find('/') == std::string::npos && !IsKnownKey(toks[i])) {
          selectors.back() += toks[i++];
        }
      }
      if (selectors.empty()) {
        // A parameter at column 0 continues the current clause (ZMailer
        // accepts this); anything else is an error.
        std::string key = toks[0].substr(0, toks[0].find('='));
        if (current == nullptr || !IsKnownKey(key)) {
          return Error(
              file, number,
              StrCat("expected a channel/host selector, got '", toks[0], "'"));
        }
      } else {
        for (const auto& sel : selectors) {
          size_t slash = sel.find('/');
          if (slash == 0 || slash + 1 == sel.size()) {
            return Error(file, number,
                         StrCat("bad selector '", sel, "' (channel/host)"));
          }
        }
        if (current != nullptr && current->params.empty()) {
          // Parameterless selector lines share the next parameter block.
          for (auto& s : selectors) current->selectors.push_back(std::move(s));
        } else {
          conf.clauses.push_back(Clause{});
          current = &conf.clauses.back();
          current->line = number;
          current->selectors = std::move(selectors);
        }
      }
    } else if (current == nullptr) {
      return Error(file, number, "parameter before any channel/host clause");
    }
    for (; i < toks.size(); ++i) {
      if (auto s = add_param(toks[i], number); !s.ok()) return s;
    }
    if (nl == text.size()) break;
  }
  if (conf.grpccert.empty() != conf.grpckey.empty()) {
    return conf.grpccert.empty() ? Error(file, conf.grpckey_line,
                                         "PARAMgrpckey without PARAMgrpccert")
                                 : Error(file, conf.grpccert_line,
                                         "PARAMgrpccert without PARAMgrpckey");
  }
  if (!conf.grpccert.empty() && conf.grpcaddr.empty()) {
    return Error(file, conf.grpccert_line,
                 "PARAMgrpccert needs PARAMgrpcaddr (TLS is for the TCP "
                 "listener)");
  }
  // Globals: maxta and sysnice/syspriority of the */* clause.
  for (const auto& c : conf.clauses) {
    bool star = false;
    for (const auto& s : c.selectors) star |= (s == "*/*");
    if (!star) continue;
    for (const auto& prm : c.params) {
      int n = 0;
      if (prm.key == "maxta" && ParseIntIn(prm.value, 0, 100000, &n))
        conf.maxta = n;
      if (prm.key == "sysnice" && ParseIntIn(prm.value, -20, 19, &n))
        conf.sysnice = n;
      if (prm.key == "syspriority" && ParseIntIn(prm.value, -20, 19, &n)) {
        conf.syspriority = n;
      }
    }
  }
  return conf;
}

absl::StatusOr<SchedulerConf> LoadSchedulerConf(const NodeDir& node) {
  std::string path = node.etc_file("scheduler.conf");
  auto text = fs::ReadFile(path, kMaxConfBytes);
  if (!text.ok()) return text.status();
  return ParseSchedulerConf(*text, path, node);
}

absl::StatusOr<std::string> ExpandCommand(std::string_view command,
                                          std::string_view channel,
                                          std::string_view host,
                                          const NodeDir& node) {
  std::string out;
  for (size_t i = 0; i < command.size(); ++i) {
    if (command[i] != '$') {
      out.push_back(command[i]);
      continue;
    }
    std::string_view rest = command.substr(i + 1);
    std::string name;
    size_t used = 0;
    if (!rest.empty() && rest[0] == '{') {
      size_t close = rest.find('}');
      if (close == std::string_view::npos) {
        return absl::InvalidArgumentError(
            StrCat("unterminated ${ in '", command, "'"));
      }
      name = std::string(rest.substr(1, close - 1));
      used = close + 1;
    } else {
      while (used < rest.size() &&
             (std::isalnum(static_cast<unsigned char>(rest[used])) ||
              rest[used] == '_')) {
        ++used;
      }
      name = std::string(rest.substr(0, used));
    }
    if (name.empty()) {
      out.push_back('$');
      continue;
    }
    if (name == "channel") {
      out.append(channel);
    } else if (name == "host") {
      out.append(host);
    } else {
      auto v = config::ExpandVariables(StrCat("${", name, "}"), node);
      if (!v.ok()) return v.status();
      out.append(*v);
    }
    i += used;
  }
  return out;
}

std::vector<std::string> SplitCommandWords(std::string_view command) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false, quoted = false;
  for (size_t i = 0; i < command.size(); ++i) {
    char c = command[i];
    if (quoted) {
      if (c == '\\' && i + 1 < command.size()) {
        cur.push_back(command[++i]);
      } else if (c == '"') {
        quoted = false;
      } else {
        cur.push_back(c);
      }
      continue;
    }
    if (c == ' ' || c == '\t') {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else if (c == '"') {
      quoted = true;
      in_word = true;
    } else {
      cur.push_back(c);
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

}  // namespace zm::scheduler
