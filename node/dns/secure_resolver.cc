// SecureResolver: libunbound with the node's trust anchors, asked
// asynchronously (a resolver thread) so that every query has a deadline.
#include "node/dns/secure_resolver.h"

#include <arpa/inet.h>
#include <poll.h>
#include <unbound.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "node/common/strings.h"
#include "node/dns/dns_message.h"

namespace zm::dns {
namespace {

// "127.0.0.1:5353" / "[::1]:53" / "192.0.2.1" -> unbound's "ADDR@PORT".
std::string UnboundAddr(const std::string& server) {
  std::string addr = server, port;
  if (!server.empty() && server[0] == '[') {
    size_t close = server.find(']');
    addr = server.substr(1, close - 1);
    if (close + 1 < server.size()) port = server.substr(close + 2);
  } else if (std::count(server.begin(), server.end(), ':') == 1) {
    addr = server.substr(0, server.find(':'));
    port = server.substr(server.find(':') + 1);
  }
  return port.empty() ? addr : StrCat(addr, "@", port);
}

absl::Status UbError(std::string_view what, int rc) {
  return absl::InternalError(StrCat("libunbound ", what, ": ", ub_strerror(rc)));
}

struct Pending {
  bool done = false;
  int err = 0;
  ub_result* result = nullptr;
};

void OnResult(void* arg, int err, ub_result* result) {
  auto* p = static_cast<Pending*>(arg);
  p->done = true;
  p->err = err;
  p->result = result;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SecureResolver>> SecureResolver::Create(
    const ResolverOptions& options) {
  if (options.trust_anchors.empty()) {
    return absl::InvalidArgumentError("DNSSEC needs a trust anchor");
  }
  ub_ctx* ctx = ub_ctx_create();
  if (ctx == nullptr) return absl::InternalError("ub_ctx_create failed");
  std::unique_ptr<SecureResolver> r(
      new SecureResolver(ctx, std::max(options.timeout_ms, 1) *
                                  std::max(options.attempts, 1)));
  auto set = [&](const char* opt, const char* value) -> absl::Status {
    int rc = ub_ctx_set_option(ctx, opt, value);
    return rc == 0 ? absl::OkStatus() : UbError(opt, rc);
  };
  // Test servers and local resolvers listen on loopback addresses.
  if (auto s = set("do-not-query-localhost:", "no"); !s.ok()) return s;
  if (auto s = set("val-permissive-mode:", "no"); !s.ok()) return s;
  int rc = ub_ctx_async(ctx, 1);  // a thread, not a forked process
  if (rc != 0) return UbError("async", rc);
  for (const std::string& f : options.trust_anchors) {
    rc = ub_ctx_add_ta_file(ctx, f.c_str());
    if (rc != 0) {
      return absl::InvalidArgumentError(
          StrCat("trust anchor ", f, ": ", ub_strerror(rc)));
    }
  }
  if (!options.dnssec_recursive) {
    const auto& servers = options.dnssec_servers.empty()
                              ? options.servers
                              : options.dnssec_servers;
    if (servers.empty()) {
      rc = ub_ctx_resolvconf(ctx, nullptr);
      if (rc != 0) return UbError("/etc/resolv.conf", rc);
    }
    for (const std::string& s : servers) {
      rc = ub_ctx_set_fwd(ctx, UnboundAddr(s).c_str());
      if (rc != 0) return UbError(StrCat("server ", s), rc);
    }
  }
  // Last: it finalizes the context. unbound answers the names RFC 6761
  // reserves (test., invalid., ...) itself with NXDOMAIN; a test's DNS
  // server serves such a zone, and resolver.conf says so.
  for (const std::string& zone : options.dnssec_unblock_zones) {
    std::string z = StrCat(zone, ".");
    rc = ub_ctx_zone_remove(ctx, z.c_str());
    if (rc != 0) return UbError(StrCat("local zone ", z), rc);
  }
  return r;
}

SecureResolver::~SecureResolver() { ub_ctx_delete(ctx_); }

absl::StatusOr<Answer> SecureResolver::Lookup(std::string_view name,
                                              int rrtype) {
  std::string q(name);
  Pending p;
  int id = 0;
  int rc = ub_resolve_async(ctx_, q.c_str(), rrtype, 1 /* IN */, &p, OnResult,
                            &id);
  if (rc != 0) return UbError("resolve", rc);
  int64_t deadline = NowMs() + timeout_ms_;
  while (!p.done) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      ub_cancel(ctx_, id);
      return absl::UnavailableError(
          StrCat("DNSSEC lookup of ", name, ": timeout"));
    }
    pollfd pfd{ub_fd(ctx_), POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left));
    if (n < 0 && errno != EINTR) {
      ub_cancel(ctx_, id);
      return absl::InternalError("poll on the libunbound descriptor");
    }
    if (n > 0) {
      rc = ub_process(ctx_);
      if (rc != 0) return UbError("process", rc);
    }
  }
  if (p.err != 0) {
    return absl::UnavailableError(
        StrCat("DNSSEC lookup of ", name, ": ", ub_strerror(p.err)));
  }
  std::unique_ptr<ub_result, void (*)(ub_result*)> res(p.result,
                                                       ub_resolve_free);
  Answer a;
  if (res->bogus) {
    a.bogus = true;
    a.why_bogus = res->why_bogus != nullptr ? res->why_bogus
                                            : "DNSSEC validation failed";
    return a;
  }
  if (res->rcode != 0 && res->rcode != 3) {
    return absl::UnavailableError(StrCat("DNSSEC lookup of ", name,
                                         ": server failure (rcode ",
                                         res->rcode, ")"));
  }
  a.secure = res->secure != 0;
  a.nxdomain = res->nxdomain != 0;
  if (res->canonname != nullptr) {
    std::string c = ToLower(StripTrailingDots(res->canonname));
    std::string q = ToLower(StripTrailingDots(name));
    if (c != q) a.canonical = std::move(c);
  }
  for (int i = 0; res->data != nullptr && res->data[i] != nullptr; ++i) {
    a.rdata.emplace_back(res->data[i], static_cast<size_t>(res->len[i]));
  }
  if ((rrtype == kRrMx || rrtype == kRrA || rrtype == kRrAaaa) &&
      res->answer_packet != nullptr) {
    auto msg = internal::ParseMessage(
        static_cast<const unsigned char*>(res->answer_packet), res->answer_len,
        rrtype);
    if (!msg.ok()) return msg.status();
    for (const auto& rec : msg->answers) {
      if (rrtype == kRrMx) {
        a.mx.push_back(MxRecord{rec.n1, rec.text});
      } else {
        a.addresses.push_back(rec.text);
      }
    }
    std::stable_sort(a.mx.begin(), a.mx.end(),
                     [](const MxRecord& x, const MxRecord& y) {
                       return x.preference < y.preference;
                     });
  }
  return a;
}

absl::StatusOr<Answer> SecureResolver::LookupAddresses(std::string_view host) {
  auto a = Lookup(host, kRrA);
  if (!a.ok()) return a;
  auto aaaa = Lookup(host, kRrAaaa);
  if (!aaaa.ok()) return aaaa;
  if (a->bogus) return a;
  if (aaaa->bogus) return aaaa;
  a->secure = a->secure && aaaa->secure;
  if (a->canonical.empty()) a->canonical = aaaa->canonical;
  a->nxdomain = a->nxdomain && aaaa->nxdomain;
  a->addresses.insert(a->addresses.end(), aaaa->addresses.begin(),
                      aaaa->addresses.end());
  a->rdata.insert(a->rdata.end(), aaaa->rdata.begin(), aaaa->rdata.end());
  return a;
}

}  // namespace zm::dns
