#include "node/smtpserver/smtpserver_mailauth.h"

#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"
#include "node/dns/resolver.h"
#include "node/mail/envelope.h"
#include "node/mailauth/mailauth.h"
#include "node/smtp/session.h"
#include "node/smtpserver/smtpserver_policy.h"

namespace zm::smtpserver {
namespace {

using mailauth::SpfOutcome;
using mailauth::SpfResult;

smtp::Reply MakeR(int code, std::string enhanced, std::string text) {
  smtp::Reply r;
  r.code = code;
  r.enhanced = std::move(enhanced);
  r.lines.push_back(std::move(text));
  return r;
}

// The inbound checks are for mail from the outside: the MX listener,
// no AUTH, a network client (and not a relay-allowed one, unless its
// smtp-policy says `mailauth +`: a trusted network's mail is ours).
bool Inbound(const smtp::Session& s) {
  return s.client().listener == smtp::Listener::kSmtp && !s.authenticated() &&
         !s.client().addr.empty();
}

// The smtp-policy attributes of a session's client address and of its
// envelope sender: the client's first.
struct Rules {
  PolicyAttrs client, sender;

  // The attribute's value and the key it came from.
  std::optional<std::pair<std::string, std::string>> Get(
      std::string_view name) const {
    if (auto v = client.Get(name)) return std::make_pair(*v, client.key);
    if (auto v = sender.Get(name)) return std::make_pair(*v, sender.key);
    return std::nullopt;
  }
  // What `name` (an action attribute) asks for; what it says for the log
  // in *why ("spf-fail freeze ([192.0.2.0]/24)").
  std::optional<AuthAction> Action(std::string_view name,
                                   std::string* why) const {
    auto v = Get(name);
    if (!v) return std::nullopt;
    auto a = ParseAuthAction(ToLower(v->first));
    if (a && why) *why = StrCat(name, " ", ToLower(v->first), " (", v->second, ")");
    return a;
  }
  // `mailauth -` of the client: exempt; `+`: checked even when trusted.
  bool Checked(bool relay_allowed) const {
    std::optional<bool> f = client.Flag("mailauth");
    return relay_allowed ? f.value_or(false) : f.value_or(true);
  }
  bool SpfOff() const {
    auto v = Get("spf");
    return v && v->first == "-";
  }
};

Rules RulesFor(const Policy& policy, const PolicyAttrs& client,
               std::string_view sender) {
  Rules r;
  r.client = client;
  if (!sender.empty()) {
    std::string_view a = sender;
    // A source route's hops say nothing about the sender.
    if (auto colon = a.rfind(':'); a.front() == '@' && colon != a.npos) {
      a.remove_prefix(colon + 1);
    }
    r.sender = policy.ForAddress(a);
  }
  return r;
}

// The stricter action: reject > freeze > tag > accept.
void Stricter(AuthAction a, std::string why, AuthAction* have,
              std::string* have_why) {
  if (static_cast<int>(a) > static_cast<int>(*have)) {
    *have = a;
    *have_why = std::move(why);
  }
}

// DKIM as one word for the dkim-* attributes: "pass" when a signature
// passes, "fail" when none does and one fails, "none" without any, else
// "" (temporary or permanent errors only).
std::string DkimVerdict(const std::vector<mailauth::DkimSignature>& sigs) {
  if (sigs.empty()) return "none";
  bool failed = false;
  for (const auto& s : sigs) {
    if (s.result == "pass") return "pass";
    if (s.result == "fail") failed = true;
  }
  return failed ? "fail" : "";
}

class MailAuthImpl : public MailAuth {
 public:
  MailAuthImpl(const ServerConfig::MailAuth& cfg, dns::Resolver* dns,
               Logger& log, std::string hostname,
               std::unique_ptr<mailauth::Dkim> dkim,
               std::optional<mailauth::DkimKeys> keys,
               std::optional<mailauth::PublicSuffixList> psl)
      : cfg_(cfg),
        dns_(dns),
        log_(log),
        hostname_(std::move(hostname)),
        dkim_(std::move(dkim)),
        keys_(std::move(keys)),
        psl_(std::move(psl)) {
    if (!cfg_.spf_threshold.empty()) {
      threshold_ = mailauth::ParseSpfResult(cfg_.spf_threshold);
    }
    spf_on_ = dns_ && (cfg_.spf || cfg_.spf_received || threshold_ ||
                       cfg_.dmarc);
    dkim_on_ = dns_ && dkim_ && (cfg_.dkim_verify || cfg_.dmarc);
    dmarc_on_ = dns_ && cfg_.dmarc;
  }

