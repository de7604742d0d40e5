#include "node/dns/resolver.h"

#include <arpa/inet.h>
#include <ares.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <random>
#include <unordered_map>

#include "node/common/strings.h"
#include "node/config/config_file.h"
#include "node/dns/dns_message.h"

namespace zm::dns {
namespace {

using internal::Record;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kMaxCacheTtl = 86400;

// What one name/type query produced: records (maybe none: NODATA) or
// NXDOMAIN. Temporary failures are never cached.
struct Answer {
  bool nxdomain = false;
  std::vector<Record> records;
};

struct CacheEntry {
  Answer answer;
  Clock::time_point expires;
};

// Accepts "host", "host." and lower-cases; refuses what cannot be a DNS
// name (empty, too long, empty labels, spaces and control characters).
absl::StatusOr<std::string> NormaliseName(std::string_view name) {
  std::string n = ToLower(name);
  if (!n.empty() && n.back() == '.') n.pop_back();
  if (n.empty() || n.size() > 253) {
    return absl::InvalidArgumentError(
        StrCat("invalid domain name '", name, "'"));
  }
  for (std::string_view label : Split(n, '.')) {
    if (label.empty() || label.size() > 63) {
      return absl::InvalidArgumentError(
          StrCat("invalid domain name '", name, "'"));
    }
    for (unsigned char c : label) {
      if (c <= ' ' || c == 0x7f || c == '\\' || c == '"') {
        return absl::InvalidArgumentError(
            StrCat("invalid domain name '", name, "'"));
      }
    }
  }
  return n;
}

// Where the callback of one query leaves its result.
struct Pending {
  bool done = false;
  int status = ARES_ETIMEOUT;
  std::string reply;
};

void OnReply(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
             int alen) {
  auto* p = static_cast<Pending*>(arg);
  p->done = true;
  p->status = status;
  if (abuf != nullptr && alen > 0) {
    p->reply.assign(reinterpret_cast<const char*>(abuf), alen);
  }
}

class AresResolver : public Resolver {
 public:
  AresResolver(const ResolverOptions& options, ares_channel base)
      : options_(options), base_(base), rng_(std::random_device{}()) {}

  ~AresResolver() override {
    for (ares_channel c : idle_) ares_destroy(c);
    ares_destroy(base_);
    ares_library_cleanup();
  }

