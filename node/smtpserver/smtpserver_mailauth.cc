#include "node/smtpserver/smtpserver_mailauth.h"

#include <map>
#include <mutex>
#include <utility>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"
#include "node/dns/resolver.h"
#include "node/mail/envelope.h"
#include "node/mailauth/mailauth.h"
#include "node/smtp/session.h"

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
// no AUTH, a network client (and, the caller adds, not a relay-allowed
// one: a trusted network's mail is ours).
bool Inbound(const smtp::Session& s) {
  return s.client().listener == smtp::Listener::kSmtp && !s.authenticated() &&
         !s.client().addr.empty();
}

class MailAuthImpl : public MailAuth {
 public:
  MailAuthImpl(const ServerConfig::MailAuth& cfg, dns::Resolver* dns,
               Logger& log, std::string hostname,
               std::unique_ptr<mailauth::Dkim> dkim,
               std::optional<mailauth::DkimKeys> keys)
      : cfg_(cfg),
        dns_(dns),
        log_(log),
        hostname_(std::move(hostname)),
        dkim_(std::move(dkim)),
        keys_(std::move(keys)) {
    if (!cfg_.spf_threshold.empty()) {
      threshold_ = mailauth::ParseSpfResult(cfg_.spf_threshold);
    }
    spf_on_ = dns_ && (cfg_.spf || cfg_.spf_received || threshold_ ||
                       cfg_.dmarc);
    dkim_on_ = dns_ && dkim_ && (cfg_.dkim_verify || cfg_.dmarc);
    dmarc_on_ = dns_ && cfg_.dmarc;
  }

  std::optional<smtp::Verdict> MailFrom(const smtp::Session& session,
                                        const smtp::Check& check) override {
    if (!spf_on_ || !Inbound(session)) return std::nullopt;
    SpfOutcome spf = Spf(session, check.arg);
    {
      std::lock_guard<std::mutex> lock(mu_);
      spf_[&session] = {Client(session), spf};
    }
    if (!threshold_ || !mailauth::AtOrBelow(spf.result, *threshold_)) {
      return std::nullopt;
    }
    std::string result(mailauth::SpfResultName(spf.result));
    log_.Info(session.queue_id(),
              StrCat("mailauth: client=[", session.client().addr, "] from=<",
                     check.arg, "> refused: spf=", result,
                     " at or below spf-threshold ", cfg_.spf_threshold));
    return smtp::Verdict::Reject(MakeR(
        550, spf.result == SpfResult::kPermError ? "5.7.24" : "5.7.23",
        StrCat("<", check.arg, ">: SPF check ", result, " for [",
               session.client().addr, "]")));
  }

  MessageAuth Message(const smtp::Session& session, const smtp::Check& check,
                      bool relay_allowed) override {
    MessageAuth out;
    bool inbound = Inbound(session) && !relay_allowed &&
                   (spf_on_ || dkim_on_ || dmarc_on_);
    bool sign = relay_allowed && keys_ && dkim_;
    std::optional<SpfOutcome> spf = TakeSpf(session);
    if (!inbound && !sign) return out;
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
    std::string_view message = std::string_view(*file).substr(mf->body_offset);
    std::string from_domain = mailauth::FromDomain(message);
    std::string log;
    if (inbound) {
      mailauth::AuthResults r;
      r.authserv_id = hostname_;
      if (spf_on_) {
        if (!spf) spf = Spf(session, mf->envelope.sender);
        r.spf = spf;
      }
      if (dkim_on_) {
        r.dkim_checked = true;
        r.dkim = dkim_->Verify(message, check.queue_id);
      }
      if (dmarc_on_) {
        r.dmarc = mailauth::CheckDmarc(*dns_, from_domain, r.spf, r.dkim);
        Apply(*r.dmarc, &out);
      }
      out.headers = mailauth::FormatAuthenticationResults(r);
      if (cfg_.spf_received && spf && !spf->received_spf.empty()) {
        StrAppend(&out.headers, "Received-SPF: ", spf->received_spf, "\n");
      }
      log = mailauth::Summary(r);
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
    if (!log.empty()) {
      if (out.reject) StrAppend(&log, ": rejected");
      if (!out.freeze_reason.empty()) StrAppend(&log, ": ", out.freeze_reason);
      log_.Info(check.queue_id, StrCat("mailauth: ", log));
    }
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

  void Apply(const mailauth::DmarcOutcome& d, MessageAuth* out) {
    if (d.result != "fail") return;
    if (d.policy == "reject") {
      out->reject = smtp::Verdict::Reject(MakeR(
          550, "5.7.1",
          StrCat("Message rejected by the DMARC policy of ", d.from_domain)));
    } else if (d.policy == "quarantine") {
      // The first word of the reason names the freezer file's cause.
      out->freeze_reason =
          StrCat(cfg_.quarantine_folder.empty() ? "dmarc"
                                                : cfg_.quarantine_folder,
                 ": DMARC quarantine policy of ", d.from_domain);
    }
  }

  const ServerConfig::MailAuth cfg_;
  dns::Resolver* const dns_;
  Logger& log_;
  const std::string hostname_;
  const std::unique_ptr<mailauth::Dkim> dkim_;
  const std::optional<mailauth::DkimKeys> keys_;
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
  return std::unique_ptr<MailAuth>(new MailAuthImpl(
      c, dns, log, std::move(hostname), std::move(*dkim), std::move(keys)));
}

}  // namespace zm::smtpserver
