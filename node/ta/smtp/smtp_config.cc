// smtp's command line, destinations and the TLS policy file.
#include <arpa/inet.h>
#include <unistd.h>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/mail_conf.h"
#include "node/ta/smtp/smtp.h"

namespace zm::smtp {
namespace {

constexpr size_t kMaxTlsFile = 1 << 20;

bool IsIp(std::string_view s) {
  std::string z(s);
  unsigned char buf[16];
  return ::inet_pton(AF_INET, z.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, z.c_str(), buf) == 1;
}

bool ParsePort(std::string_view s, int* port) {
  return ParseNumber(s, port) && *port > 0 && *port < 65536;
}

}  // namespace

absl::StatusOr<Destination> ParseDestination(std::string_view host,
                                             int default_port) {
  Destination d;
  d.port = default_port;
  std::string_view h = Trim(host);
  if (h.empty()) return absl::InvalidArgumentError("empty destination host");
  if (h[0] == '/') {
    d.name = std::string(h);
    d.unix_socket = true;
    d.literal = true;
    return d;
  }
  if (h[0] == '[') {
    size_t close = h.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(StrCat("bad address literal ", h));
    }
    std::string_view ip = h.substr(1, close - 1);
    if (ConsumePrefix(&ip, "IPv6:") || ConsumePrefix(&ip, "ipv6:")) {
    }
    std::string_view rest = h.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':' || !ParsePort(rest.substr(1), &d.port)) {
        return absl::InvalidArgumentError(StrCat("bad port in ", h));
      }
    }
    if (!IsIp(ip)) {
      return absl::InvalidArgumentError(StrCat("bad address literal ", h));
    }
    d.name = std::string(ip);
    d.literal = true;
    return d;
  }
  size_t colon = h.rfind(':');
  if (colon != std::string_view::npos) {
    if (h.find(':') != colon) {
      // A bare IPv6 address.
      if (!IsIp(h)) return absl::InvalidArgumentError(StrCat("bad host ", h));
      d.name = std::string(h);
      d.literal = true;
      return d;
    }
    if (!ParsePort(h.substr(colon + 1), &d.port)) {
      return absl::InvalidArgumentError(StrCat("bad port in ", h));
    }
    h = h.substr(0, colon);
    d.no_mx = true;
  }
  h = StripTrailingDots(h);
  if (h.empty()) return absl::InvalidArgumentError("empty destination host");
  d.name = ToLower(h);
  d.literal = IsIp(d.name);
  return d;
}

absl::StatusOr<TlsPolicies> TlsPolicies::Parse(std::string_view text,
                                               std::string_view file) {
  TlsPolicies p;
  int lineno = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++lineno;
    size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    std::vector<std::string_view> w = SplitWhitespace(line);
    if (w.empty()) continue;
    auto bad = [&](std::string_view what) {
      return absl::InvalidArgumentError(StrCat(file, ":", lineno, ": ", what));
    };
    if (w.size() == 1 && w[0].find('=') != std::string_view::npos) {
      if (auto st = p.ParseSetting(w[0]); !st.ok()) return bad(Message(st));
      continue;
    }
    if (w.size() < 2) return bad("needs a destination and a policy");
    TlsPolicy pol;
    std::string level = ToLower(w[1]);
    if (level == "none") {
      pol.level = TlsPolicy::Level::kNone;
    } else if (level == "may") {
      pol.level = TlsPolicy::Level::kMay;
    } else if (level == "encrypt") {
      pol.level = TlsPolicy::Level::kEncrypt;
    } else if (level == "verify") {
      pol.level = TlsPolicy::Level::kVerify;
    } else {
      return bad(
          StrCat("unknown policy '", w[1], "' (none, may, encrypt, verify)"));
    }
    for (size_t i = 2; i < w.size(); ++i) {
      std::string_view opt = w[i];
      if (ConsumePrefix(&opt, "ca=")) {
        pol.ca_file = std::string(opt);
      } else if (ConsumePrefix(&opt, "name=")) {
        pol.verify_name = ToLower(opt);
      } else {
        return bad(StrCat("unknown option '", w[i], "' (ca=FILE, name=HOST)"));
      }
    }
    if (pol.level != TlsPolicy::Level::kVerify &&
        (!pol.ca_file.empty() || !pol.verify_name.empty())) {
      return bad("ca= and name= belong to the verify policy");
    }
    p.rules_.emplace_back(ToLower(w[0]), std::move(pol));
  }
  return p;
}