  std::optional<smtp::Verdict> MailFrom(const smtp::Session& session,
                                        const smtp::Check& check,
                                        const Policy& policy,
                                        const PolicyAttrs& client,
                                        bool relay_allowed) override {
    if (!spf_on_ || !Inbound(session)) return std::nullopt;
    Rules rules = RulesFor(policy, client, check.arg);
    if (!rules.Checked(relay_allowed) || rules.SpfOff()) return std::nullopt;
    SpfOutcome spf = Spf(session, check.arg);
    {
      std::lock_guard<std::mutex> lock(mu_);
      spf_[&session] = {Client(session), spf};
    }
    std::string result(mailauth::SpfResultName(spf.result));
    std::string why;
    std::optional<AuthAction> act =
        rules.Action(StrCat("spf-", result), &why);
    if (act) {
      if (*act != AuthAction::kReject) return std::nullopt;
    } else if (threshold_ && mailauth::AtOrBelow(spf.result, *threshold_)) {
      why = StrCat("at or below spf-threshold ", cfg_.spf_threshold);
    } else {
      return std::nullopt;
    }
    log_.Info(session.queue_id(),
              StrCat("mailauth: client=[", session.client().addr, "] from=<",
                     check.arg, "> refused: spf=", result, " ", why));
    return smtp::Verdict::Reject(SpfRefusal(session, check.arg, spf.result));
  }

  MessageAuth Message(const smtp::Session& session, const smtp::Check& check,
                      const Policy& policy, const PolicyAttrs& client,
                      bool relay_allowed) override {
    MessageAuth out;
    std::optional<SpfOutcome> spf = TakeSpf(session);
    bool any_check = spf_on_ || dkim_on_ || dmarc_on_;
    bool maybe_inbound = Inbound(session) && any_check;
    bool sign = relay_allowed && keys_ && dkim_;
    if (!maybe_inbound && !sign) return out;
    auto file = fs::ReadFile(check.staged_path);
    absl::StatusOr<mail::MessageFile> mf =
        file.ok() ? mail::ParseMessageFile(*file)
                  : absl::StatusOr<mail::MessageFile>(file.status());
    if (!mf.ok()) {
      log_.Warning(check.queue_id,
                   StrCat("mailauth: cannot read the message: ",
                          zm::Message(mf.status())));
      out.reject = smtp::Verdict::Reject(
          MakeR(451, "4.3.0", "Local error reading the message"));
      return out;
    }
    Rules rules;
    bool inbound = false;
    if (maybe_inbound) {
      rules = RulesFor(policy, client, mf->envelope.sender);
      inbound = rules.Checked(relay_allowed);
    }
    if (!inbound && !sign) return out;
    std::string_view message = std::string_view(*file).substr(mf->body_offset);
    std::string from_domain = mailauth::FromDomain(message);
    std::string log;
    if (inbound) {
      mailauth::AuthResults r;
      r.authserv_id = hostname_;
      if (spf_on_ && !rules.SpfOff()) {
        if (!spf) spf = Spf(session, mf->envelope.sender);
        r.spf = spf;
      }
      if (dkim_on_) {
        r.dkim_checked = true;
        r.dkim = dkim_->Verify(message, check.queue_id);
      }
      if (dmarc_on_) {
        mailauth::DmarcOptions o;
        if (psl_) o.psl = &*psl_;
        r.dmarc = mailauth::CheckDmarc(*dns_, from_domain, r.spf, r.dkim, o);
      }
      out.headers = mailauth::FormatAuthenticationResults(r);
      if (cfg_.spf_received && r.spf && !r.spf->received_spf.empty()) {
        StrAppend(&out.headers, "Received-SPF: ", r.spf->received_spf, "\n");
      }
      log = mailauth::Summary(r);
      Apply(session, r, rules, &out, &log);
    }
    if (sign && !out.reject) {
      const mailauth::DkimKey* key = keys_->ForDomain(from_domain);
      if (key) {
        auto sig = dkim_->Sign(message, *key, check.queue_id);
        if (sig.ok()) {
          out.headers += *sig;
          StrAppend(&log, log.empty() ? "" : " ", "signed d=", key->domain,
                    " s=", key->selector, " a=", key->algorithm);
        } else {
          // Unsigned mail still goes: the receiver decides.
          StrAppend(&log, log.empty() ? "" : " ", "signing failed for d=",
                    key->domain, ": ", zm::Message(sig.status()));
        }
      }
    }
    if (!log.empty()) log_.Info(check.queue_id, StrCat("mailauth: ", log));
    return out;
  }

