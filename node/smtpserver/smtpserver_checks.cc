#include "node/smtpserver/smtpserver_checks.h"

#include <fnmatch.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "node/admin/admin_grpc_client.h"
#include "node/common/log.h"
#include "node/common/strings.h"
#include "node/dns/resolver.h"
#include "node/ratetrack/rate_tracker.h"
#include "node/smtp/session.h"
#include "node/smtpserver/smtpserver_auth.h"
#include "node/smtpserver/smtpserver_clientdns.h"
#include "node/smtpserver/smtpserver_filter.h"
#include "node/smtpserver/smtpserver_fleet.h"
#include "node/smtpserver/smtpserver_mailauth.h"
#include "node/smtpserver/smtpserver_metrics.h"
#include "node/smtpserver/smtpserver_policy.h"
#include "node/smtpserver/smtpserver_verify.h"

namespace zm::smtpserver {
namespace {

// The start of every rate-limit refusal's text; what tells a rate refusal
// from a policy one when counting them (zmnode_smtp_*_rejections_total).
constexpr std::string_view kTooMuch = "You are sending too much ";

bool IsRateRefusal(const smtp::Verdict& v) {
  return v.reply && !v.reply->lines.empty() &&
         v.reply->lines.front().starts_with(kTooMuch);
}

// The reason label of a policy refusal: the check that refused.
std::string_view KindName(smtp::CheckKind k) {
  using K = smtp::CheckKind;
  switch (k) {
    case K::kConnect:
      return "connect";
    case K::kHelo:
      return "helo";
    case K::kAuth:
      return "auth";
    case K::kMailFrom:
      return "mail";
    case K::kRcptTo:
      return "rcpt";
    case K::kData:
      return "data";
    case K::kMessage:
      return "message";
    case K::kEtrn:
      return "etrn";
    case K::kVrfy:
      return "vrfy";
    case K::kExpn:
      return "expn";
  }
  return "other";
}

using smtp::Check;
using smtp::CheckKind;
using smtp::Reply;
using smtp::Session;
using smtp::Verdict;
using FleetEntry = v1::PolicyEntry;

Reply MakeR(int code, std::string enhanced, std::string text) {
  Reply r;
  r.code = code;
  r.enhanced = std::move(enhanced);
  r.lines.push_back(std::move(text));
  return r;
}

std::optional<std::string> IpKey(const std::string& ip) {
  auto k = ratetrack::KeyForIp(ip);
  if (k.ok()) return *k;
  return std::nullopt;
}

std::optional<std::string> UserKey(const std::string& user) {
  return ratetrack::KeyForUser(user);
}

int64_t NowSec() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A fleet entry's reason for the client, else `fallback`.
std::string FleetText(const FleetEntry& e, std::string_view fallback) {
  return e.reason().empty() ? std::string(fallback) : e.reason();
}

// An address split at its last '@', source route and quotes removed.
struct Parts {
  std::string address;  // without a source route
  std::string local;    // unquoted
  std::string domain;   // lower-case, "" when none
};

Parts SplitAddress(std::string_view addr) {
  Parts p;
  if (!addr.empty() && addr.front() == '@') {
    // RFC 5321 source route "@a,@b:user@dom": only the last part counts.
    auto colon = addr.find(':');
    addr = colon == std::string_view::npos ? std::string_view()
                                           : addr.substr(colon + 1);
  }
  p.address = std::string(addr);
  auto at = addr.rfind('@');
  std::string_view local = addr.substr(0, at);
  if (at != std::string_view::npos) p.domain = ToLower(addr.substr(at + 1));
  if (local.size() >= 2 && local.front() == '"' && local.back() == '"') {
    for (size_t i = 1; i + 1 < local.size(); ++i) {
      if (local[i] == '\\' && i + 2 < local.size()) ++i;
      p.local += local[i];
    }
  } else {
    p.local = std::string(local);
  }
  return p;
}

// A local part that asks for further routing (%-hack, UUCP bang paths, a
// quoted '@'): relaying in disguise unless the client may relay.
bool HasRoutingCharacters(std::string_view local) {
  return local.find_first_of("%!@:") != std::string_view::npos;
}

// What a session has collected so far: keyed by the Session's address and
// reset at its kConnect (and whenever the client behind that address
// changes), so a later session at the same address starts afresh.
struct SessionState {
  std::string client;  // "addr port"
  std::string style_flags;
  bool pattern_matched = false;
  std::string freeze_reason;
  int error_recipients = 0;
  int accepted_recipients = 0;
  // This transaction: the sender's policy says sendernorelay +; a
  // recipient outside our domains was accepted (for maxoutsize).
  bool sender_no_relay = false;
  bool relayed = false;
  uint64_t declared_size = 0;  // MAIL's SIZE=, 0 = none
  uint32_t tarpit_ms = 0;
  // The client address's smtp-policy attributes, looked up once per
  // session (by the driver, SetClientAttrs, or at the first use); a
  // policy reloaded meanwhile applies from the next session on.
  std::shared_ptr<const PolicyAttrs> client_attrs;
  bool attrs_given = false;  // by SetClientAttrs, for the next kConnect
};

class PolicyChecks : public SessionChecks {
 public:
  PolicyChecks(std::shared_ptr<const Settings> settings, CheckDeps deps)
      : settings_(std::move(settings)),
        deps_(deps),
        verifier_(deps.node ? *deps.node : NodeDir{}) {}