absl::Status TlsPolicies::ParseSetting(std::string_view kv) {
  size_t eq = kv.find('=');
  std::string key = ToLower(kv.substr(0, eq));
  std::string_view value = kv.substr(eq + 1);
  auto yes_no = [&](bool* out) -> absl::Status {
    std::string v = ToLower(value);
    if (v == "yes" || v == "on" || v == "true") {
      *out = true;
    } else if (v == "no" || v == "off" || v == "false") {
      *out = false;
    } else {
      return absl::InvalidArgumentError(
          StrCat(key, "= needs yes or no, not '", value, "'"));
    }
    return absl::OkStatus();
  };
  if (key == "dane") return yes_no(&settings_.dane);
  if (key == "mta-sts") return yes_no(&settings_.mta_sts);
  if (key == "tlsrpt") return yes_no(&settings_.tlsrpt);
  if (key == "mta-sts-ca") {
    // A relative name is in the node's etc/ (MakeAgent completes it).
    settings_.mta_sts_ca = std::string(value);
    return absl::OkStatus();
  }
  if (key == "mta-sts-port") {
    if (!ParsePort(value, &settings_.mta_sts_port)) {
      return absl::InvalidArgumentError("mta-sts-port= needs a port");
    }
    return absl::OkStatus();
  }
  if (key == "mta-sts-timeout") {
    int secs = 0;
    if (!ParseNumber(value, &secs) || secs < 1 || secs > 600) {
      return absl::InvalidArgumentError(
          "mta-sts-timeout= needs seconds (1..600)");
    }
    settings_.mta_sts_timeout_ms = secs * 1000;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(StrCat(
      "unknown setting '", key,
      "' (dane, mta-sts, mta-sts-ca, mta-sts-port, mta-sts-timeout, tlsrpt)"));
}

void TlsPolicies::ResolveFiles(const NodeDir& node) {
  std::string& ca = settings_.mta_sts_ca;
  if (!ca.empty() && ca[0] != '/') ca = node.etc_file(ca);
}

absl::StatusOr<TlsPolicies> TlsPolicies::Load(const std::string& path) {
  auto text = fs::ReadFile(path, kMaxTlsFile);
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

const TlsPolicy* TlsPolicies::Find(std::string_view destination,
                                   bool star_too) const {
  std::string d = ToLower(destination);
  // The exact name first, then the longest ".suffix", then "*".
  const TlsPolicy* best = nullptr;
  size_t best_len = 0;
  const TlsPolicy* star = nullptr;
  for (const auto& [pattern, pol] : rules_) {
    if (pattern == d) return &pol;
    if (pattern == "*") {
      if (star == nullptr) star = &pol;
    } else if (pattern[0] == '.' && d.size() > pattern.size() &&
               d.compare(d.size() - pattern.size(), pattern.size(), pattern) ==
                   0 &&
               pattern.size() > best_len) {
      best = &pol;
      best_len = pattern.size();
    }
  }
  if (best != nullptr) return best;
  return star_too ? star : nullptr;
}

TlsPolicy TlsPolicies::For(std::string_view destination) const {
  const TlsPolicy* p = Find(destination, true);
  return p != nullptr ? *p : TlsPolicy();  // opportunistic
}

std::optional<TlsPolicy> TlsPolicies::Explicit(
    std::string_view destination) const {
  const TlsPolicy* p = Find(destination, false);
  if (p == nullptr) return std::nullopt;
  return *p;
}

absl::StatusOr<Options> ParseFlags(const NodeDir& node,
                                   const std::vector<std::string>& args,
                                   bool lmtp) {
  Options o;
  o.lmtp = lmtp;
  if (lmtp) {
    o.port = 24;
    o.channel = "lmtp";
    o.address_only = true;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string_view what) -> absl::StatusOr<std::string> {
      if (i + 1 >= args.size() || args[i + 1].empty()) {
        return absl::InvalidArgumentError(StrCat(a, " needs ", what));
      }
      return args[++i];
    };
    if (a == "-x") {
      o.address_only = true;
    } else if (a == "-s" || a == "-8") {
      // ZMailer compatibility: progress reports, 8-bit use (automatic).
    } else if (a == "-F") {
      auto v = value("a relay host ([ip], [ip]:port, host or host:port)");
      if (!v.ok()) return v.status();
      if (auto d = ParseDestination(*v, 25); !d.ok()) {
        return absl::InvalidArgumentError(StrCat("-F: ", Message(d.status())));
      }
      o.relay = *v;
    } else if (a == "-p") {
      auto v = value("a port");
      if (!v.ok()) return v.status();
      if (!ParsePort(*v, &o.port)) {
        return absl::InvalidArgumentError("-p needs a port (1..65535)");
      }
    } else if (a == "-S") {
      auto v = value("the TLS policy file");
      if (!v.ok()) return v.status();
      o.tls_file = (*v)[0] == '/' ? *v : node.etc_file(*v);
    } else if (a == "-T") {
      auto v = value("seconds");
      if (!v.ok()) return v.status();
      int secs = 0;
      if (!ParseNumber(*v, &secs) || secs < 1 || secs > 86400) {
        return absl::InvalidArgumentError("-T needs seconds (1..86400)");
      }
      o.timeouts = smtpclient::Timeouts::All(secs * 1000);
    } else if (a == "-B") {
      auto v = value("a BDAT chunk size in bytes");
      if (!v.ok()) return v.status();
      size_t bytes = 0;
      if (!ParseNumber(*v, &bytes) || bytes < 512 || bytes > (64u << 20)) {
        return absl::InvalidArgumentError("-B needs bytes (512..67108864)");
      }
      o.bdat_chunk = bytes;
    } else if (a == "-H") {
      auto v = value("a HELO name");
      if (!v.ok()) return v.status();
      o.helo_name = *v;
    } else if (a == "-c") {
      auto v = value("a channel name");
      if (!v.ok()) return v.status();
      o.channel = *v;
    } else {
      return absl::InvalidArgumentError(StrCat("unknown argument '", a, "'"));
    }
  }
  if (o.helo_name.empty()) {
    auto mc = config::LoadMailConf(node);
    if (!mc.ok()) return mc.status();
    o.helo_name = mc->hostname;
  }
  if (o.helo_name.empty()) {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) == 0) o.helo_name = buf;
    if (o.helo_name.empty()) o.helo_name = "localhost";
  }
  return o;
}