 private:
  struct Remembered {
    std::string client;
    SpfOutcome spf;
  };

  static std::string Client(const smtp::Session& s) {
    return StrCat(s.client().addr, " ", s.client().port);
  }

  // RFC 7372: 5.7.23 for a failed SPF check, 5.7.24 for an error
  // (temporary: 451).
  static smtp::Reply SpfRefusal(const smtp::Session& session,
                                std::string_view sender, SpfResult r) {
    std::string text = StrCat("<", sender, ">: SPF check ",
                              mailauth::SpfResultName(r), " for [",
                              session.client().addr, "]");
    if (r == SpfResult::kTempError) return MakeR(451, "4.7.24", text);
    return MakeR(550, r == SpfResult::kPermError ? "5.7.24" : "5.7.23", text);
  }

  SpfOutcome Spf(const smtp::Session& session, const std::string& sender) {
    return mailauth::CheckSpf(*dns_, {.client_ip = session.client().addr,
                                      .helo = session.helo(),
                                      .sender = sender,
                                      .receiver = hostname_});
  }

  std::optional<SpfOutcome> TakeSpf(const smtp::Session& session) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = spf_.find(&session);
    if (it == spf_.end()) return std::nullopt;
    std::optional<SpfOutcome> r;
    if (it->second.client == Client(session)) r = std::move(it->second.spf);
    spf_.erase(it);
    return r;
  }

  // What the results, the policy attributes and the DMARC record decide;
  // appends the outcome to the log line.
  void Apply(const smtp::Session& session, const mailauth::AuthResults& r,
             const Rules& rules, MessageAuth* out, std::string* log) {
    AuthAction act = AuthAction::kAccept;
    std::string why;
    std::optional<smtp::Reply> refusal;
    std::vector<std::string> tags;
    auto take = [&](AuthAction a, std::string w, std::string tag,
                    smtp::Reply reply) {
      if (a == AuthAction::kTag) tags.push_back(tag);
      if (a == AuthAction::kReject && !refusal) refusal = std::move(reply);
      Stricter(a, std::move(w), &act, &why);
    };
    if (r.spf) {
      std::string result(mailauth::SpfResultName(r.spf->result));
      std::string w;
      if (auto a = rules.Action(StrCat("spf-", result), &w)) {
        // A reject came at MAIL FROM already, unless the SPF check ran
        // only now (a transaction begun before a reload).
        take(*a, w, StrCat("spf=", result),
             SpfRefusal(session, r.spf->checked, r.spf->result));
      }
    }
    if (r.dkim_checked) {
      std::string d = DkimVerdict(r.dkim);
      std::string w;
      std::optional<AuthAction> a;
      if (d == "fail" || d == "none") a = rules.Action(StrCat("dkim-", d), &w);
      if (a) {
        take(*a, w, StrCat("dkim=", d),
             MakeR(550, "5.7.20",
                   d == "none" ? "No DKIM signature found"
                               : "No passing DKIM signature found"));
      }
    }
    if (r.dmarc && r.dmarc->result == "fail" && !r.dmarc->policy.empty()) {
      const mailauth::DmarcOutcome& d = *r.dmarc;
      std::string w;
      std::optional<AuthAction> a = rules.Action(StrCat("dmarc-", d.policy), &w);
      if (!a) {
        // What the domain asks for.
        a = d.policy == "reject"       ? AuthAction::kReject
            : d.policy == "quarantine" ? AuthAction::kFreeze
                                       : AuthAction::kAccept;
        w = StrCat("DMARC ", d.policy, " policy of ", d.from_domain);
      }
      take(*a, w, StrCat("dmarc=fail (p=", d.policy, ")"),
           MakeR(550, "5.7.1",
                 StrCat("Message rejected by the DMARC policy of ",
                        d.from_domain)));
    }
    switch (act) {
      case AuthAction::kReject:
        out->reject = smtp::Verdict::Reject(*refusal);
        StrAppend(log, ": rejected: ", why);
        return;
      case AuthAction::kFreeze: {
        // The first word names the freezer file's cause.
        std::string cause =
            why.starts_with("spf")    ? "spf"
            : why.starts_with("dkim") ? "dkim"
            : cfg_.quarantine_folder.empty() ? "dmarc"
                                             : cfg_.quarantine_folder;
        out->freeze_reason = StrCat(cause, ": ", why);
        StrAppend(log, ": ", out->freeze_reason);
        break;
      }
      default:
        break;
    }
    if (!tags.empty()) {
      std::string joined;
      for (const std::string& t : tags) {
        StrAppend(&joined, joined.empty() ? "" : "; ", t);
      }
      StrAppend(&out->headers, "X-Authentication-Warning: ", hostname_, ": ",
                joined, "\n");
      StrAppend(log, ": tagged ", joined);
    }
  }

