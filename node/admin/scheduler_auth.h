// scheduler.auth: who may use the scheduler's admin interface (MAILQv2),
// with which rights, from which addresses (ZMailer's format).
//
//   nobody:nobody:SNMP QQ TT ETRN:[ipv6:::1]/128,[127.0.0.1]/32
//   root:secret:ALL:[127.0.0.1]/32
//
// Fields: user, plain-text password, tokens (ALL SNMP QQ TT ETRN KILL
// SMTPIP), address masks `[a.b.c.d]/len` or `[ipv6:...]/len`, separated by
// commas or spaces. The first line for the user whose mask matches the
// client's address wins. Clients on the UNIX socket count as 127.0.0.1 and
// ::1.
//
//   auto auth = zm::admin::LoadSchedulerAuth("/node/etc/scheduler.auth");
//   const AuthEntry* e = auth->Find("nobody", zm::admin::PeerAddress::Local());
#ifndef ZM_ADMIN_SCHEDULER_AUTH_H_
#define ZM_ADMIN_SCHEDULER_AUTH_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::admin {

enum Token : uint32_t {
  kTokenSnmp = 1u << 0,
  kTokenQq = 1u << 1,
  kTokenTt = 1u << 2,
  kTokenEtrn = 1u << 3,
  kTokenKill = 1u << 4,
  kTokenSmtpIp = 1u << 5,
  kTokenAll = 0xffffffffu,
};

// An IPv4 or IPv6 address as 16 bytes (IPv4 mapped into ::ffff:0:0/96).
struct PeerAddress {
  std::array<uint8_t, 16> bytes{};
  bool is_v4 = false;
  bool local = false;  // UNIX socket peer: matches 127.0.0.1 and ::1

  static PeerAddress Local();
  static std::optional<PeerAddress> Parse(std::string_view text);
};

struct AddressMask {
  std::array<uint8_t, 16> bytes{};
  bool is_v4 = false;
  int prefix = 0;  // bits, of the v4 or v6 address
  bool Matches(const PeerAddress& a) const;
};

struct AuthEntry {
  int line = 0;
  std::string user;
  std::string password;
  uint32_t tokens = 0;
  std::vector<AddressMask> masks;
};

struct SchedulerAuth {
  std::vector<AuthEntry> entries;
  // The first entry of `user` whose masks match `peer`, or null.
  const AuthEntry* Find(std::string_view user, const PeerAddress& peer) const;
};

// "file:line: what" on malformed lines.
absl::StatusOr<SchedulerAuth> ParseSchedulerAuth(std::string_view text,
                                                 const std::string& file);
absl::StatusOr<SchedulerAuth> LoadSchedulerAuth(const std::string& path);

// The token a command needs (SHOW QUEUE SHORT -> QQ, ...); 0 if the
// command needs none (QUIT). `command` is the whole request line.
uint32_t RequiredToken(std::string_view command);

// Lower-case hex MD5 of `data` (the MAILQv2 login proof is
// Md5Hex(challenge + password)).
std::string Md5Hex(std::string_view data);

// The gRPC admin proof (docs/admin-protocol.md): lower-case hex
// HMAC-SHA256 keyed with the password over
// "zmnode-admin-v1\n" user "\n" nonce "\n" method, where method is the
// call's full name ("/zmnode.admin.v1.SchedulerAdmin/KillMessage").
std::string AdminProof(std::string_view password, std::string_view user,
                       std::string_view nonce, std::string_view method);

// Constant-time comparison of two proofs.
bool ProofEquals(std::string_view a, std::string_view b);

}  // namespace zm::admin

#endif  // ZM_ADMIN_SCHEDULER_AUTH_H_
