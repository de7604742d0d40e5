// zm::mailauth: SPF, DKIM and DMARC for the smtpserver, on Debian's
// libspf2, libopendkim and libopendmarc, and the Authentication-Results:
// header (RFC 8601) that reports them.
//
// Every DNS question the libraries ask goes through a zm::dns::Resolver
// (etc/resolver.conf of the node), never through the system resolver:
// libspf2 gets a DNS layer of ours, libopendkim a key lookup callback, and
// DMARC records are fetched here and parsed by libopendmarc.
//
//   auto spf = mailauth::CheckSpf(resolver, {.client_ip = "192.0.2.1",
//                                            .helo = "mx.example.org",
//                                            .sender = "a@example.org",
//                                            .receiver = "mx.example.net"});
//   auto dkim = mailauth::Dkim::Create(&resolver);   // one per process
//   auto sigs = (*dkim)->Verify(message, queue_id);  // every signature
//   auto dmarc = mailauth::CheckDmarc(resolver, FromDomain(message), spf,
//                                     sigs);
//   std::string header = mailauth::FormatAuthenticationResults(
//       {.authserv_id = "mx.example.net", .spf = spf, .dkim_checked = true,
//        .dkim = sigs, .dmarc = dmarc});
//
// Outbound: DkimKeys (etc/dkim-keys: `domain selector keyfile [algorithm]`)
// names the key of a sender domain; Dkim::Sign returns the
// DKIM-Signature: header (rsa-sha256 or ed25519-sha256, relaxed/relaxed).
// GenerateKey makes a key pair and the TXT record to publish.
//
// Messages are as the spool stores them: LF line endings, no dot-stuffing.
// Everything here is thread-safe; Dkim and CheckDmarc may be used from many
// threads at once. No ARC: no Debian 12 library verifies RFC 8617 chains.
#ifndef ZM_MAILAUTH_MAILAUTH_H_
#define ZM_MAILAUTH_MAILAUTH_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::dns {
class Resolver;
}

namespace zm::mailauth {

// ---- SPF (RFC 7208) --------------------------------------------------------

// Ordered from worst to best, as ZMailer's spf-threshold compares them;
// the errors sit apart (kTempError never leads to a rejection).
enum class SpfResult {
  kFail,
  kSoftFail,
  kNone,
  kNeutral,
  kPass,
  kPermError,
  kTempError,
};

// "fail", "softfail", "none", "neutral", "pass", "permerror", "temperror".
std::string_view SpfResultName(SpfResult r);
// The inverse of SpfResultName (case-insensitive); nullopt for anything else.
std::optional<SpfResult> ParseSpfResult(std::string_view name);
// spf-threshold: true when `r` is at or below `threshold` (fail < softfail <
// none < neutral < pass). permerror counts as none; temperror never does.
bool AtOrBelow(SpfResult r, SpfResult threshold);

struct SpfQuery {
  std::string client_ip;  // "192.0.2.1" or "2001:db8::1"
  std::string helo;       // the HELO/EHLO name
  std::string sender;     // MAIL FROM address; "" = null path: HELO checked
  std::string receiver;   // our host name (Received-SPF, exp= macros)
};

struct SpfOutcome {
  SpfResult result = SpfResult::kNone;
  std::string identity;      // "mailfrom" or "helo"
  std::string checked;       // the address (mailfrom) or name (helo)
  std::string comment;       // libspf2's header comment
  std::string received_spf;  // a Received-SPF: value (RFC 7208 9.1)
};

// Evaluates SPF through libspf2 with `dns` as its only resolver.
SpfOutcome CheckSpf(dns::Resolver& dns, const SpfQuery& query);

// ---- DKIM (RFC 6376, RFC 8463) --------------------------------------------

struct DkimSignature {
  std::string domain;     // d=
  std::string selector;   // s=
  std::string algorithm;  // "rsa-sha256", "ed25519-sha256", "rsa-sha1"
  std::string result;     // pass, fail, neutral, temperror, permerror
  std::string reason;     // why it did not pass ("" on pass)
  std::string b_prefix;   // first 8 characters of b= (RFC 8601 header.b)
};

struct DkimKey {
  std::string domain;
  std::string selector;
  std::string algorithm;  // "rsa-sha256" or "ed25519-sha256"
  std::string key_pem;    // the private key, PEM
};

class Dkim {
 public:
  // `dns` fetches the public keys (selector._domainkey.domain TXT); it
  // may be null when only signing. It must outlive the Dkim.
  static absl::StatusOr<std::unique_ptr<Dkim>> Create(dns::Resolver* dns);
  virtual ~Dkim() = default;