  Verdict Decide(const Session& session, const Check& check) override {
    Verdict v;
    switch (check.kind) {
      case CheckKind::kConnect:
        v = Connect(session);
        break;
      case CheckKind::kHelo:
        v = Helo(session, check);
        break;
      case CheckKind::kAuth:
        v = Auth(session, check);
        break;
      case CheckKind::kMailFrom:
        v = MailFrom(session, check);
        break;
      case CheckKind::kRcptTo:
        v = RcptTo(session, check);
        break;
      case CheckKind::kData:
        break;
      case CheckKind::kMessage:
        v = MessageCheck(session, check);
        break;
      case CheckKind::kEtrn:
        v = Etrn(session, check);
        break;
      case CheckKind::kVrfy:
      case CheckKind::kExpn:
        v = VrfyExpn(session, check);
        break;
    }
    if (v.outcome == Verdict::Outcome::kReject) Tarpit(session, &v);
    if (v.outcome == Verdict::Outcome::kReject && deps_.metrics &&
        !IsRateRefusal(v)) {
      deps_.metrics->PolicyRejection(KindName(check.kind));
    }
    return v;
  }

  // Quick: what the decision reads is in memory (the client's attributes
  // known, the policy parsed rather than compiled into RocksDB, the
  // rate-tracker) and no DNS lookup, SPF/DKIM, recipient verification,
  // content filter, AUTH backend or scheduler call can be needed.
  bool Quick(const Session& session, const Check& check) override {
    if (check.kind == CheckKind::kData) return true;  // nothing to decide
    const bool local = session.client().addr.empty();
    std::shared_ptr<const PolicyAttrs> attrs;
    bool sender_no_relay = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const SessionState& st = StateLocked(session);
      attrs = st.client_attrs;
      sender_no_relay = st.sender_no_relay;
    }
    if (!attrs && !local) return false;  // ForIp would look them up
    if (!attrs) attrs = std::make_shared<const PolicyAttrs>();
    const bool memory = policy().in_memory();
    switch (check.kind) {
      case CheckKind::kConnect:
        // The HELO patterns, and the reverse name's policy entry.
        return memory || session.client().name.empty();
      case CheckKind::kHelo:
        return memory;
      case CheckKind::kMailFrom: {
        if (deps_.mailauth) return false;  // SPF
        // A fully trusted client's sender is not looked up, nor checked
        // in DNS; an authenticated one's not in DNS.
        const bool full_trust = attrs->Is("fulltrustnet");
        if (check.arg.empty() || full_trust) return true;
        return memory && (!deps_.dns || session.authenticated());
      }
      case CheckKind::kRcptTo: {
        if (!memory) return false;
        const bool relay = RelayAllowed(session) && !sender_no_relay;
        if (!relay && deps_.dns) return false;  // acceptifmx, acceptifdns
        return !settings_->server.enable_router || attrs->Is("trustrecipients");
      }
      case CheckKind::kMessage:
        // Without SPF/DKIM and a content filter that applies, the end of
        // data only reads the session's state and the client's attributes.
        if (deps_.mailauth) return false;
        return !deps_.filter || !attrs->Flag("filtering").value_or(true);
      default:
        return false;
    }
  }

  void SetClientAttrs(const Session& session,
                      std::shared_ptr<const PolicyAttrs> attrs) override {
    Update(session, [&attrs](SessionState& st) {
      st.client_attrs = std::move(attrs);
      st.attrs_given = true;
    });
  }

  void Forget(const Session& session) override {
    std::lock_guard<std::mutex> lock(mu_);
    sessions_.erase(&session);
  }

  void Record(const Session& session, Event event) override {
    ratetrack::Counts c;
    if (event == Event::kCommitted) {
      size_t n = session.envelope().recipients.size();
      if (n == 0) n = static_cast<size_t>(State(session).accepted_recipients);
      c.messages = 1;
      c.recipients = n;
    } else {
      c.aborts = 1;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      SessionState& st = StateLocked(session);
      st.accepted_recipients = 0;
      st.freeze_reason.clear();
    }
    if (!deps_.rates) return;
    auto key = RateKey(session);
    if (key) deps_.rates->Add(*key, c, NowSec());
  }

 private:
  // ---- per-session state -------------------------------------------------

  SessionState& StateLocked(const Session& session) {
    std::string client =
        StrCat(session.client().addr, " ", session.client().port);
    SessionState& st = sessions_[&session];
    if (st.client != client) {
      st = SessionState{};
      st.client = client;
    }
    return st;
  }
  SessionState State(const Session& session) {
    std::lock_guard<std::mutex> lock(mu_);
    return StateLocked(session);
  }
  template <typename F>
  void Update(const Session& session, F f) {
    std::lock_guard<std::mutex> lock(mu_);
    f(StateLocked(session));
  }

  // Every 4xx/5xx waits: the first `initial` seconds, each next one
  // prev + prev * exponent, capped at `max` (PARAM tarpit).
  void Tarpit(const Session& session, Verdict* v) {
    const ServerConfig& c = settings_->server;
    if (c.tarpit_initial <= 0) return;
    Update(session, [&](SessionState& st) {
      double next =
          st.tarpit_ms == 0
              ? c.tarpit_initial * 1000
              : st.tarpit_ms + st.tarpit_ms * c.tarpit_exponent;
      if (c.tarpit_max > 0) next = std::min(next, c.tarpit_max * 1000);
      st.tarpit_ms = static_cast<uint32_t>(std::min(next, 3600e3));
      v->delay_ms = st.tarpit_ms;
    });
  }

