#include "node/smtpserver/smtpserver_ident.h"

#include "node/common/strings.h"

namespace zm::smtpserver {
namespace {

// RFC 1413: a user id is 1 to 512 octets.
constexpr size_t kMaxUserId = 512;
// A token (operating system, character set, error type): RFC 1413 allows
// up to 64 characters.
constexpr size_t kMaxToken = 64;

// Cuts `*s` at the first ':' and returns what came before it; false when
// there is none.
bool CutField(std::string_view* s, std::string_view* field) {
  size_t colon = s->find(':');
  if (colon == std::string_view::npos) return false;
  *field = s->substr(0, colon);
  s->remove_prefix(colon + 1);
  return true;
}

bool IsToken(std::string_view t) {
  if (t.empty() || t.size() > kMaxToken) return false;
  for (char c : t) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool PortIs(std::string_view text, int want) {
  int port = 0;
  return ParseNumber(Trim(text), &port) && port == want;
}

IdentReply Invalid(std::string what) {
  IdentReply r;
  r.kind = IdentReply::Kind::kInvalid;
  r.error = std::move(what);
  return r;
}

}  // namespace

std::string IdentQuery(int client_port, int server_port) {
  return StrCat(client_port, " , ", server_port, "\r\n");
}

IdentReply ParseIdentReply(std::string_view line, int client_port,
                           int server_port) {
  if (line.size() + 2 > kMaxIdentReply) return Invalid("reply too long");
  if (line.find('\0') != std::string_view::npos ||
      line.find('\r') != std::string_view::npos ||
      line.find('\n') != std::string_view::npos) {
    return Invalid("control character in the reply");
  }
  std::string_view rest = line, pair, type;
  if (!CutField(&rest, &pair) || !CutField(&rest, &type)) {
    return Invalid("not a port pair and reply type");
  }
  size_t comma = pair.find(',');
  if (comma == std::string_view::npos ||
      !PortIs(pair.substr(0, comma), client_port) ||
      !PortIs(pair.substr(comma + 1), server_port)) {
    return Invalid("not the port pair asked about");
  }
  type = Trim(type);
  if (EqualsIgnoreCase(type, "ERROR")) {
    std::string_view e = Trim(rest);
    if (!IsToken(e)) return Invalid("bad error type");
    bool known = e == "INVALID-PORT" || e == "NO-USER" || e == "HIDDEN-USER" ||
                 e == "UNKNOWN-ERROR" ||
                 (e.size() > 1 && (e.front() == 'X' || e.front() == 'x'));
    if (!known) return Invalid("unknown error type");
    IdentReply r;
    r.kind = IdentReply::Kind::kError;
    r.error = std::string(e);
    return r;
  }
  if (!EqualsIgnoreCase(type, "USERID")) return Invalid("unknown reply type");
  std::string_view opsys;
  if (!CutField(&rest, &opsys)) return Invalid("USERID without a user id");
  // opsys [ "," charset ]
  std::string_view os = opsys, charset;
  if (size_t c = opsys.find(','); c != std::string_view::npos) {
    os = opsys.substr(0, c);
    charset = Trim(opsys.substr(c + 1));
    if (!IsToken(charset)) return Invalid("bad character set");
  }
  os = Trim(os);
  if (!IsToken(os)) return Invalid("bad operating system field");
  std::string_view user = Trim(rest);
  if (user.empty()) return Invalid("empty user id");
  if (user.size() > kMaxUserId) return Invalid("user id too long");
  // RFC 1413 allows any octet but NUL, CR and LF; we take printable ASCII
  // only, as it goes into the log and a header comment.
  for (char c : user) {
    if (c < 0x20 || c > 0x7e) return Invalid("unprintable user id");
  }
  IdentReply r;
  r.kind = IdentReply::Kind::kUserId;
  r.opsys = charset.empty() ? std::string(os) : StrCat(os, " , ", charset);
  r.user = std::string(user);
  return r;
}

}  // namespace zm::smtpserver
