// SmtpAgent: finding the servers, connecting, TLS, and the results.
#include <netdb.h>
#include <sys/socket.h>

#include <chrono>

#include "node/common/strings.h"
#include "node/ta/smtp/smtp.h"

namespace zm::smtp {
namespace {

constexpr size_t kMaxServers = 10;

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t)
      .count();
}

ta::Result FromOutcome(const smtpclient::Outcome& o, std::string relay) {
  if (o.klass == 2) return ta::Result::Ok(o.dsn, std::move(relay), o.diag);
  if (o.klass == 5) return ta::Result::Error(o.dsn, std::move(relay), o.diag);
  return ta::Result::Deferred(o.dsn, std::move(relay), o.diag);
}

}  // namespace

std::string RelayName(const Server& s) {
  if (s.port == 0) return s.name;  // a UNIX socket
  return s.name == s.ip ? StrCat("[", s.ip, "]:", s.port)
                        : StrCat(s.name, "[", s.ip, "]:", s.port);
}

SmtpAgent::SmtpAgent(Options options, TlsPolicies tls,
                     std::unique_ptr<dns::Resolver> resolver, Logger& log,
                     SecureTransport secure)
    : o_(std::move(options)),
      tls_(std::move(tls)),
      resolver_(std::move(resolver)),
      log_(log),
      secure_(std::move(secure)) {}

SmtpAgent::~SmtpAgent() {
  if (client_) client_->Quit();
}

ta::Result SmtpAgent::Deliver(const ta::Delivery& d) {
  std::vector<const mail::ControlRecipient*> one{&d.recipient};
  return DeliverJob(d.queue_id, d.host, d.control, one, d.message)[0];
}

absl::StatusOr<std::vector<std::string>> SmtpAgent::Addresses(
    const std::string& name) {
  std::vector<std::string> out;
  if (resolver_) {
    auto a = resolver_->LookupA(name);
    auto aaaa = resolver_->LookupAaaa(name);
    if (a.ok()) out.insert(out.end(), a->begin(), a->end());
    if (aaaa.ok()) out.insert(out.end(), aaaa->begin(), aaaa->end());
    if (!out.empty()) return out;
    if (!a.ok() && absl::IsUnavailable(a.status())) return a.status();
    if (!aaaa.ok() && absl::IsUnavailable(aaaa.status())) return aaaa.status();
    if (!a.ok()) return a.status();
    return absl::NotFoundError(StrCat("no address for ", name));
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    std::string why = StrCat(name, ": ", ::gai_strerror(rc));
    if (rc == EAI_AGAIN || rc == EAI_SYSTEM || rc == EAI_MEMORY) {
      return absl::UnavailableError(why);
    }
    return absl::NotFoundError(why);
  }
  for (addrinfo* p = res; p != nullptr; p = p->ai_next) {
    char buf[NI_MAXHOST];
    if (::getnameinfo(p->ai_addr, p->ai_addrlen, buf, sizeof buf, nullptr, 0,
                      NI_NUMERICHOST) == 0) {
      std::string ip = buf;
      bool dup = false;
      for (const auto& x : out) dup = dup || x == ip;
      if (!dup) out.push_back(ip);
    }
  }
  ::freeaddrinfo(res);
  if (out.empty()) return absl::NotFoundError(StrCat("no address for ", name));
  return out;
}

absl::StatusOr<std::vector<Server>> SmtpAgent::Servers(const Destination& dest,
                                                       ta::Result* failure,
                                                       bool* mx_secure) {
  *mx_secure = false;
  std::vector<Server> out;
  if (dest.literal) {
    out.push_back(
        Server{dest.name, dest.name, dest.unix_socket ? 0 : dest.port, {}});
    return out;
  }
  auto fail = [&](bool permanent, std::string dsn, std::string diag) {
    *failure = permanent ? ta::Result::Error(dsn, "none", diag)
                         : ta::Result::Deferred(dsn, "none", diag);
    return absl::NotFoundError(diag);
  };
  std::vector<std::string> hosts;
  bool use_mx = resolver_ && !dest.no_mx && !o_.address_only;
  if (use_mx && secure_.dnssec && tls_.settings().dane) {
    // RFC 7672 section 2.2.1: DANE only behind a validated MX answer; a
    // bogus one is a lookup failure.
    auto smx = secure_.dnssec->Lookup(dest.name, dns::kRrMx);
    if (smx.ok() && smx->bogus) {
      return fail(false, "4.7.5",
                  StrCat("smtp; DANE: the MX records of ", dest.name,
                         " fail DNSSEC validation: ", smx->why_bogus));
    }
    *mx_secure = smx.ok() && smx->secure;
    if (*mx_secure && !smx->mx.empty()) {
      // The validated answer is the one to use.
      if (smx->mx.size() == 1 && smx->mx[0].host.empty()) {
        return fail(
            true, "5.1.10",
            StrCat("smtp; domain ", dest.name, " accepts no mail (null MX)"));
      }
      for (const auto& r : smx->mx) hosts.push_back(r.host);
      use_mx = false;
    }
  }
  if (use_mx) {
    auto mx = resolver_->LookupMx(dest.name);
    if (!mx.ok()) {
      if (absl::IsUnavailable(mx.status())) {
        return fail(false, "4.4.3",
                    StrCat("smtp; MX lookup of ", dest.name,
                           " failed temporarily: ", Message(mx.status())));
      }
      return fail(true, "5.1.2",
                  StrCat("smtp; host ", dest.name, " not found (",
                         Message(mx.status()), ")"));
    }
    if (mx->size() == 1 && (*mx)[0].host.empty()) {
      return fail(
          true, "5.1.10",
          StrCat("smtp; domain ", dest.name, " accepts no mail (null MX)"));
    }
    for (const auto& r : *mx) {
      if (!r.host.empty()) hosts.push_back(r.host);
    }
  }
  if (hosts.empty()) hosts.push_back(dest.name);  // the implicit MX
  bool temporary = false;
  std::string last;
  for (const auto& h : hosts) {
    auto addrs = Addresses(h);
    if (!addrs.ok()) {
      temporary = temporary || absl::IsUnavailable(addrs.status());
      last = Message(addrs.status());
      continue;
    }
    for (const auto& ip : *addrs) {
      if (out.size() < kMaxServers) out.push_back(Server{h, ip, dest.port, {}});
    }
  }
  if (out.empty()) {
    if (temporary || hosts.size() > 1 || hosts[0] != dest.name) {
      return fail(false, "4.4.3",
                  StrCat("smtp; no address for the servers of ", dest.name,
                         ": ", last));
    }
    return fail(true, "5.1.2",
                StrCat("smtp; host ", dest.name, " not found (", last, ")"));
  }
  return out;
}

