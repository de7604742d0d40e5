// DMARC: the record is fetched through zm::dns::Resolver and parsed by
// libopendmarc (p=, sp=, adkim=, aspf=, pct=); identifier alignment,
// pct= sampling and the organizational domain (the Public Suffix List,
// psl.cc: the one list of the process) are ours.
#include <string.h>
#include <sys/types.h>

extern "C" {
#include <opendmarc/dmarc.h>
}

#include <mutex>
#include <random>

#include "absl/status/status.h"
#include "node/common/strings.h"
#include "node/dns/resolver.h"
#include "node/mailauth/mailauth.h"

namespace zm::mailauth {
namespace {

// libopendmarc keeps its settings in process-wide state of its own; it is
// set up once, before the first evaluation, without a public suffix list:
// it only parses records here (its own alignment check would need a second
// copy of the list, and treats a subdomain of a public suffix as aligned
// with the suffix, against RFC 7489 section 3.1).
void InitLibrary() {
  static std::once_flag once;
  std::call_once(once, [] {
    OPENDMARC_LIB_T lib;
    ::memset(&lib, 0, sizeof lib);
    lib.tld_type = OPENDMARC_TLD_TYPE_NONE;
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

// RFC 7489 section 3.1: strict alignment wants the same name, relaxed the
// same organizational domain.
bool Aligned(std::string_view id, std::string_view from, int mode,
             const PublicSuffixList* psl) {
  std::string a = ToLower(StripTrailingDots(id));
  std::string b = ToLower(StripTrailingDots(from));
  if (a.empty()) return false;
  if (a == b) return true;
  return mode != DMARC_RECORD_A_STRICT && OrgDomain(a, psl) == OrgDomain(b, psl);
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
  if (opendmarc_policy_store_dmarc(pctx, U(rec), U(from),
                                   org.empty() ? nullptr : U(org)) !=
      DMARC_PARSE_OKAY) {
    opendmarc_policy_connect_shutdown(pctx);
    out.result = "permerror";
    return out;
  }
  int p = 0, sp = 0, adkim = 0, aspf = 0;
  opendmarc_policy_fetch_p(pctx, &p);
  opendmarc_policy_fetch_sp(pctx, &sp);
  opendmarc_policy_fetch_adkim(pctx, &adkim);
  opendmarc_policy_fetch_aspf(pctx, &aspf);
  // A pass counts when its identifier is aligned with the From: domain:
  // SPF's MAIL FROM domain (or HELO name), any DKIM signature's d=.
  bool pass = false;
  if (spf && spf->result == SpfResult::kPass) {
    std::string_view domain = spf->checked;
    auto at = domain.rfind('@');
    if (at != std::string_view::npos) domain = domain.substr(at + 1);
    pass = Aligned(domain, from, aspf, options.psl);
  }
  for (const DkimSignature& s : dkim) {
    if (pass) break;
    pass = s.result == "pass" && Aligned(s.domain, from, adkim, options.psl);
  }
  // sp= applies when the record is the organizational domain's.
  const int applied = !org.empty() && sp != DMARC_RECORD_P_UNSPECIFIED ? sp : p;
  out.result = pass ? "pass" : "fail";
  out.policy = PolicyName(applied);
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