  // Every DKIM-Signature of `message`, each with its own result; empty
  // when the message has none. `job_id` names the message in libopendkim's
  // diagnostics (the queue id).
  virtual std::vector<DkimSignature> Verify(std::string_view message,
                                            std::string_view job_id) = 0;
  // The "DKIM-Signature: ...\n" header (folded, LF line endings) for
  // `message` signed with `key`, relaxed/relaxed, the headers RFC 6376
  // recommends.
  virtual absl::StatusOr<std::string> Sign(std::string_view message,
                                           const DkimKey& key,
                                           std::string_view job_id) = 0;
};

// etc/dkim-keys: `domain selector keyfile [rsa-sha256|ed25519-sha256]` per
// line, '#' comments; keyfile relative to the table's folder unless
// absolute. The algorithm defaults to the key's type.
class DkimKeys {
 public:
  // InvalidArgument "file:line: what" for a malformed line or an unreadable
  // or wrong key; NotFound when `path` does not exist.
  static absl::StatusOr<DkimKeys> Load(const std::string& path);
  // The key for a From: domain (lower-case), exact match; null if none.
  const DkimKey* ForDomain(std::string_view domain) const;
  size_t size() const { return keys_.size(); }

 private:
  std::vector<DkimKey> keys_;
};

struct GeneratedKey {
  std::string private_pem;  // PKCS#8 PEM, to store with mode 0600
  std::string txt_record;   // "v=DKIM1; k=rsa; p=..." (k=ed25519 for RFC 8463)
};
// A fresh key pair: RSA of `bits` (1024 to 8192), or Ed25519 (`bits`
// ignored).
absl::StatusOr<GeneratedKey> GenerateKey(bool ed25519, int bits);

// ---- DMARC (RFC 7489) ------------------------------------------------------

// The Public Suffix List (Debian's `publicsuffix` package): which names
// are registry suffixes ("co.uk", "test" by the implicit "*" rule), and so
// the organizational domain of a name (RFC 7489 section 3.2: the public
// suffix plus one label). Immutable after Load; thread-safe.
inline constexpr char kDebianPublicSuffixList[] =
    "/usr/share/publicsuffix/public_suffix_list.dat";

class PublicSuffixList {
 public:
  // NotFound when `path` does not exist.
  static absl::StatusOr<PublicSuffixList> Load(const std::string& path);
  // The list's text: rules, "*." wildcards, "!" exceptions, "//" comments.
  static PublicSuffixList Parse(std::string_view text);
  // "mail.example.co.uk" -> "example.co.uk"; a public suffix itself is
  // returned unchanged. Lower-case, no trailing dot.
  std::string OrganizationalDomain(std::string_view domain) const;

 private:
  std::unordered_set<std::string> rules_, wildcards_, exceptions_;
};

struct DmarcOutcome {
  std::string result;  // pass, fail, none, temperror, permerror
  std::string policy;  // the policy to apply on fail: none, quarantine,
                       // reject ("" when no record); after pct= sampling
  std::string from_domain;
  std::string record_domain;  // where the record was found ("" if none)
  // The policy the record asks for (p=, or sp= at the organizational
  // domain's record) and its pct=; `policy` is one step milder when the
  // message fell outside the sample (RFC 7489 section 6.6.4: reject ->
  // quarantine, quarantine -> none).
  std::string published;
  int pct = 100;
  bool sampled = true;
};

struct DmarcOptions {
  // Organizational domains (the record's fallback, and sp=); null: the
  // last two labels of the From: domain.
  const PublicSuffixList* psl = nullptr;
  // pct= sampling: a number in 0..99, the policy applies when it is below
  // pct. Null: a random one per message.
  std::function<int()> sample;
};

// Looks up _dmarc.<from_domain> (then _dmarc.<organizational domain>,
// where sp= applies), parses it with libopendmarc and evaluates it against
// the SPF result and the DKIM signatures (alignment as the record says,
// organizational domains from options.psl); a failing
// message outside the pct= sample gets the milder policy.
DmarcOutcome CheckDmarc(dns::Resolver& dns, std::string_view from_domain,
                        const std::optional<SpfOutcome>& spf,
                        const std::vector<DkimSignature>& dkim,
                        const DmarcOptions& options = {});

// ---- messages and the Authentication-Results header -----------------------

// The domain of the single address in the From: header, lower-case; "" when
// there is no From:, more than one, or no domain in it.
std::string FromDomain(std::string_view message);

struct AuthResults {
  std::string authserv_id;  // our host name
  std::optional<SpfOutcome> spf;
  bool dkim_checked = false;
  std::vector<DkimSignature> dkim;
  std::optional<DmarcOutcome> dmarc;
};

// "Authentication-Results: <id>;\n\tspf=...;\n\tdkim=...;\n\tdmarc=...\n",
// one dkim= per signature (dkim=none without any); "none" when nothing
// was checked.
std::string FormatAuthenticationResults(const AuthResults& r);
// "spf=pass dkim=pass:example.org dmarc=pass" for the log line.
std::string Summary(const AuthResults& r);

}  // namespace zm::mailauth

#endif  // ZM_MAILAUTH_MAILAUTH_H_