absl::StatusOr<std::unique_ptr<ta::Handler>> MakeAgent(
    const ta::AgentStart& start, Logger& log, bool lmtp) {
  auto o = ParseFlags(start.node, start.args, lmtp);
  if (!o.ok()) return o.status();
  TlsPolicies tls;
  std::string tls_file = o->tls_file;
  if (tls_file.empty() && fs::Exists(start.node.etc_file("smtp-tls.conf"))) {
    tls_file = start.node.etc_file("smtp-tls.conf");
  }
  if (!tls_file.empty()) {
    auto t = TlsPolicies::Load(tls_file);
    if (!t.ok()) return t.status();
    tls = *std::move(t);
    tls.ResolveFiles(start.node);
  }
  std::unique_ptr<dns::Resolver> resolver;
  SecureTransport secure;
#ifdef ZM_HAVE_DNS
  if (o->relay.empty() && !lmtp) {
    auto ro = dns::OptionsForNode(start.node);
    if (!ro.ok()) return ro.status();
    auto r = dns::Resolver::Create(*ro);
    if (!r.ok()) return r.status();
    resolver = *std::move(r);
    if (!ro->trust_anchors.empty() && tls.settings().dane) {
      auto sr = dns::SecureResolver::Create(*ro);
      if (!sr.ok()) return sr.status();
      secure.dnssec = *std::move(sr);
    }
  }
#endif
  if (!lmtp) {
    secure.sts_cache_dir = start.node.db() + "/mta-sts";
    secure.tlsrpt_dir = start.node.log() + "/tlsrpt";
  }
  return std::make_unique<SmtpAgent>(*std::move(o), std::move(tls),
                                     std::move(resolver), log,
                                     std::move(secure));
}

}  // namespace zm::smtp
