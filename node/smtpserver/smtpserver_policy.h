// smtp-policy: the smtpserver's policy database, its source and lookups.
//
//   # key            attribute value ...        [= _tag]
//   _full_rights     relaycustnet +  fulltrustnet +
//   [127.0.0.0]/8    = _full_rights
//   [ipv6:::1]/128   = _full_rights
//   [192.0.2.0]/24   relaycustnet +  ratelimitmsgs 100,500
//   .spam.example    rejectsource +  message "go away"
//   abuser@          rejectsource +
//
// Companion files add keys (one per line, first word) that include a tag:
// smtp-policy.relay (= _full_rights), smtp-policy.mx (= _relaytarget),
// smtp-policy.spam (= _bulk_mail), localnames (= _localnames), each with a
// `.manual` twin; all are optional. A tag smtp-policy.src does not define
// gets ZMailer's meaning (_full_rights: relaycustnet + fulltrustnet +,
// _localnames: localdomain +, _relaytarget: relaytarget +, _bulk_mail:
// rejectsource +).
//
// `zmailer newdb` compiles the source (CompilePolicy) into the RocksDB
// relation db/smtp-policy: every key with its attributes resolved (its own
// first, then those of its `= _tag` macros, up to three levels deep; the
// first value of an attribute wins). Network keys are stored in canonical
// form ("[192.0.2.0]/24", "[ipv6:2001:db8::]/32"). Policy::Load opens the
// compiled database when it exists (and a running Policy follows each new
// generation newdb swaps in), else parses the source in memory; a source
// file edited after the last newdb also makes Load parse the source.
//
// Lookups:
//   ForIp("192.0.2.7")         longest matching prefix (IPv4, IPv6; an
//                              IPv4-mapped IPv6 address is its IPv4)
//   ForDomain("a.b.example")   a.b.example, .a.b.example, .b.example,
//                              .example, "." (the first key found)
//   ForAddress("u@a.example")  u@a.example, u@, then ForDomain("a.example")
// Built in, and overridable by an entry for the same prefix: 127.0.0.0/8
// and ::1 have full rights.
//
// A Policy is immutable after Load() except for that reopening, and every
// method is thread-safe.
#ifndef ZM_SMTPSERVER_SMTPSERVER_POLICY_H_
#define ZM_SMTPSERVER_SMTPSERVER_POLICY_H_

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::smtpserver {

// The attribute names smtp-policy.src may use (ZMailer's set).
bool IsPolicyAttribute(std::string_view name);

// The resolved attributes of one key, in order; the first value of a name
// wins.
class PolicyAttrs {
 public:
  PolicyAttrs() = default;
  explicit PolicyAttrs(std::vector<std::pair<std::string, std::string>> list)
      : list_(std::move(list)) {}

  // The value of `name` ("+", "-", "100,500", a message), if present.
  std::optional<std::string> Get(std::string_view name) const;
  // "+" -> true, "-" -> false, absent or anything else -> nullopt.
  std::optional<bool> Flag(std::string_view name) const;
  bool Is(std::string_view name) const { return Flag(name).value_or(false); }
  bool empty() const { return list_.empty(); }
  const std::vector<std::pair<std::string, std::string>>& list() const {
    return list_;
  }
  // The key it came from ("[192.0.2.0]/24", ".example.org"); "" = none.
  std::string key;

  // Storage form in the compiled database, and back.
  std::string Serialize() const;
  static PolicyAttrs Deserialize(std::string_view stored);

 private:
  std::vector<std::pair<std::string, std::string>> list_;
};

// `ratelimitmsgs N[,M]`: N messages and M recipients per window; positive
// is a soft (4xx) limit, negative a hard (5xx) one, 0 or absent none.
struct RateLimit {
  int64_t messages = 0;
  int64_t recipients = 0;
};
std::optional<RateLimit> ParseRateLimit(std::string_view value);

struct PrefixLengths;  // smtpserver_policy.cc

class Policy {
 public:
  struct Network {
    bool v6 = false;
    std::array<unsigned char, 16> addr{};
    int len = 0;
    bool trusted = false;  // relaycustnet + or fulltrustnet +
    std::string source;    // "file:line" or "built-in"
  };

  // Only the built-in defaults.
  Policy();

  // Opens db/smtp-policy when it was compiled, else reads
  // etc/smtp-policy.src (absent: the defaults only) and the companion
  // files present beside it.
  static absl::StatusOr<Policy> Load(const NodeDir& node);
  // The source in memory (tests); companions as (file name, text).
  static absl::StatusOr<Policy> Parse(
      std::string_view src_name, std::string_view src_text,
      const std::vector<std::pair<std::string, std::string>>& companions);

  PolicyAttrs ForIp(std::string_view ip) const;
  PolicyAttrs ForDomain(std::string_view domain) const;
  PolicyAttrs ForAddress(std::string_view address) const;

  // Whether a client at `ip` (textual IPv4 or IPv6) may relay:
  // relaycustnet + or fulltrustnet + of its network.
  bool IsTrusted(std::string_view ip) const;

  // Network keys of the source (empty when the compiled db is used).
  const std::vector<Network>& networks() const { return networks_; }
  // Whether lookups stay in memory (the source parsed at start), rather
  // than reading the compiled database.
  bool in_memory() const;
  // Number of policy entries parsed or compiled, for the log.
  size_t entry_count() const { return entry_count_; }
  // "db/smtp-policy.3" or "etc/smtp-policy.src" (for the log).
  const std::string& origin() const { return origin_; }

  // The compiled form: canonical key -> serialized attributes.
  std::vector<std::pair<std::string, std::string>> CompiledEntries() const;

  class Store;  // the key -> attributes map (memory or RocksDB)

 private:
  struct Blank {};
  explicit Policy(Blank) {}
  std::optional<std::string> Find(const std::string& key) const;

  std::vector<Network> networks_;
  size_t entry_count_ = 0;
  std::string origin_ = "built-in";
  std::shared_ptr<Store> store_;
};

// Whether attributes ForIp returned make a trusted network (relaycustnet
// + or fulltrustnet +), as IsTrusted.
bool IsTrustedNetwork(const PolicyAttrs& attrs);

// A textual IPv4 or IPv6 address as 16 bytes (IPv4 in the first 4; an
// IPv4-mapped IPv6 address is its IPv4); false when it is not one.
bool AddressBytes(std::string_view ip, bool* v6,
                  std::array<unsigned char, 16>* out);

// Parses "[a.b.c.d]/len", "[ipv6:x::y]/len" (also "[IPv6.x::y]"); no /len
// means the whole address.
bool ParseNetworkKey(std::string_view key, Policy::Network* out);
// The canonical key of a network, host bits cleared: "[192.0.2.0]/24".
std::string NetworkKey(const Policy::Network& n);

// `zmailer newdb`: compiles etc/smtp-policy.src and companions into
// db/smtp-policy (a new generation, swapped in atomically). Appends a line
// to `report` (may be null). InvalidArgument "file:line: what".
absl::Status CompilePolicy(const NodeDir& node, std::string* report);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_POLICY_H_
