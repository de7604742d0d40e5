#include "node/admin/scheduler_auth.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"

namespace zm::admin {

PeerAddress PeerAddress::Local() {
  PeerAddress a;
  a.local = true;
  return a;
}

std::optional<PeerAddress> PeerAddress::Parse(std::string_view text) {
  std::string t(text);
  PeerAddress a;
  in_addr v4;
  in6_addr v6;
  if (::inet_pton(AF_INET, t.c_str(), &v4) == 1) {
    a.is_v4 = true;
    a.bytes[10] = a.bytes[11] = 0xff;
    std::memcpy(&a.bytes[12], &v4, 4);
    return a;
  }
  if (::inet_pton(AF_INET6, t.c_str(), &v6) == 1) {
    std::memcpy(a.bytes.data(), &v6, 16);
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0,    0,
                                        0, 0, 0, 0, 0xff, 0xff};
    a.is_v4 = std::memcmp(a.bytes.data(), kMapped, 12) == 0;
    return a;
  }
  return std::nullopt;
}

namespace {

bool PrefixEqual(const uint8_t* a, const uint8_t* b, int bits) {
  int bytes = bits / 8;
  if (std::memcmp(a, b, bytes) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[bytes] & mask) == (b[bytes] & mask);
}

}  // namespace

bool AddressMask::Matches(const PeerAddress& a) const {
  if (a.local) {
    auto v4 = PeerAddress::Parse("127.0.0.1");
    auto v6 = PeerAddress::Parse("::1");
    return Matches(*v4) || Matches(*v6);
  }
  if (is_v4 != a.is_v4) return false;
  if (is_v4) return PrefixEqual(&bytes[12], &a.bytes[12], prefix);
  return PrefixEqual(bytes.data(), a.bytes.data(), prefix);
}

const AuthEntry* SchedulerAuth::Find(std::string_view user,
                                     const PeerAddress& peer) const {
  for (const auto& e : entries) {
    if (e.user != user) continue;
    for (const auto& m : e.masks) {
      if (m.Matches(peer)) return &e;
    }
  }
  return nullptr;
}

absl::StatusOr<SchedulerAuth> ParseSchedulerAuth(std::string_view text,
                                                 const std::string& file) {
  SchedulerAuth auth;
  int number = 0;
  for (std::string_view raw : Split(text, '\n')) {
    ++number;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string_view line = Trim(raw);
    if (line.empty() || line[0] == '#') continue;
    if (line.size() > 4096) return config::Error(file, number, "line too long");
    // user:password:tokens:masks -- the masks hold ':' (IPv6), so split
    // only the first three separators.
    std::vector<std::string_view> f;
    std::string_view rest = line;
    for (int i = 0; i < 3; ++i) {
      size_t c = rest.find(':');
      if (c == std::string_view::npos) {
        return config::Error(file, number,
                             "expected user:password:TOKENS:[ip]/len,...");
      }
      f.push_back(rest.substr(0, c));
      rest.remove_prefix(c + 1);
    }
    f.push_back(rest);
    AuthEntry e;
    e.line = number;
    e.user = std::string(Trim(f[0]));
    e.password = std::string(f[1]);
    if (e.user.empty()) return config::Error(file, number, "empty user name");
    for (auto tok : SplitWhitespace(f[2])) {
      std::string t = ToLower(tok);
      if (t == "all")
        e.tokens |= kTokenAll;
      else if (t == "snmp")
        e.tokens |= kTokenSnmp;
      else if (t == "qq")
        e.tokens |= kTokenQq;
      else if (t == "tt")
        e.tokens |= kTokenTt;
      else if (t == "etrn")
        e.tokens |= kTokenEtrn;
      else if (t == "kill")
        e.tokens |= kTokenKill;
      else if (t == "smtpip")
        e.tokens |= kTokenSmtpIp;
      else
        return config::Error(file, number, StrCat("unknown token '", tok, "'"));
    }
    std::string masks(f[3]);
    for (char& c : masks) {
      if (c == ',' || c == '\t') c = ' ';
    }
    for (auto m : SplitWhitespace(masks)) {
      auto bad = [&] {
        return config::Error(file, number,
                             StrCat("bad address mask '", m, "' ([ip]/len)"));
      };
      if (m.size() < 3 || m[0] != '[') return bad();
      size_t close = m.find(']');
      if (close == std::string_view::npos) return bad();
      std::string_view addr = m.substr(1, close - 1);
      std::string_view len = m.substr(close + 1);
      bool v6 = StartsWithIgnoreCase(addr, "ipv6:");
      if (v6) addr.remove_prefix(5);
      auto pa = PeerAddress::Parse(addr);
      if (!pa ||
          (v6 && pa->is_v4 && addr.find(':') == std::string_view::npos)) {
        return bad();
      }
      AddressMask mask;
      mask.bytes = pa->bytes;
      mask.is_v4 = pa->is_v4;
      int max = mask.is_v4 ? 32 : 128;
      mask.prefix = max;
      if (!len.empty()) {
        if (len[0] != '/' || !ParseNumber(len.substr(1), &mask.prefix) ||
            mask.prefix < 0 || mask.prefix > max) {
          return bad();
        }
      }
      e.masks.push_back(mask);
    }
    if (e.masks.empty()) {
      return config::Error(file, number,
                           "no address masks (e.g. [127.0.0.1]/32)");
    }
    auth.entries.push_back(std::move(e));
  }
  return auth;
}

absl::StatusOr<SchedulerAuth> LoadSchedulerAuth(const std::string& path) {
  auto text = fs::ReadFile(path, 1u << 20);
  if (!text.ok()) return text.status();
  return ParseSchedulerAuth(*text, path);
}

uint32_t RequiredToken(std::string_view command) {
  std::vector<std::string_view> w = SplitWhitespace(command);
  if (w.empty()) return 0;
  std::string verb = ToLower(w[0]);
  std::string what = w.size() > 1 ? ToLower(w[1]) : "";
  std::string third = w.size() > 2 ? ToLower(w[2]) : "";
  if (verb == "quit") return 0;
  if (verb == "etrn" || verb == "runq") return kTokenEtrn;
  if (verb == "kill") return kTokenKill;
  if (verb == "watch") return kTokenTt;  // WATCH EVENTS
  if (verb == "show") {
    if (what == "snmp" || what == "counters") return kTokenSnmp;
    if (what == "queue" && third == "short") return kTokenQq;
    if (what == "messages") return kTokenQq;
    return kTokenTt;  // SHOW QUEUE THREADS, SHOW THREAD
  }
  return kTokenAll;  // unknown commands: only ALL may try them
}

std::string Md5Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

std::string AdminProof(std::string_view password, std::string_view user,
                       std::string_view nonce, std::string_view method) {
  std::string msg = StrCat("zmnode-admin-v1\n", user, "\n", nonce, "\n", method);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), password.data(), static_cast<int>(password.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md,
       &len);
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

bool ProofEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace zm::admin