  absl::StatusOr<std::vector<MxRecord>> LookupMx(
      std::string_view domain) override {
    auto a = Lookup(domain, internal::kTypeMx);
    if (!a.ok()) return a.status();
    std::vector<MxRecord> out;
    for (const Record& r : *a) out.push_back({r.n1, r.text});
    std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) {
      return x.preference < y.preference;
    });
    // Equal preferences in random order (RFC 5321 section 5.1).
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < out.size();) {
      size_t j = i;
      while (j < out.size() && out[j].preference == out[i].preference) ++j;
      std::shuffle(out.begin() + i, out.begin() + j, rng_);
      i = j;
    }
    return out;
  }

  absl::StatusOr<std::vector<std::string>> LookupA(
      std::string_view host) override {
    return Texts(host, internal::kTypeA);
  }
  absl::StatusOr<std::vector<std::string>> LookupAaaa(
      std::string_view host) override {
    return Texts(host, internal::kTypeAaaa);
  }
  absl::StatusOr<std::vector<std::string>> LookupPtr(
      std::string_view ip) override {
    auto name = ReverseName(ip);
    if (!name.ok()) return name.status();
    return Texts(*name, internal::kTypePtr);
  }
  absl::StatusOr<std::vector<std::string>> LookupTxt(
      std::string_view name) override {
    return Texts(name, internal::kTypeTxt);
  }
  absl::StatusOr<std::vector<SrvRecord>> LookupSrv(
      std::string_view name) override {
    auto a = Lookup(name, internal::kTypeSrv);
    if (!a.ok()) return a.status();
    std::vector<SrvRecord> out;
    for (const Record& r : *a) out.push_back({r.n1, r.n2, r.n3, r.text});
    std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) {
      return x.priority < y.priority;
    });
    return out;
  }

 private:
  absl::StatusOr<std::vector<std::string>> Texts(std::string_view name,
                                                 int type) {
    auto a = Lookup(name, type);
    if (!a.ok()) return a.status();
    std::vector<std::string> out;
    for (const Record& r : *a) out.push_back(r.text);
    return out;
  }

  // The records of `type` for `name`, from the cache or the servers.
  absl::StatusOr<std::vector<Record>> Lookup(std::string_view raw_name,
                                             int type) {
    auto name = NormaliseName(raw_name);
    if (!name.ok()) return name.status();
    std::string key = StrCat(type, " ", *name);
    if (auto hit = FromCache(key)) return Result(*hit, *name);

    auto answer = Query(*name, type);
    if (!answer.ok()) return answer.status();
    return Result(*answer, *name);
  }

  static absl::StatusOr<std::vector<Record>> Result(const Answer& a,
                                                    const std::string& name) {
    if (a.nxdomain) {
      return absl::NotFoundError(StrCat(name, ": no such domain (NXDOMAIN)"));
    }
    return a.records;
  }

  std::optional<Answer> FromCache(const std::string& key) {
    if (options_.cache_entries == 0) return std::nullopt;
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it == cache_.end()) return std::nullopt;
    if (it->second.expires <= Clock::now()) {
      cache_.erase(it);
      return std::nullopt;
    }
    return it->second.answer;
  }

  void ToCache(const std::string& key, const Answer& a, uint32_t ttl) {
    if (options_.cache_entries == 0 || ttl == 0) return;
    std::lock_guard lock(mu_);
    auto now = Clock::now();
    if (cache_.size() >= options_.cache_entries) {
      std::erase_if(cache_, [&](const auto& kv) {
        return kv.second.expires <= now;
      });
      while (cache_.size() >= options_.cache_entries) {
        cache_.erase(cache_.begin());
      }
    }
    cache_[key] = {a, now + std::chrono::seconds(std::min(ttl, kMaxCacheTtl))};
  }

  absl::StatusOr<Answer> Query(const std::string& name, int type) {
    ares_channel ch = TakeChannel();
    if (ch == nullptr) return absl::UnavailableError("resolver: no channel");
    Pending p;
    ares_query(ch, name.c_str(), 1 /* IN */, type, OnReply, &p);
    Run(ch, p);
    GiveBack(ch);

    std::string what = StrCat(name, ": ");
    switch (p.status) {
      case ARES_SUCCESS:
      case ARES_ENODATA:
      case ARES_ENOTFOUND:
        break;
      case ARES_EBADNAME:
        return absl::InvalidArgumentError(what + ares_strerror(p.status));
      default:
        return absl::UnavailableError(
            StrCat(what, "temporary DNS failure (", ares_strerror(p.status),
                   ")"));
    }
    Answer a;
    std::optional<uint32_t> ttl;
    if (!p.reply.empty()) {
      auto msg = internal::ParseMessage(
          reinterpret_cast<const unsigned char*>(p.reply.data()),
          static_cast<int>(p.reply.size()), type);
      if (!msg.ok()) {
        return absl::UnavailableError(StrCat(what, zm::Message(msg.status())));
      }
      a.records = std::move(msg->answers);
      for (const Record& r : a.records) {
        ttl = std::min(ttl.value_or(r.ttl), r.ttl);
      }
      if (a.records.empty()) ttl = msg->negative_ttl;
    }
    a.nxdomain = p.status == ARES_ENOTFOUND;
    if (a.nxdomain) a.records.clear();
    std::string key = StrCat(type, " ", name);
    ToCache(key, a, ttl.value_or(0));
    return a;
  }

  // Drives one channel until its query has answered. c-ares itself gives
  // up after timeout * attempts; the deadline is a second guard.
  void Run(ares_channel ch, Pending& p) {
    auto deadline =
        Clock::now() +
        std::chrono::milliseconds(options_.timeout_ms * options_.attempts *
                                      2 +
                                  1000);
    while (!p.done) {
      ares_socket_t socks[ARES_GETSOCK_MAXNUM];
      int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
      pollfd fds[ARES_GETSOCK_MAXNUM];
      int n = 0;
      for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short ev = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
        if (ev == 0) continue;
        fds[n++] = {socks[i], ev, 0};
      }
      timeval tv{};
      timeval* t = ares_timeout(ch, nullptr, &tv);
      int ms = t == nullptr ? 100 : static_cast<int>(t->tv_sec * 1000 +
                                                     t->tv_usec / 1000);
      if (Clock::now() >= deadline) {
        ares_cancel(ch);
        break;
      }
      int ready = poll(fds, n, std::max(ms, 1));
      if (ready <= 0) {
        ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        continue;
      }
      for (int i = 0; i < n; ++i) {
        if (fds[i].revents == 0) continue;
        bool rd = fds[i].revents & (POLLIN | POLLERR | POLLHUP);
        bool wr = fds[i].revents & POLLOUT;
        ares_process_fd(ch, rd ? fds[i].fd : ARES_SOCKET_BAD,
                        wr ? fds[i].fd : ARES_SOCKET_BAD);
      }
    }
  }

  ares_channel TakeChannel() {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      ares_channel c = idle_.back();
      idle_.pop_back();
      return c;
    }
    ares_channel c = nullptr;
    if (ares_dup(&c, base_) != ARES_SUCCESS) return nullptr;
    return c;
  }

  void GiveBack(ares_channel c) {
    std::lock_guard lock(mu_);
    idle_.push_back(c);
  }

  const ResolverOptions options_;
  ares_channel base_;
  std::mutex mu_;  // guards idle_, cache_, rng_
  std::vector<ares_channel> idle_;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::mt19937 rng_;
};

}  // namespace

