// DMARC: the record is fetched through zm::dns::Resolver and evaluated by
// libopendmarc (alignment, p= / sp=); pct= sampling and the organizational
// domain (the Public Suffix List, psl.cc) are ours.
#include <string.h>
#include <sys/types.h>

extern "C" {
#include <opendmarc/dmarc.h>
}

#include <mutex>
#include <random>

#include "absl/status/status.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/dns/resolver.h"
#include "node/mailauth/mailauth.h"

namespace zm::mailauth {
namespace {

// libopendmarc keeps its settings (the public suffix list) in process-wide
// state of its own; it is set up once, before the first evaluation.
void InitLibrary() {
  static std::once_flag once;
  std::call_once(once, [] {
    OPENDMARC_LIB_T lib;
    ::memset(&lib, 0, sizeof lib);
    lib.tld_type = OPENDMARC_TLD_TYPE_NONE;
    if (fs::Exists(kDebianPublicSuffixList)) {
      lib.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
      ::strncpy(reinterpret_cast<char*>(lib.tld_source_file),
                kDebianPublicSuffixList, sizeof lib.tld_source_file - 1);
    }
    opendmarc_policy_library_init(&lib);
  });
}

u_char* U(std::string& s) { return reinterpret_cast<u_char*>(s.data()); }

// The organizational domain: by the Public Suffix List when there is one,
// else the last two labels.
std::string OrgDomain(std::string_view domain, const PublicSuffixList* psl) {
  if (psl) return psl->OrganizationalDomain(domain);
  auto last = domain.rfind('.');
  if (last == std::string_view::npos || last == 0) return std::string(domain);
  auto prev = domain.rfind('.', last - 1);
  return std::string(prev == std::string_view::npos ? domain
                                                    : domain.substr(prev + 1));
}

// RFC 7489 section 6.6.4: outside the pct= sample a policy is applied one
// step milder.
std::string Milder(const std::string& policy) {
  if (policy == "reject") return "quarantine";
  return "none";
}

// The DMARC record at _dmarc.<domain>: OK("") when there is none.
absl::StatusOr<std::string> FindRecord(dns::Resolver& dns,
                                       std::string_view domain) {
  auto txt = dns.LookupTxt(StrCat("_dmarc.", domain));
  if (!txt.ok()) {
    if (absl::IsNotFound(txt.status())) return std::string();
    return txt.status();
  }
  std::string found;
  for (const std::string& t : *txt) {
    std::string_view v = Trim(t);
    if (!StartsWithIgnoreCase(v, "v=DMARC1")) continue;
    std::string_view rest = Trim(v.substr(8));
    if (!rest.empty() && rest.front() != ';') continue;
    // RFC 7489 6.6.3: more than one record is as good as none.
    if (!found.empty()) return std::string();
    found = std::string(v);
  }
  return found;
}

int SpfOutcomeForLib(SpfResult r) {
  switch (r) {
    case SpfResult::kPass:
      return DMARC_POLICY_SPF_OUTCOME_PASS;
    case SpfResult::kFail:
    case SpfResult::kSoftFail:
      return DMARC_POLICY_SPF_OUTCOME_FAIL;
    case SpfResult::kTempError:
      return DMARC_POLICY_SPF_OUTCOME_TMPFAIL;
    default:
      return DMARC_POLICY_SPF_OUTCOME_NONE;
  }
}

int DkimOutcomeForLib(const std::string& result) {
  if (result == "pass") return DMARC_POLICY_DKIM_OUTCOME_PASS;
  if (result == "fail") return DMARC_POLICY_DKIM_OUTCOME_FAIL;
  if (result == "temperror") return DMARC_POLICY_DKIM_OUTCOME_TMPFAIL;
  return DMARC_POLICY_DKIM_OUTCOME_NONE;
}

std::string PolicyName(int p) {
  switch (p) {
    case DMARC_RECORD_P_REJECT:
      return "reject";
    case DMARC_RECORD_P_QUARANTINE:
      return "quarantine";
    default:
      return "none";
  }
}

}  // namespace

DmarcOutcome CheckDmarc(dns::Resolver& dns, std::string_view from_domain,
                        const std::optional<SpfOutcome>& spf,
                        const std::vector<DkimSignature>& dkim,
                        const DmarcOptions& options) {
  DmarcOutcome out;
  out.from_domain = std::string(from_domain);
  if (from_domain.empty()) {
    out.result = "none";  // no single From: domain to judge
    return out;
  }
  auto record = FindRecord(dns, from_domain);
  std::string org;
  if (record.ok() && record->empty()) {
    org = OrgDomain(from_domain, options.psl);
    if (org != from_domain) {
      record = FindRecord(dns, org);
    } else {
      org.clear();
    }
  }
  if (!record.ok()) {
    out.result = "temperror";
    return out;
  }
  if (record->empty()) {
    out.result = "none";
    return out;
  }
  out.record_domain = org.empty() ? out.from_domain : org;
  InitLibrary();
  DMARC_POLICY_T* pctx = opendmarc_policy_connect_init(
      reinterpret_cast<u_char*>(const_cast<char*>("0.0.0.0")),
      DMARC_POLICY_IP_TYPE_IPV4);
  if (pctx == nullptr) {
    out.result = "temperror";
    return out;
  }
  std::string from = out.from_domain;
  std::string rec = *record;
  opendmarc_policy_store_from_domain(pctx, U(from));
  if (opendmarc_policy_store_dmarc(pctx, U(rec), U(from),
                                   org.empty() ? nullptr : U(org)) !=
      DMARC_PARSE_OKAY) {
    opendmarc_policy_connect_shutdown(pctx);
    out.result = "permerror";
    return out;
  }
  if (spf) {
    // The SPF identity: the MAIL FROM domain, or the HELO name.
    std::string domain = spf->checked;
    auto at = domain.rfind('@');
    if (at != std::string::npos) domain = domain.substr(at + 1);
    domain = ToLower(domain);
    std::string human(SpfResultName(spf->result));
    opendmarc_policy_store_spf(pctx, U(domain), SpfOutcomeForLib(spf->result),
                               spf->identity == "helo"
                                   ? DMARC_POLICY_SPF_ORIGIN_HELO
                                   : DMARC_POLICY_SPF_ORIGIN_MAILFROM,
                               U(human));
  }
  for (const DkimSignature& s : dkim) {
    if (s.domain.empty()) continue;
    std::string d = s.domain, sel = s.selector, human = s.result;
    opendmarc_policy_store_dkim(pctx, U(d), U(sel), DkimOutcomeForLib(s.result),
                                U(human));
  }
  int verdict = opendmarc_get_policy_to_enforce(pctx);
  int p = 0, sp = 0;
  opendmarc_policy_fetch_p(pctx, &p);
  opendmarc_policy_fetch_sp(pctx, &sp);
  switch (verdict) {
    case DMARC_POLICY_PASS:
      out.result = "pass";
      out.policy = PolicyName(org.empty() || sp == 0 ? p : sp);
      break;
    case DMARC_POLICY_REJECT:
      out.result = "fail";
      out.policy = "reject";
      break;
    case DMARC_POLICY_QUARANTINE:
      out.result = "fail";
      out.policy = "quarantine";
      break;
    case DMARC_POLICY_NONE:
      out.result = "fail";
      out.policy = "none";
      break;
    case DMARC_POLICY_ABSENT:
      out.result = "none";
      break;
    default:
      out.result = "permerror";
      break;
  }
  out.published = out.policy;
  int pct = 100;
  if (opendmarc_policy_fetch_pct(pctx, &pct) == DMARC_PARSE_OKAY &&
      pct >= 0 && pct <= 100) {
    out.pct = pct;
  }
  if (out.result == "fail" && out.policy != "none" && out.pct < 100) {
    int roll = 0;
    if (options.sample) {
      roll = options.sample();
    } else {
      std::random_device rd;
      roll = std::uniform_int_distribution<int>(0, 99)(rd);
    }
    out.sampled = roll < out.pct;
    if (!out.sampled) out.policy = Milder(out.policy);
  }
  opendmarc_policy_connect_shutdown(pctx);
  return out;
}

}  // namespace zm::mailauth
