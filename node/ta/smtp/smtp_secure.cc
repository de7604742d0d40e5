// SmtpAgent's secure transport: which TLS policy governs each server
// (an explicit smtp-tls.conf rule, DANE, MTA-STS, the default), the
// connection made as it says, and TLS reporting data.
#include <ctime>
#include <map>

#include "node/common/strings.h"
#include "node/ta/smtp/smtp.h"
#include "node/tlspolicy/dane.h"

namespace zm::smtp {
namespace {

using Kind = TlsDecision::Kind;

std::string_view LevelName(TlsPolicy::Level l) {
  switch (l) {
    case TlsPolicy::Level::kNone:
      return "none";
    case TlsPolicy::Level::kEncrypt:
      return "encrypt";
    case TlsPolicy::Level::kVerify:
      return "verify";
    case TlsPolicy::Level::kMay:
      break;
  }
  return "may";
}

// RFC 8460 section 4.3 result types for a failed handshake.
std::string ResultType(std::string_view diag) {
  if (diag.find("hostname mismatch") != std::string_view::npos) {
    return "certificate-host-mismatch";
  }
  if (diag.find("expired") != std::string_view::npos) {
    return "certificate-expired";
  }
  if (diag.find("certificate verification failed") != std::string_view::npos) {
    return "certificate-not-trusted";
  }
  return "validation-failure";
}

// "smtp; TLS handshake: x" -> "TLS handshake: x".
std::string_view Untagged(std::string_view diag) {
  if (!ConsumePrefix(&diag, "smtp; ")) ConsumePrefix(&diag, "lmtp; ");
  return diag;
}

}  // namespace

void SmtpAgent::Report(tlspolicy::TlsResult r) {
  if (secure_.tlsrpt_dir.empty() || !tls_.settings().tlsrpt) return;
  tlspolicy::TlsrptLog rpt(secure_.tlsrpt_dir);
  if (auto s = rpt.Record(r, static_cast<int64_t>(::time(nullptr)));
      !s.ok()) {
    log_.Warning("", StrCat("TLS reporting data: ", Message(s)));
  }
}

void SmtpAgent::Report(const Destination& dest, const Server& s,
                       std::string_view result, std::string_view detail) {
  // Reports are about the receiving domains, not relays or literals.
  if (dest.literal || !o_.relay.empty() || o_.lmtp) return;
  tlspolicy::TlsResult r;
  r.policy_domain = dest.name;
  switch (s.tls.kind) {
    case Kind::kDane:
      r.type = tlspolicy::PolicyType::kTlsa;
      for (const auto& t : s.tls.tlsa) r.policy.push_back(t.Text());
      break;
    case Kind::kStsEnforce:
    case Kind::kStsTesting:
      r.type = tlspolicy::PolicyType::kSts;
      r.policy = s.tls.sts.Lines();
      break;
    case Kind::kStatic:
      r.type = tlspolicy::PolicyType::kNoPolicy;
      break;
  }
  r.mx_host = s.name;
  r.ip = s.ip;
  r.result = std::string(result);
  r.detail = std::string(detail);
  Report(std::move(r));
}

std::optional<tlspolicy::StsPolicy> SmtpAgent::StsPolicyFor(
    const std::string& queue_id, const std::string& domain) {
  if (!resolver_) return std::nullopt;
  int64_t now = static_cast<int64_t>(::time(nullptr));
  std::optional<tlspolicy::StsPolicy> cached;
  if (!secure_.sts_cache_dir.empty()) {
    cached = tlspolicy::StsCache(secure_.sts_cache_dir).Get(domain);
  }
  if (cached && cached->Expired(now)) cached.reset();
  std::string id = StsId(queue_id, domain);
  // RFC 8461 section 5.1: without a record a cached policy still holds;
  // with the cached id it is current.
  if (id.empty()) return cached;
  if (cached) {
    // A new id, or a policy half-way to its expiry: fetched again in the
    // background (section 10.2); this delivery goes by the cached one.
    if (tlspolicy::NeedsRefresh(*cached, id, now)) {
      if (!secure_.sts_refresher) {
        secure_.sts_refresher = std::make_unique<tlspolicy::Refresher>(
            [this](const std::string& d) {
              std::string fresh = StsId("", d);
              return !fresh.empty() &&
                     FetchSts("", d, fresh, true, false).has_value();
            });
      }
      if (secure_.sts_refresher->Request(domain)) {
        log_.Info(queue_id, StrCat("MTA-STS policy of ", domain,
                                   ": refreshing in the background (cached id ",
                                   cached->id, ", now ", id, ")"));
      }
    }
    return cached;
  }
  return FetchSts(queue_id, domain, id, false, true);
}

std::string SmtpAgent::StsId(const std::string& queue_id,
                             const std::string& domain) {
  auto txt = resolver_->LookupTxt(StrCat("_mta-sts.", domain));
  if (!txt.ok()) return "";
  auto rec = tlspolicy::ParseStsRecords(*txt);
  if (rec.ok()) return *rec;
  if (!absl::IsNotFound(rec.status())) {
    log_.Warning(queue_id, StrCat("MTA-STS record of ", domain, ": ",
                                  Message(rec.status())));
  }
  return "";
}

std::optional<tlspolicy::StsPolicy> SmtpAgent::FetchSts(
    const std::string& queue_id, const std::string& domain,
    const std::string& id, bool refresh, bool report_failure) {
  auto report = [&](std::string_view result, std::string_view detail) {
    if (!report_failure) return;
    tlspolicy::TlsResult r;
    r.policy_domain = domain;
    r.type = tlspolicy::PolicyType::kSts;
    r.result = std::string(result);
    r.detail = std::string(detail);
    Report(std::move(r));
  };
  const SecureSettings& set = tls_.settings();
  tlspolicy::FetchOptions fo;
  fo.ca_file = set.mta_sts_ca;
  fo.port = set.mta_sts_port;
  fo.timeout_ms = set.mta_sts_timeout_ms;
  std::string host = StrCat("mta-sts.", domain);
  auto ips = Addresses(host);
  absl::StatusOr<std::string> body =
      ips.ok() ? tlspolicy::FetchStsPolicy(domain, *ips, fo)
               : absl::StatusOr<std::string>(ips.status());
  std::string_view kept = refresh ? "; the cached one holds" : "";
  if (!body.ok()) {
    std::string why = Message(body.status());
    log_.Warning(queue_id, StrCat("MTA-STS policy of ", domain,
                                  " not fetched (", why, ")", kept));
    report("sts-policy-fetch-error", why);
    return std::nullopt;
  }
  auto pol = tlspolicy::ParseStsPolicy(*body);
  if (!pol.ok()) {
    std::string why = Message(pol.status());
    log_.Warning(queue_id, StrCat("MTA-STS policy of ", domain,
                                  " is invalid (", why, ")", kept));
    report("sts-policy-invalid", why);
    return std::nullopt;
  }
  pol->id = id;
  pol->fetched = static_cast<int64_t>(::time(nullptr));
  log_.Info(queue_id, StrCat("MTA-STS policy of ", domain,
                             refresh ? " refreshed" : " fetched", ": mode ",
                             tlspolicy::StsModeName(pol->mode), ", id ", id,
                             ", max_age ", pol->max_age));
  if (!secure_.sts_cache_dir.empty()) {
    tlspolicy::StsCache cache(secure_.sts_cache_dir);
    if (auto s = cache.Put(domain, *pol); !s.ok()) {
      log_.Warning(queue_id, StrCat("MTA-STS cache: ", Message(s)));
    }
  }
  return *pol;
}

void SmtpAgent::DecideTls(const std::string& queue_id, const Destination& dest,
                          bool mx_secure, std::vector<Server>* servers) {
  const SecureSettings& set = tls_.settings();
  std::string dname = dest.literal ? StrCat("[", dest.name, "]") : dest.name;
  auto static_policy = [&](Server& s, const TlsPolicy& p, bool explicit_rule) {
    s.tls.kind = Kind::kStatic;
    s.tls.policy = p;
    if (explicit_rule) {
      s.tls.label = StrCat("smtp-tls.conf policy ", LevelName(p.level),
                           " for ", dname);
    } else if (p.level == TlsPolicy::Level::kMay) {
      s.tls.label = "opportunistic TLS";
    } else {
      s.tls.label =
          StrCat("smtp-tls.conf default policy ", LevelName(p.level));
    }
  };
  std::optional<TlsPolicy> expl = tls_.Explicit(dname);
  // An explicit rule, a literal, a relay (-F) or LMTP: the static policy.
  if (expl || dest.literal || !o_.relay.empty() || o_.lmtp) {
    TlsPolicy p = tls_.For(dname);
    for (Server& s : *servers) static_policy(s, p, expl.has_value());
    return;
  }
  TlsPolicy fallback = tls_.For(dname);
  bool dane = secure_.dnssec && set.dane &&
              (mx_secure || dest.no_mx || o_.address_only);
  bool sts_applies = set.mta_sts && !dest.no_mx && !o_.address_only;
  std::optional<tlspolicy::StsPolicy> sts;
  bool sts_looked = false;
  // Per host name: servers share the answers of their MX host.
  std::map<std::string, TlsDecision> dane_by_host;
  for (Server& s : *servers) {
    if (dane) {
      auto it = dane_by_host.find(s.name);
      if (it == dane_by_host.end()) {
        TlsDecision d;
        auto addr = secure_.dnssec->LookupAddresses(s.name);
        if (addr.ok() && addr->bogus) {
          d.refuse = StrCat("DANE: the addresses of ", s.name,
                            " fail DNSSEC validation: ", addr->why_bogus);
        } else if (addr.ok() && addr->secure) {
          // RFC 7672 section 2.2.2: TLSA records only behind secure
          // addresses. An alias (CNAME) whose chain validated has its
          // records at the expanded name first, then at the name itself.
          std::vector<std::string> bases;
          if (!addr->canonical.empty()) bases.push_back(addr->canonical);
          bases.push_back(s.name);
          for (const std::string& base : bases) {
            std::string name = tlspolicy::TlsaName(base, s.port);
            auto t = secure_.dnssec->Lookup(name, dns::kRrTlsa);
            if (!t.ok()) {
              d.refuse = StrCat("DANE: TLSA lookup of ", name,
                                " failed: ", Message(t.status()));
            } else if (t->bogus) {
              d.refuse = StrCat("DANE: the TLSA records of ", name,
                                " fail DNSSEC validation: ", t->why_bogus);
            } else if (!t->secure || t->rdata.empty()) {
              continue;  // none here: the next name
            } else {
              d.tlsa = tlspolicy::UsableTlsa(t->rdata);
              d.tlsa_name = name;
              if (d.tlsa.empty()) {
                log_.Info(queue_id, StrCat("DANE: no usable TLSA record at ",
                                           name, "; not authenticated"));
              } else {
                d.kind = Kind::kDane;
                d.label = StrCat("DANE (", name, ")");
              }
            }
            break;
          }
        }
        it = dane_by_host.emplace(s.name, std::move(d)).first;
      }
      if (!it->second.refuse.empty() || it->second.kind == Kind::kDane) {
        s.tls = it->second;
        if (!s.tls.refuse.empty()) {
          tlspolicy::TlsResult r;
          r.policy_domain = dest.name;
          r.type = tlspolicy::PolicyType::kTlsa;
          r.mx_host = s.name;
          r.ip = s.ip;
          r.result = "dnssec-invalid";
          r.detail = s.tls.refuse;
          Report(std::move(r));
        }
        continue;
      }
    }
    if (sts_applies) {
      if (!sts_looked) {
        sts = StsPolicyFor(queue_id, dest.name);
        sts_looked = true;
      }
      if (sts && sts->mode != tlspolicy::StsMode::kNone) {
        s.tls.kind = sts->mode == tlspolicy::StsMode::kEnforce
                         ? Kind::kStsEnforce
                         : Kind::kStsTesting;
        s.tls.sts = *sts;
        s.tls.sts_mx_listed = tlspolicy::StsMxMatches(sts->mx, s.name);
        s.tls.label = StrCat("MTA-STS ", tlspolicy::StsModeName(sts->mode),
                             " policy of ", dest.name);
        continue;
      }
    }
    static_policy(s, fallback, false);
  }
}

std::optional<smtpclient::Outcome> SmtpAgent::Connect(
    const std::string& queue_id, const Destination& dest, const Server& s) {
  const char* tag = o_.lmtp ? "lmtp; " : "smtp; ";
  std::string relay = RelayName(s);
  const TlsDecision& d = s.tls;
  if (!d.refuse.empty()) {
    return smtpclient::Outcome{4, "4.7.5",
                               StrCat(tag, d.refuse, " [", relay, "]")};
  }
  bool sts = d.kind == Kind::kStsEnforce || d.kind == Kind::kStsTesting;
  if (sts && !d.sts_mx_listed) {
    std::string why =
        StrCat(d.label, ": MX host ", s.name, " is not listed in the policy");
    Report(dest, s, "validation-failure", why);
    if (d.kind == Kind::kStsEnforce) {
      return smtpclient::Outcome{4, "4.7.5",
                                 StrCat(tag, why, " [", relay, "]")};
    }
    log_.Warning(queue_id, StrCat(why, " (testing: delivering anyway)"));
  }
  bool is_static = d.kind == Kind::kStatic;
  TlsPolicy::Level level = d.policy.level;
  bool required = d.kind == Kind::kDane || d.kind == Kind::kStsEnforce ||
                  (is_static && (level == TlsPolicy::Level::kEncrypt ||
                                 level == TlsPolicy::Level::kVerify));
  bool want = !(is_static && level == TlsPolicy::Level::kNone);
  const SecureSettings& set = tls_.settings();
  smtpclient::Outcome last;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool want_tls = want && attempt == 0;
    auto conn = s.port == 0 ? smtpclient::Connection::ConnectUnix(
                                  s.ip, o_.timeouts.connect_ms)
                            : smtpclient::Connection::ConnectTcp(
                                  s.ip, s.port, o_.timeouts.connect_ms);
    if (!conn.ok()) {
      return smtpclient::Outcome{4, "4.4.1",
                                 StrCat(tag, Message(conn.status()))};
    }
    auto c = std::make_unique<smtpclient::Client>(*std::move(conn),
                                                  o_.timeouts, o_.lmtp);
    if (auto f = c->Open(o_.helo_name)) {
      f->diag = StrCat(f->diag, " [", relay, "]");
      return f;
    }
    if (want_tls && c->caps().starttls) {
      smtpclient::TlsOptions t;
      if (s.name != s.ip) t.sni = s.name;
      if (d.kind == Kind::kDane) {
        t.dane = d.tlsa;
        t.dane_names = {s.name, dest.name};
        // The expanded name of an alias whose records were used is the
        // TLSA base domain, first: "_25._tcp.NAME" -> NAME.
        std::string_view base = d.tlsa_name;
        for (int label = 0; label < 2 && !base.empty(); ++label) {
          auto dot = base.find('.');
          base = dot == base.npos ? "" : base.substr(dot + 1);
        }
        if (!base.empty() && base != s.name) {
          t.dane_names.insert(t.dane_names.begin(), std::string(base));
        }
      } else if (sts) {
        t.verify = d.kind == Kind::kStsEnforce;
        t.check_only = d.kind == Kind::kStsTesting;
        t.ca_file = set.mta_sts_ca;
        t.verify_name = s.name;
      } else {
        t.verify = level == TlsPolicy::Level::kVerify;
        t.ca_file = d.policy.ca_file;
        t.verify_name =
            d.policy.verify_name.empty() ? s.name : d.policy.verify_name;
      }
      if (auto f = c->StartTls(t)) {
        std::string why(Untagged(f->diag));
        f->diag = StrCat(tag, d.label, ": ", why, " [", relay, "]");
        last = *f;
        log_.Warning(queue_id, StrCat("STARTTLS with ", relay, " failed (",
                                      d.label, "): ", why));
        Report(dest, s, ResultType(why), why);
        if (required) return last;
        continue;  // once more, in plain text
      }
      std::string info = c->connection().TlsInfo();
      if (d.kind == Kind::kDane) {
        StrAppend(&info, ", TLSA match ", c->connection().DaneMatch());
      }
      const std::string& verr = c->connection().verify_error();
      if (d.kind == Kind::kStsTesting && !verr.empty()) {
        log_.Warning(queue_id,
                     StrCat(d.label, ": the certificate of ", relay,
                            " does not verify (", verr,
                            "); testing: delivering anyway"));
        Report(dest, s,
               ResultType(StrCat("certificate verification failed: ", verr)),
               verr);
      } else if (!(sts && !d.sts_mx_listed)) {
        Report(dest, s, "", "");
      }
      log_.Info(queue_id,
                StrCat("TLS with ", relay, ": ", info, " (", d.label, ")"));
    } else if (want_tls && required) {
      std::string why = StrCat(relay, " does not offer STARTTLS and ", d.label,
                               " requires it");
      Report(dest, s, "starttls-not-supported", why);
      c->Quit();
      return smtpclient::Outcome{4, "4.7.4", StrCat(tag, why)};
    } else if (want_tls && !is_static) {
      Report(dest, s, "starttls-not-supported",
             StrCat(relay, " does not offer STARTTLS"));
      log_.Warning(queue_id, StrCat(relay, " does not offer STARTTLS (",
                                    d.label, "; delivering in plain text)"));
    }
    client_ = std::move(c);
    return std::nullopt;
  }
  return last;
}

}  // namespace zm::smtp