absl::StatusOr<std::string> ReversedAddress(std::string_view ip) {
  std::string text(ip);
  unsigned char b[16];
  if (inet_pton(AF_INET, text.c_str(), b) == 1) {
    return fmt::format("{}.{}.{}.{}", b[3], b[2], b[1], b[0]);
  }
  if (inet_pton(AF_INET6, text.c_str(), b) == 1) {
    std::string out;
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
      if (!out.empty()) out += '.';
      out += kHex[b[i] & 0xf];
      out += '.';
      out += kHex[b[i] >> 4];
    }
    return out;
  }
  return absl::InvalidArgumentError(StrCat("invalid IP address '", ip, "'"));
}

absl::StatusOr<std::string> ReverseName(std::string_view ip) {
  auto labels = ReversedAddress(ip);
  if (!labels.ok()) return labels.status();
  return StrCat(*labels, ip.find(':') == std::string_view::npos
                             ? ".in-addr.arpa"
                             : ".ip6.arpa");
}

absl::StatusOr<std::unique_ptr<Resolver>> Resolver::Create(
    const ResolverOptions& options) {
  int rc = ares_library_init(ARES_LIB_INIT_ALL);
  if (rc != ARES_SUCCESS) {
    return absl::InternalError(StrCat("c-ares: ", ares_strerror(rc)));
  }
  ares_options opts{};
  opts.timeout = std::max(options.timeout_ms, 1);
  opts.tries = std::max(options.attempts, 1);
  opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  ares_channel base = nullptr;
  rc = ares_init_options(&base, &opts,
                         ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
  if (rc != ARES_SUCCESS) {
    ares_library_cleanup();
    return absl::InternalError(StrCat("c-ares init: ", ares_strerror(rc)));
  }
  if (!options.servers.empty()) {
    std::string csv;
    for (const std::string& s : options.servers) {
      if (!csv.empty()) csv += ',';
      csv += s;
    }
    rc = ares_set_servers_ports_csv(base, csv.c_str());
    if (rc != ARES_SUCCESS) {
      ares_destroy(base);
      ares_library_cleanup();
      return absl::InvalidArgumentError(
          StrCat("bad nameserver list '", csv, "': ", ares_strerror(rc)));
    }
  }
  return std::unique_ptr<Resolver>(new AresResolver(options, base));
}

absl::StatusOr<ResolverOptions> OptionsForNode(const NodeDir& node) {
  ResolverOptions options;
  std::string path = node.etc_file("resolver.conf");
  auto lines = config::ReadLines(path);
  if (!lines.ok()) {
    if (absl::IsNotFound(lines.status())) return options;
    return lines.status();
  }
  for (const config::Line& l : *lines) {
    auto words = SplitWhitespace(l.text);
    if (words.size() != 2) {
      return config::Error(path, l.number, "expected 'KEY VALUE'");
    }
    std::string_view key = words[0], value = words[1];
    if (key == "dnssec-trust-anchor") {
      std::string f(value);
      options.trust_anchors.push_back(f[0] == '/' ? f : node.etc_file(f));
    } else if (key == "dnssec-unblock-zone") {
      std::string zone = ToLower(StripTrailingDots(value));
      if (zone.empty()) {
        return config::Error(path, l.number, "dnssec-unblock-zone needs a name");
      }
      options.dnssec_unblock_zones.push_back(zone);
    } else if (key == "dnssec-server" && value == "recursive") {
      options.dnssec_recursive = true;
    } else if (key == "nameserver" || key == "dnssec-server") {
      std::vector<std::string>& list =
          key == "nameserver" ? options.servers : options.dnssec_servers;
      std::string v(value);
      // Check the address part: ADDR, ADDR:PORT, [ADDR]:PORT.
      std::string addr = v, port;
      if (!v.empty() && v[0] == '[') {
        size_t close = v.find(']');
        if (close == std::string::npos) {
          return config::Error(path, l.number, "missing ']' in nameserver");
        }
        addr = v.substr(1, close - 1);
        std::string rest = v.substr(close + 1);
        if (!rest.empty()) {
          if (rest[0] != ':') {
            return config::Error(path, l.number, "bad nameserver port");
          }
          port = rest.substr(1);
        }
      } else if (std::count(v.begin(), v.end(), ':') == 1) {
        size_t colon = v.find(':');
        addr = v.substr(0, colon);
        port = v.substr(colon + 1);
      }
      unsigned char buf[16];
      if (inet_pton(AF_INET, addr.c_str(), buf) != 1 &&
          inet_pton(AF_INET6, addr.c_str(), buf) != 1) {
        return config::Error(path, l.number,
                             StrCat("bad nameserver address '", addr, "'"));
      }
      int p = 0;
      if (!port.empty() && (!ParseNumber(port, &p) || p < 1 || p > 65535)) {
        return config::Error(path, l.number,
                             StrCat("bad nameserver port '", port, "'"));
      }
      // c-ares wants IPv6 with a port in brackets.
      if (port.empty() || v[0] == '[' || addr.find(':') == std::string::npos) {
        list.push_back(v);
      } else {
        list.push_back(StrCat("[", addr, "]:", port));
      }
    } else if (key == "timeout" || key == "attempts" || key == "cache") {
      int64_t n = 0;
      if (!ParseNumber(value, &n) || n < 0 || n > 1000000 ||
          (key != "cache" && n == 0)) {
        return config::Error(path, l.number,
                             StrCat("bad number '", value, "' for ", key));
      }
      if (key == "timeout") options.timeout_ms = static_cast<int>(n);
      if (key == "attempts") options.attempts = static_cast<int>(n);
      if (key == "cache") options.cache_entries = static_cast<size_t>(n);
    } else {
      return config::Error(path, l.number, StrCat("unknown key '", key, "'"));
    }
  }
  return options;
}

}  // namespace zm::dns