  void Log(const Session& session, std::string_view what) {
    if (!deps_.log) return;
    deps_.log->Info(session.queue_id(),
                    StrCat("policy: client=[", session.client().addr, "] ",
                           what));
  }

  // ---- helpers -----------------------------------------------------------

  // The fleet overlay's entry for the client address / a mail address.
  std::optional<FleetEntry> FleetForClient(const Session& session) const {
    if (!deps_.fleet || session.client().addr.empty()) return std::nullopt;
    return deps_.fleet->overlay().ForIp(session.client().addr, NowMs());
  }
  std::optional<FleetEntry> FleetForAddress(std::string_view address) const {
    if (!deps_.fleet || address.empty()) return std::nullopt;
    return deps_.fleet->overlay().ForAddress(address, NowMs());
  }

  // A fleet entry for a sender or recipient: reject (550 5.7.1), defer
  // (450 4.7.1) or freeze; allow and rate classes decide nothing here.
  std::optional<Verdict> FleetAddressVerdict(const Session& session,
                                             const std::string& arg,
                                             const FleetEntry& e,
                                             std::string_view role) {
    switch (e.action()) {
      case v1::POLICY_ACTION_REJECT:
        Log(session, StrCat(role, "=<", arg, "> rejected by fleet policy (",
                            e.subject(), ")"));
        return Verdict::Reject(MakeR(
            550, "5.7.1",
            StrCat("<", arg, ">: ", FleetText(e, "Rejected by policy"))));
      case v1::POLICY_ACTION_DEFER:
        Log(session, StrCat(role, "=<", arg, "> deferred by fleet policy (",
                            e.subject(), ")"));
        return Verdict::Reject(MakeR(
            450, "4.7.1",
            StrCat("<", arg, ">: ",
                   FleetText(e, "Deferred by policy, try again later"))));
      case v1::POLICY_ACTION_FREEZE:
        Update(session, [&](SessionState& st) {
          st.freeze_reason =
              StrCat("fleet policy ", e.subject(), " (", role, " ", arg, ")");
        });
        return std::nullopt;
      default:
        return std::nullopt;
    }
  }

  const Policy& policy() const { return settings_->policy; }