std::vector<ta::Result> SmtpAgent::DeliverJob(
    const std::string& queue_id, const std::string& host,
    const mail::ControlFile& control,
    const std::vector<const mail::ControlRecipient*>& rcpts,
    std::string_view message) {
  auto start = std::chrono::steady_clock::now();
  const char* tag = o_.lmtp ? "lmtp; " : "smtp; ";
  const std::string& target = o_.relay.empty() ? host : o_.relay;
  auto all = [&](const ta::Result& r) {
    return std::vector<ta::Result>(rcpts.size(), r);
  };
  auto dest = ParseDestination(target, o_.port);
  if (!dest.ok()) {
    return all(ta::Result::Error(
        "5.1.2", "none",
        StrCat(tag, "bad destination: ", Message(dest.status()))));
  }

  smtpclient::Envelope env;
  env.sender = control.sender;
  env.ret = control.ret;
  env.envid = control.envid;
  for (const auto* r : rcpts) {
    // Without an ORCPT of its own, the recipient's original address is
    // the one a DSN should name (as Postfix does).
    env.recipients.push_back(
        {r->user, r->notify, r->orcpt.empty() ? r->orig : r->orcpt});
  }

  // The connection of the previous job, if it goes to the same place.
  bool reused = client_ && client_dest_ == target && client_->Reset();
  if (client_ && !reused) {
    client_->Quit();
    client_.reset();
  }
  std::optional<std::vector<Server>> servers;
  size_t next = 0;  // the next server to try
  double connect_s = 0;
  while (true) {
    if (!client_) {
      if (!servers) {
        ta::Result failure;
        bool mx_secure = false;
        auto found = Servers(*dest, &failure, &mx_secure);
        if (!found.ok()) {
          log_.Warning(queue_id, failure.diag);
          failure.connect_s = Since(start);
          // A DNS failure is the destination's, not the message's.
          failure.unreachable = failure.status == ta::Result::Status::kDeferred;
          return all(failure);
        }
        DecideTls(queue_id, *dest, mx_secure, &*found);
        servers = std::move(*found);
      }
      smtpclient::Outcome last;
      last.diag = StrCat(tag, "no server left to try");
      for (; next < servers->size() && !client_; ++next) {
        const Server& s = (*servers)[next];
        auto f = Connect(queue_id, *dest, s);
        if (!f) {
          client_dest_ = target;
          client_relay_ = RelayName(s);
          client_->set_bdat_chunk(o_.bdat_chunk);
          break;
        }
        last = *f;
        log_.Warning(queue_id, StrCat("no delivery through ", RelayName(s),
                                      ": ", last.diag));
      }
      if (!client_) {
        // A server that refused us permanently still is only one server:
        // the destination may work later.
        if (last.klass != 4) last.klass = 4;
        if (last.dsn.empty() || last.dsn[0] != '4') last.dsn = "4.4.1";
        ta::Result r = FromOutcome(last, "none");
        r.connect_s = Since(start);
        r.unreachable = true;
        return all(r);
      }
      ++next;  // past the one now connected
    }
    connect_s = Since(start);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<smtpclient::Outcome> got = client_->Send(env, message);
    double xfer_s = Since(t0);
    bool retry = client_->server_failed() &&
                 (reused || !servers || next < servers->size());
    if (retry) {
      // Nothing went to anybody and the server is the reason (a stale
      // kept connection, MAIL FROM 4xx, 421): a fresh connection for a
      // kept one, else the next server.
      log_.Warning(queue_id,
                   StrCat("no delivery through ", client_relay_, ": ",
                          got.empty() ? "" : got[0].diag,
                          reused ? "; a new connection" : "; the next server"));
      client_->Quit();
      client_.reset();
      if (reused) next = 0;
      reused = false;
      continue;
    }
    std::vector<ta::Result> out;
    out.reserve(got.size());
    for (const auto& o : got) {
      ta::Result r = FromOutcome(o, client_relay_);
      r.connect_s = connect_s;
      r.xfer_s = xfer_s;
      out.push_back(std::move(r));
    }
    if (!client_->usable()) {
      client_->Quit();
      client_.reset();
    }
    return out;
  }
}

}  // namespace zm::smtp
