#include "node/smtp/command.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <vector>

#include "node/common/strings.h"
#include "node/mail/xtext.h"

namespace zm::smtp {
namespace {

struct VerbName {
  std::string_view name;
  Verb verb;
};

constexpr std::array<VerbName, 20> kVerbs = {{
    {"HELO", Verb::kHelo},         {"EHLO", Verb::kEhlo}, {"MAIL", Verb::kMail},
    {"RCPT", Verb::kRcpt},         {"DATA", Verb::kData}, {"RSET", Verb::kRset},
    {"NOOP", Verb::kNoop},         {"QUIT", Verb::kQuit}, {"HELP", Verb::kHelp},
    {"VRFY", Verb::kVrfy},         {"EXPN", Verb::kExpn}, {"ETRN", Verb::kEtrn},
    {"STARTTLS", Verb::kStarttls}, {"AUTH", Verb::kAuth}, {"BDAT", Verb::kBdat},
    {"TURN", Verb::kTurn},         {"ATRN", Verb::kAtrn}, {"VERB", Verb::kVerb},
    {"SEND", Verb::kSend},         {"SOML", Verb::kSoml},
}};

bool IsAlpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(unsigned char c) { return IsAlpha(c) || IsDigit(c); }

// RFC 5322 atext.
bool IsAtext(unsigned char c) {
  if (IsAlnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

bool ConsumePrefixIgnoreCase(std::string_view* s, std::string_view prefix) {
  if (!StartsWithIgnoreCase(*s, prefix)) return false;
  s->remove_prefix(prefix.size());
  return true;
}

PathResult Fail(ReplyId id, std::string_view detail) {
  PathResult r;
  r.error = id;
  r.detail = std::string(detail);
  return r;
}

// Parses a domain (or address literal) that makes up all of `d`.
// `utf8` is set when it holds non-ASCII bytes.
bool ValidDomain(std::string_view d, bool* utf8) {
  if (d.empty() || d.size() > kMaxDomain) return false;
  if (d.front() == '[') {
    if (d.size() < 3 || d.back() != ']') return false;
    std::string_view lit = d.substr(1, d.size() - 2);
    for (unsigned char c : lit) {
      if (c < 33 || c > 126 || c == '[' || c == ']' || c == '\\') return false;
    }
    std::string s(lit);
    unsigned char buf[16];
    if (StartsWithIgnoreCase(lit, "IPv6:")) {
      return ::inet_pton(AF_INET6, s.c_str() + 5, buf) == 1;
    }
    if (IsDigit(static_cast<unsigned char>(lit.front()))) {
      return ::inet_pton(AF_INET, s.c_str(), buf) == 1;
    }
    // General address literal: Standardized-tag ":" dcontent.
    auto colon = lit.find(':');
    return colon != std::string_view::npos && colon > 0 &&
           colon + 1 < lit.size();
  }
  for (std::string_view label : Split(d, '.')) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (unsigned char c : label) {
      if (c >= 0x80) {
        *utf8 = true;
      } else if (!IsAlnum(c) && c != '-') {
        return false;
      }
    }
  }
  return true;
}

// Parses "<...>" at the front of *s. On success *s is left after the '>'.
// `address` gets the mailbox without source route; `utf8` whether it
// carries non-ASCII bytes. Returns an error text or "".
std::string ParsePath(std::string_view* s, bool null_ok, bool require_domain,
                      std::string* address, bool* utf8) {
  std::string_view in = *s;
  if (in.empty() || in.front() != '<') return "address must be in <>";
  size_t i = 1;
  // A source route "@a,@b:" is accepted and dropped (RFC 5321 C).
  if (i < in.size() && in[i] == '@') {
    size_t colon = in.find(':', i);
    size_t close = in.find('>', i);
    if (colon == std::string_view::npos || close < colon) {
      return "bad source route";
    }
    for (std::string_view hop : Split(in.substr(i, colon - i), ',')) {
      bool u = false;
      if (hop.size() < 2 || hop.front() != '@' ||
          !ValidDomain(hop.substr(1), &u)) {
        return "bad source route";
      }
    }
    i = colon + 1;
  }
  size_t start = i;
  // Local part.
  if (i < in.size() && in[i] == '"') {
    ++i;
    bool closed = false;
    while (i < in.size()) {
      unsigned char c = in[i];
      if (c == '"') {
        closed = true;
        ++i;
        break;
      }
      if (c == '\\') {
        if (i + 1 >= in.size()) break;
        unsigned char n = in[i + 1];
        if (n < 32 || n == 127) return "bad quoted local part";
        i += 2;
        continue;
      }
      if (c >= 0x80) {
        *utf8 = true;
      } else if (c < 32 || c == 127) {
        return "bad quoted local part";
      }
      ++i;
    }
    if (!closed) return "unterminated quoted local part";
  } else {
    size_t ls = i;
    while (i < in.size()) {
      unsigned char c = in[i];
      if (c >= 0x80) {
        *utf8 = true;
      } else if (!IsAtext(c) && c != '.') {
        break;
      }
      ++i;
    }
    std::string_view local = in.substr(ls, i - ls);
    if (!local.empty() && (local.front() == '.' || local.back() == '.' ||
                           local.find("..") != std::string_view::npos)) {
      return "bad local part";
    }
    if (local.empty()) {
      if (i < in.size() && in[i] == '>' && null_ok) {
        address->clear();
        *s = in.substr(i + 1);
        return "";
      }
      if (i < in.size() && in[i] == '>') return "empty address";
      return "bad local part";
    }
  }
  size_t local_len = i - start;
  if (local_len > kMaxLocalPart) return "local part too long";
  if (i < in.size() && in[i] == '@') {
    ++i;
    size_t ds = i;
    if (i < in.size() && in[i] == '[') {
      size_t close = in.find(']', i);
      if (close == std::string_view::npos) return "bad address literal";
      i = close + 1;
    } else {
      while (i < in.size() && in[i] != '>' && in[i] != ' ') ++i;
    }
    if (!ValidDomain(in.substr(ds, i - ds), utf8)) return "bad domain";
  } else {
    std::string_view local = in.substr(start, local_len);
    if (require_domain && !EqualsIgnoreCase(local, "postmaster")) {
      return "address needs a domain";
    }
  }
  if (i >= in.size() || in[i] != '>') return "address must be in <>";
  if (i - start > kMaxPath) return "address too long";
  address->assign(in.substr(start, i - start));
  *s = in.substr(i + 1);
  return "";
}

struct Param {
  std::string_view key;
  std::string_view value;
  bool has_value = false;
};

// Splits "KEY=VALUE KEY2" (RFC 5321 esmtp-param). Returns false on bad syntax.
bool SplitParams(std::string_view s, std::vector<Param>* out) {
  for (std::string_view tok : Split(s, ' ', /*skip_empty=*/true)) {
    Param p;
    auto eq = tok.find('=');
    p.key = tok.substr(0, eq);
    if (p.key.empty() || !IsAlnum(static_cast<unsigned char>(p.key.front()))) {
      return false;
    }
    for (unsigned char c : p.key) {
      if (!IsAlnum(c) && c != '-') return false;
    }
    if (eq != std::string_view::npos) {
      p.has_value = true;
      p.value = tok.substr(eq + 1);
      if (p.value.empty()) return false;
      for (unsigned char c : p.value) {
        if (c < 33 || c > 126 || c == '=') return false;
      }
    }
    for (const Param& q : *out) {
      if (EqualsIgnoreCase(q.key, p.key)) return false;  // duplicate
    }
    out->push_back(p);
  }
  return true;
}

// Common front: "FROM:" / "TO:", optional spaces (a common, harmless
// deviation), the path, then parameters after one space.
PathResult ParsePathArg(std::string_view arg, std::string_view keyword,
                        bool is_mail, const PathOptions& o,
                        std::vector<Param>* params) {
  if (!ConsumePrefixIgnoreCase(&arg, keyword)) {
    return Fail(ReplyId::kSyntax,
                StrCat("Syntax: ",
                       is_mail ? "MAIL FROM:<address>" : "RCPT TO:<address>"));
  }
  if (o.sloppy) {
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  }
  PathResult r;
  bool utf8 = false;
  // Sloppy clients leave out the angle brackets: the path is the first
  // word.
  std::string wrapped;
  if (o.sloppy && !arg.empty() && arg.front() != '<') {
    size_t end = std::min(arg.find(' '), arg.size());
    wrapped = StrCat("<", arg.substr(0, end), ">");
    arg.remove_prefix(end);
  }
  std::string err;
  if (!wrapped.empty()) {
    std::string_view w = wrapped;
    err = ParsePath(&w, is_mail, is_mail ? false : o.require_domain, &r.address,
                    &utf8);
    if (err.empty() && !w.empty()) err = "bad address";
  } else {
    err = ParsePath(&arg, is_mail, is_mail ? false : o.require_domain,
                    &r.address, &utf8);
  }
  ReplyId bad =
      is_mail ? ReplyId::kBadSenderAddress : ReplyId::kBadRecipientAddress;
  if (!err.empty()) {
    // A missing '<' is a command syntax error; the rest concern the address.
    if (err == "address must be in <>")
      return Fail(ReplyId::kSyntax,
                  StrCat("Syntax: ", is_mail ? "MAIL FROM:<address>"
                                             : "RCPT TO:<address>"));
    return Fail(bad, StrCat("Bad address syntax: ", err));
  }
  if (!arg.empty()) {
    if (arg.front() != ' ')
      return Fail(ReplyId::kSyntax, "Syntax error after address");
    if (!SplitParams(arg, params))
      return Fail(ReplyId::kSyntax, "Bad parameter syntax");
    if (!params->empty() && !o.ext.esmtp) {
      return Fail(ReplyId::kSyntaxParam, "Parameters need EHLO");
    }
  }
  if (utf8) r.mail.smtputf8 = true;  // provisional: checked by the caller
  return r;
}

bool ValidXtext(std::string_view v, std::string* decoded) {
  auto d = mail::XtextDecode(v);
  if (!d.ok()) return false;
  *decoded = std::move(*d);
  return true;
}

// RFC 2852: by-value = by-time ";" by-mode [ by-trace ]; by-time is a
// signed decimal of at most 9 digits, by-mode "N" or "R", by-trace "T".
// In R mode the time must be positive.
bool ValidBy(std::string_view v) {
  auto semi = v.find(';');
  if (semi == std::string_view::npos) return false;
  std::string_view time = v.substr(0, semi);
  std::string_view mode = v.substr(semi + 1);
  bool negative = false;
  if (!time.empty() && (time.front() == '-' || time.front() == '+')) {
    negative = time.front() == '-';
    time.remove_prefix(1);
  }
  if (time.empty() || time.size() > 9) return false;
  uint64_t n = 0;
  if (!ParseNumber(time, &n)) return false;
  if (mode.empty() || mode.size() > 2) return false;
  char m = static_cast<char>(mode[0] & ~0x20);
  if (m != 'N' && m != 'R') return false;
  if (mode.size() == 2 && (mode[1] & ~0x20) != 'T') return false;
  if (m == 'R' && (negative || n == 0)) return false;
  return true;
}

}  // namespace

Command ParseCommand(std::string_view line) {
  Command c;
  // Trailing spaces are forgiven (RFC 5321 does not allow them, clients
  // send them anyway).
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) {
    line.remove_suffix(1);
  }
  if (line.empty()) {
    c.verb = Verb::kEmpty;
    return c;
  }
  auto sp = line.find(' ');
  c.name = line.substr(0, sp);
  c.arg =
      sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  c.verb = Verb::kUnknown;
  for (const VerbName& v : kVerbs) {
    if (EqualsIgnoreCase(v.name, c.name)) c.verb = v.verb;
  }
  if (EqualsIgnoreCase(c.name, "SAML")) c.verb = Verb::kSaml;
  return c;
}

PathResult ParseMailFrom(std::string_view arg, const PathOptions& o) {
  std::vector<Param> params;
  PathResult r = ParsePathArg(arg, "FROM:", true, o, &params);
  if (!r.ok()) return r;
  bool addr_utf8 = r.mail.smtputf8;
  r.mail.smtputf8 = false;
  for (const Param& p : params) {
    if (EqualsIgnoreCase(p.key, "SIZE") && o.ext.size) {
      uint64_t n = 0;
      if (!p.has_value || !ParseNumber(p.value, &n)) {
        return Fail(ReplyId::kSyntax, "Bad SIZE value");
      }
      r.mail.size = n;
    } else if (EqualsIgnoreCase(p.key, "BODY") && o.ext.eightbitmime) {
      if (p.has_value && EqualsIgnoreCase(p.value, "7BIT")) {
        r.mail.body = "7BIT";
      } else if (p.has_value && EqualsIgnoreCase(p.value, "8BITMIME")) {
        r.mail.body = "8BITMIME";
      } else if (p.has_value && EqualsIgnoreCase(p.value, "BINARYMIME")) {
        return Fail(ReplyId::kSyntaxParam,
                    "BODY=BINARYMIME needs CHUNKING, not offered");
      } else {
        return Fail(ReplyId::kSyntax, "Bad BODY value");
      }
    } else if (EqualsIgnoreCase(p.key, "RET") && o.ext.dsn) {
      if (p.has_value && EqualsIgnoreCase(p.value, "FULL")) {
        r.mail.ret = "FULL";
      } else if (p.has_value && EqualsIgnoreCase(p.value, "HDRS")) {
        r.mail.ret = "HDRS";
      } else {
        return Fail(ReplyId::kSyntax, "Bad RET value");
      }
    } else if (EqualsIgnoreCase(p.key, "ENVID") && o.ext.dsn) {
      if (!p.has_value || p.value.size() > kMaxEnvid ||
          !ValidXtext(p.value, &r.mail.envid)) {
        return Fail(ReplyId::kSyntax, "Bad ENVID value");
      }
    } else if (EqualsIgnoreCase(p.key, "SMTPUTF8") && o.ext.smtputf8) {
      if (p.has_value) return Fail(ReplyId::kSyntax, "SMTPUTF8 takes no value");
      r.mail.smtputf8 = true;
    } else if (EqualsIgnoreCase(p.key, "AUTH") && o.ext.auth) {
      if (!p.has_value || p.value.size() > kMaxPath + 2 ||
          !ValidXtext(p.value, &r.mail.auth)) {
        return Fail(ReplyId::kSyntax, "Bad AUTH value");
      }
    } else if (EqualsIgnoreCase(p.key, "BY") && o.ext.deliverby) {
      if (!p.has_value || !ValidBy(p.value)) {
        return Fail(ReplyId::kSyntax, "Bad BY value");
      }
      r.mail.by = std::string(p.value);
    } else {
      return Fail(ReplyId::kSyntaxParam,
                  StrCat("Unsupported MAIL parameter ", p.key));
    }
  }
  if (addr_utf8 && !r.mail.smtputf8) {
    return Fail(ReplyId::kNeedSmtpUtf8, "");
  }
  return r;
}

PathResult ParseRcptTo(std::string_view arg, const PathOptions& o) {
  std::vector<Param> params;
  PathResult r = ParsePathArg(arg, "TO:", false, o, &params);
  if (!r.ok()) return r;
  // Whether a non-ASCII recipient is acceptable depends on the MAIL
  // command; the session checks r.mail.smtputf8 against it.
  for (const Param& p : params) {
    if (EqualsIgnoreCase(p.key, "NOTIFY") && o.ext.dsn) {
      if (!p.has_value) return Fail(ReplyId::kSyntax, "Bad NOTIFY value");
      std::vector<std::string> seen;
      bool never = false;
      for (std::string_view v : Split(p.value, ',')) {
        std::string up;
        for (char ch : v)
          up += static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
        if (up == "NEVER") {
          never = true;
        } else if (up != "SUCCESS" && up != "FAILURE" && up != "DELAY") {
          return Fail(ReplyId::kSyntax, "Bad NOTIFY value");
        }
        for (const auto& s : seen) {
          if (s == up) return Fail(ReplyId::kSyntax, "Bad NOTIFY value");
        }
        seen.push_back(up);
      }
      if (never && seen.size() > 1)
        return Fail(ReplyId::kSyntax, "NOTIFY=NEVER stands alone");
      for (size_t i = 0; i < seen.size(); ++i) {
        if (i) r.rcpt.notify += ",";
        r.rcpt.notify += seen[i];
      }
    } else if (EqualsIgnoreCase(p.key, "ORCPT") && o.ext.dsn) {
      if (!p.has_value || p.value.size() > kMaxOrcpt) {
        return Fail(ReplyId::kSyntax, "Bad ORCPT value");
      }
      auto semi = p.value.find(';');
      if (semi == std::string_view::npos || semi == 0 ||
          semi + 1 >= p.value.size()) {
        return Fail(ReplyId::kSyntax, "Bad ORCPT value");
      }
      std::string_view type = p.value.substr(0, semi);
      for (unsigned char c : type) {
        if (!IsAlnum(c) && c != '-')
          return Fail(ReplyId::kSyntax, "Bad ORCPT value");
      }
      std::string decoded;
      if (!ValidXtext(p.value.substr(semi + 1), &decoded)) {
        return Fail(ReplyId::kSyntax, "Bad ORCPT value");
      }
      r.rcpt.orcpt = StrCat(ToLower(type), ";", decoded);
    } else {
      return Fail(ReplyId::kSyntaxParam,
                  StrCat("Unsupported RCPT parameter ", p.key));
    }
  }
  return r;
}

bool ValidDomainName(std::string_view domain) {
  bool utf8 = false;
  return ValidDomain(domain, &utf8);
}

std::string AddressDomain(std::string_view address) {
  // The domain follows the last '@' outside a quoted local part.
  size_t at = std::string_view::npos;
  bool quoted = false;
  for (size_t i = 0; i < address.size(); ++i) {
    char c = address[i];
    if (c == '\\' && quoted) {
      ++i;
      continue;
    }
    if (c == '"') quoted = !quoted;
    if (c == '@' && !quoted) at = i;
  }
  if (at == std::string_view::npos) return "";
  return ToLower(StripTrailingDots(address.substr(at + 1)));
}

}  // namespace zm::smtp