  const ServerConfig::MailAuth cfg_;
  dns::Resolver* const dns_;
  Logger& log_;
  const std::string hostname_;
  const std::unique_ptr<mailauth::Dkim> dkim_;
  const std::optional<mailauth::DkimKeys> keys_;
  const std::optional<mailauth::PublicSuffixList> psl_;
  std::optional<SpfResult> threshold_;
  bool spf_on_ = false, dkim_on_ = false, dmarc_on_ = false;
  std::mutex mu_;
  // The SPF result of each session's current transaction, MAIL to the end
  // of data (or the next MAIL).
  std::map<const smtp::Session*, Remembered> spf_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MailAuth>> MakeMailAuth(
    const ServerConfig& config, const NodeDir& node, dns::Resolver* dns,
    Logger& log, std::string hostname) {
  const ServerConfig::MailAuth& c = config.mailauth;
  std::optional<mailauth::DkimKeys> keys;
  std::string table = node.etc_file("dkim-keys");
  bool required = !c.dkim_keys.empty();
  if (required) {
    auto v = config::ExpandVariables(c.dkim_keys, node);
    if (!v.ok()) return v.status();
    table = v->starts_with("/") ? *v : node.etc_file(*v);
  }
  if (required || fs::Exists(table)) {
    auto k = mailauth::DkimKeys::Load(table);
    if (!k.ok()) return k.status();
    keys = std::move(*k);
  }
  bool inbound = c.spf || c.spf_received || !c.spf_threshold.empty() ||
                 c.dkim_verify || c.dmarc;
  if (!inbound && !keys) return std::unique_ptr<MailAuth>();
  if (inbound && dns == nullptr) {
    log.Warning("", "mailauth: no DNS resolver, SPF/DKIM/DMARC checks off");
  }
  auto dkim = mailauth::Dkim::Create(dns);
  if (!dkim.ok()) return dkim.status();
  // DMARC's organizational domains (Debian's publicsuffix package).
  std::optional<mailauth::PublicSuffixList> psl;
  if (c.dmarc) {
    auto l = mailauth::PublicSuffixList::Load(mailauth::kDebianPublicSuffixList);
    if (l.ok()) {
      psl = std::move(*l);
    } else {
      log.Warning("", StrCat("mailauth: no public suffix list (",
                             zm::Message(l.status()),
                             "); DMARC takes the last two labels of a "
                             "domain as its organizational domain"));
    }
  }
  return std::unique_ptr<MailAuth>(
      new MailAuthImpl(c, dns, log, std::move(hostname), std::move(*dkim),
                       std::move(keys), std::move(psl)));
}

}  // namespace zm::smtpserver