  // The client's network attributes (ForIp), cached for the session.
  std::shared_ptr<const PolicyAttrs> ClientAttrs(const Session& session) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      const SessionState& st = StateLocked(session);
      if (st.client_attrs) return st.client_attrs;
    }
    // Looked up outside the lock: it may read RocksDB.
    auto a = std::make_shared<const PolicyAttrs>(
        session.client().addr.empty() ? PolicyAttrs()
                                      : policy().ForIp(session.client().addr));
    Update(session, [&a](SessionState& st) { st.client_attrs = a; });
    return a;
  }

  bool Authenticated(const Session& session) const {
    return session.authenticated();
  }

  bool RelayAllowed(const Session& session) {
    if (session.relay_allowed() || session.client().trusted) return true;
    if (session.client().addr.empty()) return true;  // local submission
    return IsTrustedNetwork(*ClientAttrs(session));
  }

  std::optional<std::string> RateKey(const Session& session) const {
    if (Authenticated(session)) return UserKey(session.auth_user());
    if (session.client().addr.empty()) return std::nullopt;
    return IpKey(session.client().addr);
  }

  // The first HELO pattern line matching `name`, if any.
  const HeloPattern* MatchHelo(std::string_view name) const {
    std::string n(name);
    for (const HeloPattern& p : settings_->server.helo_patterns) {
      if (::fnmatch(p.pattern.c_str(), n.c_str(), FNM_CASEFOLD) == 0) {
        return &p;
      }
    }
    return nullptr;
  }

  // Applies a HELO pattern line: refusal, load limit, style flags.
  std::optional<Verdict> ApplyPattern(const Session& session,
                                      const HeloPattern* p, int code,
                                      Verdict* v) {
    if (!p) return std::nullopt;
    if (!p->refusal.empty()) {
      Log(session, StrCat("refused by pattern '", p->pattern, "'"));
      return Verdict::Reject(MakeR(code, "5.7.1", p->refusal));
    }
    double load[1] = {0};
    if (p->max_load < 999 && ::getloadavg(load, 1) == 1 &&
        load[0] > p->max_load) {
      return Verdict::Reject(
          MakeR(421, "4.3.2", "System busy, try again later"), true);
    }
    v->style_flags = p->flags;
    Update(session, [&](SessionState& st) {
      st.style_flags = p->flags;
      st.pattern_matched = true;
    });
    return std::nullopt;
  }

  std::string Text(const PolicyAttrs& a, std::string_view fallback) const {
    auto m = a.Get("message");
    return m && !m->empty() ? *m : std::string(fallback);
  }

  // ---- the checks --------------------------------------------------------

  Verdict Connect(const Session& session) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      SessionState& st = StateLocked(session);
      std::string client = st.client;
      std::shared_ptr<const PolicyAttrs> given;
      if (st.attrs_given) given = st.client_attrs;
      st = SessionState{};
      st.client = client;
      st.client_attrs = given;
    }
    Verdict v;
    const smtp::ClientInfo& ci = session.client();
    if (ci.addr.empty()) return v;
    // The fleet overlay first: it is how an operator (or the rate-tracker
    // on another node) overrides the static policy across the fleet.
    std::optional<FleetEntry> fleet = FleetForClient(session);
    if (fleet) {
      switch (fleet->action()) {
        case v1::POLICY_ACTION_REJECT:
          Log(session, StrCat("rejected by fleet policy (", fleet->subject(),
                              ")"));
          return Verdict::Reject(
              MakeR(554, "5.7.1", FleetText(*fleet, "Rejected by policy")),
              true);
        case v1::POLICY_ACTION_DEFER:
          Log(session, StrCat("deferred by fleet policy (", fleet->subject(),
                              ")"));
          return Verdict::Reject(
              MakeR(421, "4.7.1",
                    FleetText(*fleet, "Deferred by policy, try again later")),
              true);
        case v1::POLICY_ACTION_FREEZE:
          Update(session, [&](SessionState& st) {
            st.freeze_reason = StrCat("fleet policy ", fleet->subject());
          });
          break;
        default:
          break;
      }
    }
    const bool allow =
        fleet && fleet->action() == v1::POLICY_ACTION_ALLOW;
    std::shared_ptr<const PolicyAttrs> attrs = ClientAttrs(session);
    const PolicyAttrs& a = *attrs;
    if (a.Is("rejectnet") && !allow) {
      Log(session, StrCat("rejectnet (", a.key, ")"));
      return Verdict::Reject(
          MakeR(554, "5.7.1", Text(a, "Your network is not welcome here")),
          true);
    }
    if (a.Is("freezenet") && !allow) {
      Update(session, [&](SessionState& st) {
        st.freeze_reason = StrCat("freezenet ", a.key);
      });
    }
    if (allow) {
      v.relay_allowed = IsTrustedNetwork(a);
      return v;
    }
    // The reverse name (or "[ip]") against the HELO pattern lines.
    std::string name = ci.name.empty() ? StrCat("[", ci.addr, "]") : ci.name;
    if (auto r = ApplyPattern(session, MatchHelo(name), 554, &v)) return *r;
    if (!ci.name.empty()) {
      PolicyAttrs n = policy().ForDomain(ci.name);
      if (n.Is("rejectsource")) {
        Log(session, StrCat("reverse name rejected (", n.key, ")"));
        return Verdict::Reject(
            MakeR(554, "5.7.1", Text(n, "Your host is not welcome here")),
            true);
      }
    }
    v.relay_allowed = IsTrustedNetwork(a);
    return v;
  }

  Verdict Helo(const Session& session, const Check& check) {
    Verdict v;
    if (auto r = ApplyPattern(session, MatchHelo(check.arg), 550, &v)) {
      return *r;
    }
    PolicyAttrs h = policy().ForDomain(check.arg);
    if (h.Is("rejectsource")) {
      Log(session, StrCat("helo=", check.arg, " rejected (", h.key, ")"));
      return Verdict::Reject(
          MakeR(550, "5.7.1", Text(h, "Your HELO name is not welcome here")));
    }
    if (h.Is("freezesource")) {
      Update(session, [&](SessionState& st) {
        st.freeze_reason = StrCat("HELO ", check.arg, " (", h.key, ")");
      });
    }
    return v;
  }

  Verdict Auth(const Session& session, const Check& check) {
    std::optional<std::string> ip_key;
    if (!session.client().addr.empty()) ip_key = IpKey(session.client().addr);
    int failrate = settings_->server.auth_failrate;
    if (deps_.rates && ip_key && failrate > 0 &&
        deps_.rates->Get(*ip_key, NowSec()).auth_failures >=
            static_cast<uint64_t>(failrate)) {
      Log(session, StrCat("AUTH refused: more than ", failrate,
                          " failures in the window"));
      deps_.rates->Add(*ip_key, ratetrack::Counts{.excesses = 1}, NowSec());
      return Verdict::Reject(MakeR(
          454, "4.7.0", "Too many failed authentications, try again later"));
    }
    absl::StatusOr<bool> ok = false;
    if (deps_.auth) ok = deps_.auth->Verify(check.user, check.password);
    if (!check.authzid.empty() && check.authzid != check.user) ok = false;
    if (!ok.ok()) {
      Log(session, StrCat("AUTH backend failed: ", Message(ok.status())));
      return Verdict::Reject(MakeR(454, "4.7.0",
                                   "Temporary authentication failure"));
    }
    if (!*ok) {
      if (deps_.rates && ip_key) {
        deps_.rates->Add(*ip_key, ratetrack::Counts{.auth_failures = 1},
                         NowSec());
      }
      Log(session, StrCat("AUTH ", check.mechanism, " failed for user=",
                          check.user));
      return Verdict::Reject(
          MakeR(535, "5.7.8", "Authentication credentials invalid"));
    }
    Verdict v;
    v.relay_allowed = true;
    v.auth_user = check.user;
    v.reply = MakeR(235, "2.7.0", "Authentication successful");
    return v;
  }

  // The rate limit of the client's policy class; authenticated users get
  // ratelimit_auth_factor times as much.
  // `rate_class` (optional) gets where the limit comes from: "" for the
  // static policy's ratelimitmsgs, "fleet N[,M]" for a fleet rate class.
  std::optional<RateLimit> Limit(const Session& session,
                                 std::string* rate_class = nullptr) {
    auto text = ClientAttrs(session)->Get("ratelimitmsgs");
    // A fleet entry for the client: allow lifts the limit, a rate class
    // ("N[,M]", as ratelimitmsgs) replaces it.
    if (std::optional<FleetEntry> f = FleetForClient(session)) {
      if (f->action() == v1::POLICY_ACTION_ALLOW) return std::nullopt;
      if (f->action() == v1::POLICY_ACTION_RATE_CLASS &&
          ParseRateLimit(f->rate_class())) {
        text = f->rate_class();
        if (rate_class) *rate_class = StrCat("fleet ", f->rate_class());
      }
    }
    if (!text) return std::nullopt;
    auto r = ParseRateLimit(*text);
    if (!r) return std::nullopt;
    if (Authenticated(session)) {
      r->messages *= settings_->server.ratelimit_auth_factor;
      r->recipients *= settings_->server.ratelimit_auth_factor;
    }
    return r;
  }

  // The limit of the source and its key, told to the fleet link too.
  std::optional<RateLimit> CheckedLimit(const Session& session,
                                        const std::optional<std::string>& key) {
    std::string rate_class;
    auto limit = Limit(session, &rate_class);
    if (limit && key && deps_.fleet) {
      deps_.fleet->NoteLimit(*key, rate_class, limit->messages,
                             limit->recipients);
    }
    return limit;
  }

  Verdict RateRefusal(const Session& session, const std::string& key,
                      int64_t limit, std::string_view what) {
    deps_.rates->Add(key, ratetrack::Counts{.excesses = 1}, NowSec());
    Log(session, StrCat("rate limit: ", key, " over ", std::llabs(limit), " ",
                        what, " per window"));
    if (deps_.fleet) {
      deps_.fleet->OverLimit(
          key, StrCat("over ", std::llabs(limit), " ", what, " per window"));
    }
    if (deps_.metrics) deps_.metrics->RateRejection(what);
    std::string text =
        StrCat(kTooMuch, what, " per time interval. Try again later.");
    return Verdict::Reject(limit > 0 ? MakeR(450, "4.7.1", text)
                                     : MakeR(550, "5.7.1", text));
  }

  Verdict MailFrom(const Session& session, const Check& check) {
    Update(session, [&check](SessionState& st) {
      st.accepted_recipients = 0;
      st.sender_no_relay = false;
      st.relayed = false;
      st.declared_size = check.mail.size.value_or(0);
    });
    // tls-enforce-tls: no transaction in the clear from the network.
    if (settings_->server.tls.enforce_tls && !session.tls() &&
        !session.client().addr.empty()) {
      Log(session, "MAIL refused: tls-enforce-tls and no STARTTLS");
      return Verdict::Reject(
          MakeR(530, "5.7.0", "Must issue a STARTTLS command first"));
    }
    std::shared_ptr<const PolicyAttrs> attrs = ClientAttrs(session);
    const PolicyAttrs& client = *attrs;
    bool full_trust = client.Is("fulltrustnet");
    // test-dns-rbl: a client a DNS blocklist lists sends nothing (unless
    // it may relay: a trusted network or an authenticated user).
    if (!session.client().dnsbl_zone.empty() && !RelayAllowed(session) &&
        ZoneIn(session.client().dnsbl_zone, client.Get("test-dns-rbl"))) {
      return DnsblRefusal(session, check.arg, "from");
    }
    Parts s = SplitAddress(check.arg);
    std::optional<FleetEntry> fleet = FleetForAddress(s.address);
    if (fleet) {
      if (auto r = FleetAddressVerdict(session, check.arg, *fleet, "from")) {
        return *r;
      }
      full_trust = full_trust || fleet->action() == v1::POLICY_ACTION_ALLOW;
    }
    PolicyAttrs sa;
    if (!check.arg.empty() && !full_trust) {
      sa = policy().ForAddress(s.address);
      if (sa.Is("rejectsource")) {
        Log(session, StrCat("from=<", check.arg, "> rejected (", sa.key, ")"));
        return Verdict::Reject(MakeR(
            550, "5.7.1",
            StrCat("<", check.arg, ">: ",
                   Text(sa, "Sender address rejected by policy"))));
      }
      if (sa.Is("freezesource") || sa.Is("freeze")) {
        Update(session, [&](SessionState& st) {
          st.freeze_reason = StrCat("sender ", check.arg, " (", sa.key, ")");
        });
      }
      if (sa.Is("sendernorelay") && !Authenticated(session)) {
        Update(session, [](SessionState& st) { st.sender_no_relay = true; });
      }
    }
    // maxinsize: the largest SIZE this client may announce.
    if (auto max = client.Get("maxinsize")) {
      uint64_t limit = 0;
      if (ParseNumber(*max, &limit) && limit > 0 && check.mail.size > limit) {
        return Verdict::Reject(MakeR(
            552, "5.3.4", "Message size exceeds the limit for your network"));
      }
    }
    // senderokwithdns: the sender's domain must exist in DNS ("+" soft,
    // "-" hard on a missing domain).
    auto dns_rule = sa.Get("senderokwithdns");
    if (!dns_rule) dns_rule = client.Get("senderokwithdns");
    if (dns_rule && deps_.dns && !s.domain.empty() && !full_trust &&
        !Authenticated(session) && s.domain.front() != '[') {
      if (auto r = SenderDns(session, check.arg, s.domain, *dns_rule)) {
        return *r;
      }
    }
    if (deps_.mailauth) {
      if (auto r = deps_.mailauth->MailFrom(session, check, policy(), client,
                                            RelayAllowed(session))) {
        return *r;
      }
    }
    if (auto r = MessageRate(session)) return *r;
    return Verdict::Accept();
  }

  // Whether `zone` is one the attribute value names.
  bool ZoneIn(const std::string& zone,
              const std::optional<std::string>& value) const {
    if (!value) return false;
    for (const std::string& z : ZonesOf(*value, settings_->server)) {
      if (z == zone) return true;
    }
    return false;
  }

  Verdict DnsblRefusal(const Session& session, const std::string& arg,
                       std::string_view role) {
    const smtp::ClientInfo& ci = session.client();
    Log(session, StrCat(role, "=<", arg, "> refused: client listed in ",
                        ci.dnsbl_zone));
    std::string text = StrCat("Your address [", ci.addr, "] is listed in ",
                              ci.dnsbl_zone, ": ", ci.dnsbl_text);
    // The text is the zone's TXT record: keep it printable and short.
    for (char& ch : text) {
      if (static_cast<unsigned char>(ch) < 32 || ch == 127) ch = '?';
    }
    if (text.size() > 400) text.resize(400);
    return Verdict::Reject(MakeR(550, "5.7.1", text));
  }

  // acceptifdns: the domain has an MX or an address record.
  bool DomainResolves(const std::string& domain) const {
    if (!deps_.dns || domain.empty() || domain.front() == '[') return false;
    auto mx = deps_.dns->LookupMx(domain);
    if (mx.ok() && !mx->empty() && !mx->front().host.empty()) return true;
    auto a = deps_.dns->LookupA(domain);
    if (a.ok() && !a->empty()) return true;
    auto aaaa = deps_.dns->LookupAaaa(domain);
    return aaaa.ok() && !aaaa->empty();
  }

  std::optional<Verdict> SenderDns(const Session& session,
                                   const std::string& sender,
                                   const std::string& domain,
                                   const std::string& rule) {
    auto mx = deps_.dns->LookupMx(domain);
    bool exists = mx.ok() && !mx->empty() && !mx->front().host.empty();
    bool temp = !mx.ok() && absl::IsUnavailable(mx.status());
    if (!exists && !temp && (mx.ok() || absl::IsNotFound(mx.status()))) {
      auto a = deps_.dns->LookupA(domain);
      if (a.ok() && !a->empty()) exists = true;
      if (!a.ok() && absl::IsUnavailable(a.status())) temp = true;
      if (!exists && !temp) {
        auto aaaa = deps_.dns->LookupAaaa(domain);
        if (aaaa.ok() && !aaaa->empty()) exists = true;
      }
    }
    if (exists) return std::nullopt;
    Log(session, StrCat("from=<", sender, "> domain does not resolve",
                        temp ? " (temporary)" : ""));
    std::string text =
        StrCat("<", sender, ">: Sender address rejected: domain ", domain,
               temp ? " does not resolve now" : " not found");
    if (temp || rule == "+") {
      return Verdict::Reject(MakeR(450, "4.1.8", text));
    }
    return Verdict::Reject(MakeR(550, "5.1.8", text));
  }

  std::optional<Verdict> MessageRate(const Session& session) {
    if (!deps_.rates) return std::nullopt;
    auto key = RateKey(session);
    auto limit = CheckedLimit(session, key);
    if (!limit || !key || limit->messages == 0) return std::nullopt;
    ratetrack::Counts c = deps_.rates->Get(*key, NowSec());
    if (c.messages < static_cast<uint64_t>(std::llabs(limit->messages))) {
      return std::nullopt;
    }
    return RateRefusal(session, *key, limit->messages, "mail");
  }

  std::optional<Verdict> RecipientRate(const Session& session) {
    if (!deps_.rates) return std::nullopt;
    auto key = RateKey(session);
    auto limit = CheckedLimit(session, key);
    if (!limit || !key || limit->recipients == 0) return std::nullopt;
    ratetrack::Counts c = deps_.rates->Get(*key, NowSec());
    uint64_t pending = session.envelope().recipients.size();
    if (c.recipients + pending <
        static_cast<uint64_t>(std::llabs(limit->recipients))) {
      return std::nullopt;
    }
    return RateRefusal(session, *key, limit->recipients, "rcpts");
  }

  bool IsOurDomain(const Session& session, const std::string& domain) const {
    if (domain.empty()) return true;
    if (domain.front() == '[') {
      std::string_view lit = domain;
      lit = lit.substr(1, lit.size() - 2);
      ConsumePrefix(&lit, "ipv6:");
      return !session.client().local_addr.empty() &&
             EqualsIgnoreCase(lit, session.client().local_addr);
    }
    if (settings_->domains.IsLocal(domain)) return true;
    return policy().ForDomain(domain).Is("localdomain");
  }

  // acceptifmx: we relay for a domain that lists one of our names as MX.
  bool WeAreMx(const std::string& domain) const {
    if (!deps_.dns) return false;
    auto mx = deps_.dns->LookupMx(domain);
    if (!mx.ok()) return false;
    for (const dns::MxRecord& r : *mx) {
      if (!r.host.empty() && settings_->domains.IsLocal(r.host)) return true;
    }
    return false;
  }

  Verdict RcptTo(const Session& session, const Check& check) {
    Parts r = SplitAddress(check.arg);
    // Allow does not open relaying: it only lifts policy refusals.
    if (std::optional<FleetEntry> fleet = FleetForAddress(r.address)) {
      if (auto v = FleetAddressVerdict(session, check.arg, *fleet, "to")) {
        return *v;
      }
    }
    SessionState st = State(session);
    bool relay = RelayAllowed(session) && !st.sender_no_relay;
    bool ours = IsOurDomain(session, r.domain);
    PolicyAttrs ra = policy().ForAddress(r.address);
    bool target = false;
    if (!relay) {
      target = ra.Is("relaytarget") ||
               (ra.Is("acceptifmx") && WeAreMx(r.domain)) ||
               (ra.Is("acceptifdns") && DomainResolves(r.domain));
      if (HasRoutingCharacters(r.local) || (!ours && !target) ||
          r.address != check.arg) {
        Log(session, StrCat("to=<", check.arg, "> relaying denied",
                            st.sender_no_relay ? " (sendernorelay)" : ""));
        return CountError(session,
                          MakeR(554, "5.7.1",
                                StrCat("<", check.arg,
                                       ">: Relay access denied")));
      }
    }
    // rcpt-dns-rbl: a listed client reaches only recipients that do not
    // ask for the test (test-rcpt-dns-rbl +), and postmaster always.
    const smtp::ClientInfo& ci = session.client();
    if (!ci.dnsbl_zone.empty() && !RelayAllowed(session) &&
        ra.Is("test-rcpt-dns-rbl") &&
        !EqualsIgnoreCase(r.local, "postmaster") &&
        ZoneIn(ci.dnsbl_zone, ClientAttrs(session)->Get("rcpt-dns-rbl"))) {
      return CountError(session, DnsblRefusal(session, check.arg, "to").reply
                                     .value());
    }
    // maxoutsize: the largest message the client's network may send out
    // of our domains (SIZE now; the data at its end).
    if (!ours) {
      if (auto v = MaxOutSize(session, st.declared_size)) return *v;
      Update(session, [](SessionState& s2) { s2.relayed = true; });
    }
    if (ra.Is("freeze") || ra.Is("freezesource")) {
      Update(session, [&](SessionState& st) {
        st.freeze_reason = StrCat("recipient ", check.arg, " (", ra.key, ")");
      });
    }
    if (ours && VerifyRecipients(session) &&
        !ClientAttrs(session)->Is("trustrecipients")) {
      auto a = verifier_.Lookup(r.local, r.domain);
      if (!a.exists()) {
        Log(session, StrCat("to=<", check.arg, "> unknown user"));
        return CountError(
            session,
            MakeR(550, "5.1.1",
                  StrCat("<", check.arg,
                         ">: Recipient address rejected: user unknown")));
      }
    }
    if (auto v = RecipientRate(session)) return *v;
    Update(session, [](SessionState& st) { ++st.accepted_recipients; });
    return Verdict::Accept();
  }

  // maxoutsize of the client's network against `size` bytes (0: unknown).
  std::optional<Verdict> MaxOutSize(const Session& session, uint64_t size) {
    auto max = ClientAttrs(session)->Get("maxoutsize");
    uint64_t limit = 0;
    if (!max || !ParseNumber(*max, &limit) || limit == 0 || size <= limit) {
      return std::nullopt;
    }
    Log(session, StrCat("message of ", size, " bytes over maxoutsize ", limit,
                        " for relaying"));
    return Verdict::Reject(MakeR(
        552, "5.3.4",
        "Message size exceeds the limit for mail relayed from your network"));
  }

  // max-error-recipients: past it, 421 and close.
  Verdict CountError(const Session& session, Reply r) {
    int n = 0;
    Update(session, [&](SessionState& st) { n = ++st.error_recipients; });
    int max = settings_->server.max_error_recipients;
    if (max > 0 && n > max) {
      Log(session, StrCat("more than ", max, " bad recipients: closing"));
      return Verdict::Reject(
          MakeR(421, "4.7.0", "Too many bad recipients, closing connection"),
          true);
    }
    return Verdict::Reject(std::move(r));
  }

  // As in ZMailer, the `e` style flag needs `PARAM enable-router`: with
  // it, clients whose HELO pattern line lacks `e` are not verified (no
  // matching line: verified).
  bool VerifyRecipients(const Session& session) {
    if (!settings_->server.enable_router) return false;
    SessionState st = State(session);
    return !st.pattern_matched ||
           st.style_flags.find('e') != std::string::npos;
  }

  Verdict MessageCheck(const Session& session, const Check& check) {
    SessionState st = State(session);
    std::string freeze = st.freeze_reason;
    std::shared_ptr<const PolicyAttrs> attrs = ClientAttrs(session);
    const PolicyAttrs& client = *attrs;
    // maxoutsize: the message as stored (its Received: header too), not
    // the envelope in front of it in the staged file.
    if (st.relayed && check.message_size > 0) {
      if (auto v = MaxOutSize(session, check.message_size)) return *v;
    }
    if (freeze.empty() && client.Is("freezenet")) {
      freeze = StrCat("freezenet ", client.key);
    }
    MessageAuth auth;
    if (deps_.mailauth) {
      auth = deps_.mailauth->Message(session, check, policy(), client,
                                     RelayAllowed(session));
      if (auth.reject) return *auth.reject;
      if (freeze.empty()) freeze = auth.freeze_reason;
    }
    bool filtering = client.Flag("filtering").value_or(true);
    if (deps_.filter && filtering) {
      FilterResult f = deps_.filter->Check(check.staged_path, check.queue_id);
      switch (f.outcome) {
        case FilterResult::Outcome::kAccept:
          break;
        case FilterResult::Outcome::kFreeze:
          if (freeze.empty()) freeze = StrCat("content filter: ", f.text);
          break;
        case FilterResult::Outcome::kReject:
          Log(session, StrCat("content filter rejected: ", f.text));
          return Verdict::Reject(MakeR(
              f.code >= 500 && f.code < 600 ? f.code : 550,
              f.enhanced.empty() ? "5.7.1" : f.enhanced,
              f.text.empty() ? "Message rejected by content filter" : f.text));
        case FilterResult::Outcome::kTempFail:
          Log(session, StrCat("content filter failed: ", f.text));
          return Verdict::Reject(MakeR(
              451, "4.7.1", "Content check failed, try again later"));
      }
    }
    Verdict v;
    v.prepend_headers = std::move(auth.headers);
    if (freeze.empty()) return v;
    v.outcome = Verdict::Outcome::kFreeze;
    v.freeze_reason = freeze;
    return v;
  }

  Verdict Etrn(const Session& session, const Check& check) {
    std::string arg = check.arg;
    if (arg.empty() || arg.front() == '#') {
      return Verdict::Reject(
          MakeR(458, "4.3.0", "Unable to queue messages for that queue name"));
    }
    if (arg.front() == '@') arg.erase(0, 1);
    std::string domain = ToLower(arg);
    bool allowed = RelayAllowed(session) || IsOurDomain(session, domain) ||
                   policy().ForDomain(domain).Is("relaytarget");
    if (!allowed) {
      return Verdict::Reject(MakeR(
          459, "4.7.1",
          StrCat("Node ", arg, " not allowed: no relaying for it from here")));
    }
    if (!deps_.node) {
      return Verdict::Reject(MakeR(
          458, "4.3.0", StrCat("Unable to queue messages for node ", arg)));
    }
    if (deps_.fleet && deps_.fleet->in_fleet()) {
      absl::StatusOr<FleetEtrn> fleet = deps_.fleet->Etrn(domain);
      if (fleet.ok()) return FleetEtrnReply(session, arg, *fleet);
      // The agent is down: this node alone, as without a cluster.
      Log(session, StrCat("ETRN ", arg, ": cluster-wide failed (",
                          Message(fleet.status()), "), local only"));
    }
    // On a pool thread (smtpserver_conn.cc runs Decide there), not the
    // event loop; the scheduler answers at once or not at all.
    auto etrn = admin::LocalEtrn(*deps_.node, domain);
    if (!etrn.ok()) {
      Log(session, StrCat("ETRN ", arg, ": ", Message(etrn.status())));
      if (admin::IsRefusal(etrn.status())) {
        return Verdict::Reject(MakeR(
            459, "4.7.1",
            StrCat("Node ", arg, " not allowed: refused by the scheduler")));
      }
      return Verdict::Reject(MakeR(
          458, "4.3.0", StrCat("Unable to queue messages for node ", arg)));
    }
    Log(session, etrn->text());
    Verdict v;
    v.reply = MakeR(250, "2.0.0", StrCat("Queuing for node ", arg, " started"));
    return v;
  }

  // ZMailer's etrn-cluster reply: a line per node, then a summary line.
  Verdict FleetEtrnReply(const Session& session, const std::string& arg,
                         FleetEtrn fleet) {
    std::sort(fleet.results.begin(), fleet.results.end(),
              [](const v1::EtrnResult& a, const v1::EtrnResult& b) {
                return a.node_id() < b.node_id();
              });
    std::sort(fleet.pending.begin(), fleet.pending.end());
    Reply r = MakeR(250, "2.0.0", "");
    r.lines.clear();
    for (const v1::EtrnResult& res : fleet.results) {
      r.lines.push_back(StrCat(res.node_id(), ": ", res.code(), " ",
                               res.text().empty() ? "done" : res.text()));
    }
    for (const std::string& node : fleet.pending) {
      r.lines.push_back(
          StrCat(node, ": no answer yet (acts when it sees the request)"));
    }
    r.lines.push_back("ETRN-cluster operation(s) complete");
    Log(session, StrCat("ETRN ", arg, " cluster-wide id=", fleet.request_id,
                        " answered=", fleet.results.size(),
                        " pending=", fleet.pending.size()));
    Verdict v;
    v.reply = std::move(r);
    return v;
  }

  Verdict VrfyExpn(const Session& session, const Check& check) {
    bool expn = check.kind == CheckKind::kExpn;
    Parts r = SplitAddress(check.arg);
    if (r.local.empty()) {
      return Verdict::Reject(MakeR(501, "5.5.4", "Argument required"));
    }
    if (!IsOurDomain(session, r.domain)) {
      Verdict v;
      v.reply = MakeR(252, "2.1.5",
                      "Cannot VRFY user, but will accept message and "
                      "attempt delivery");
      return v;
    }
    auto a = verifier_.Lookup(r.local, r.domain);
    if (!a.exists()) {
      return Verdict::Reject(MakeR(
          550, "5.1.1", StrCat("<", check.arg, ">: user unknown")));
    }
    Verdict v;
    std::string domain =
        r.domain.empty() ? settings_->session.hostname : r.domain;
    Reply reply = MakeR(250, "2.1.5", StrCat("<", r.local, "@", domain, ">"));
    if (expn && !a.expansion.empty()) {
      reply.lines.clear();
      for (const std::string& t : a.expansion) {
        reply.lines.push_back(t.find('@') != std::string::npos ||
                                      t.empty() || t[0] == '|' || t[0] == '/'
                                  ? StrCat("<", t, ">")
                                  : StrCat("<", t, "@", domain, ">"));
      }
    }
    v.reply = std::move(reply);
    return v;
  }

  const std::shared_ptr<const Settings> settings_;
  const CheckDeps deps_;
  RecipientVerifier verifier_;
  std::mutex mu_;
  std::map<const Session*, SessionState> sessions_;
};

}  // namespace

std::unique_ptr<SessionChecks> MakePolicyChecks(
    std::shared_ptr<const Settings> settings, CheckDeps deps) {
  return std::make_unique<PolicyChecks>(std::move(settings), deps);
}

}  // namespace zm::smtpserver
