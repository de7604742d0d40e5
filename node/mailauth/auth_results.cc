// The Authentication-Results: header (RFC 8601) and the log summary.
#include "node/common/strings.h"
#include "node/mailauth/mailauth.h"

namespace zm::mailauth {
namespace {

// RFC 8601 pvalue: an address or a token goes as it is; anything else
// (spaces, specials) as a quoted-string.
std::string PValue(std::string_view v) {
  bool plain = !v.empty();
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-/=?^_`{|}~.@").find(c) !=
                  std::string_view::npos;
    if (!ok) plain = false;
  }
  if (plain) return std::string(v);
  std::string q = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') q += '\\';
    if (c != '\r' && c != '\n') q += c;
  }
  return q + "\"";
}

std::string Comment(std::string_view text) {
  std::string c;
  for (char ch : text) {
    if (ch == '(' || ch == ')' || ch == '\\') c += '\\';
    if (ch != '\r' && ch != '\n') c += ch;
  }
  return StrCat(" (", c, ")");
}

}  // namespace

std::string FormatAuthenticationResults(const AuthResults& r) {
  std::vector<std::string> parts;
  if (r.spf) {
    const SpfOutcome& s = *r.spf;
    parts.push_back(StrCat("spf=", SpfResultName(s.result),
                           s.identity == "helo" ? " smtp.helo=" : " smtp.mailfrom=",
                           PValue(s.checked)));
  }
  if (r.dkim_checked) {
    if (r.dkim.empty()) parts.push_back("dkim=none");
    for (const DkimSignature& d : r.dkim) {
      std::string p = StrCat("dkim=", d.result);
      if (!d.reason.empty()) p += Comment(d.reason);
      if (!d.domain.empty()) StrAppend(&p, " header.d=", PValue(d.domain));
      if (!d.selector.empty()) StrAppend(&p, " header.s=", PValue(d.selector));
      if (!d.algorithm.empty()) {
        StrAppend(&p, " header.a=", PValue(d.algorithm));
      }
      if (!d.b_prefix.empty()) StrAppend(&p, " header.b=", PValue(d.b_prefix));
      parts.push_back(std::move(p));
    }
  }
  if (r.dmarc) {
    const DmarcOutcome& d = *r.dmarc;
    std::string p = StrCat("dmarc=", d.result);
    if (!d.sampled) {
      p += Comment(StrCat("p=", d.published, " pct=", std::to_string(d.pct),
                          ", not sampled"));
    }
    if (!d.policy.empty()) StrAppend(&p, " policy.dmarc=", d.policy);
    if (!d.from_domain.empty()) {
      StrAppend(&p, " header.from=", PValue(d.from_domain));
    }
    parts.push_back(std::move(p));
  }
  std::string h = StrCat("Authentication-Results: ", r.authserv_id);
  if (parts.empty()) return h + "; none\n";
  for (const std::string& p : parts) StrAppend(&h, ";\n\t", p);
  return h + "\n";
}

std::string Summary(const AuthResults& r) {
  std::string s;
  auto add = [&s](std::string_view part) {
    if (!s.empty()) s += ' ';
    s += part;
  };
  if (r.spf) add(StrCat("spf=", SpfResultName(r.spf->result)));
  if (r.dkim_checked) {
    if (r.dkim.empty()) add("dkim=none");
    for (const DkimSignature& d : r.dkim) {
      add(StrCat("dkim=", d.result, ":", d.domain.empty() ? "-" : d.domain));
    }
  }
  if (r.dmarc) {
    const DmarcOutcome& d = *r.dmarc;
    std::string policy;
    if (!d.sampled) {
      policy = StrCat("(p=", d.published, " pct=", std::to_string(d.pct),
                      "->", d.policy, ")");
    } else if (!d.policy.empty()) {
      policy = StrCat("(p=", d.policy, ")");
    }
    add(StrCat("dmarc=", d.result, policy, ":",
               d.from_domain.empty() ? "-" : d.from_domain));
  }
  return s.empty() ? "none" : s;
}

}  // namespace zm::mailauth
