// Who the node's programs run as, and the switch to that user.
//
// Started as root, the supervisor picks the node user (NodeUser), makes
// what that user writes its own (ChownNodeTree), switches itself to it
// keeping only the capabilities it hands on, and runs every program as
// that user (Switch, applied between fork and exec). A program that binds
// a port below 1024 gets CAP_NET_BIND_SERVICE for that and drops it once
// bound (DropCapabilities); the scheduler keeps CAP_SETUID/CAP_SETGID to
// run transport agents as the users scheduler.conf names, and CAP_KILL to
// stop them.
//
//   auto user = privileges::NodeUser(node, configured_name, &why);
//   privileges::Switch sw = privileges::SwitchTo(*user, privileges::kSetuid);
//   if (fork() == 0) { if (int e = privileges::Apply(sw)) _exit(127); ... }
#ifndef ZM_DAEMON_PRIVILEGES_H_
#define ZM_DAEMON_PRIVILEGES_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::privileges {

// Capability bits (linux/capability.h numbers) as a mask.
constexpr uint64_t Cap(int n) { return uint64_t{1} << n; }
constexpr uint64_t kKill = Cap(5);             // CAP_KILL
constexpr uint64_t kSetgid = Cap(6);           // CAP_SETGID
constexpr uint64_t kSetuid = Cap(7);           // CAP_SETUID
constexpr uint64_t kNetBindService = Cap(10);  // CAP_NET_BIND_SERVICE

struct User {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary, the primary group included
};

// The user `name` (a name or a number) with its groups. NotFound if unknown.
absl::StatusOr<User> LookupUser(const std::string& name);

// The node user when started as root: `configured` (smtpserver.conf's
// PARAM user) if set, else the owner of the node directory if that is not
// root; nullopt when neither applies (the node then stays root, and *why
// says so).
absl::StatusOr<std::optional<User>> NodeUser(const NodeDir& node,
                                             const std::string& configured);

// Makes the node's writable folders (spool, db, log, run) and everything
// in them belong to `user`, the folders set-group-id (so what root writes
// there, e.g. `sendmail` run by root, is readable by the user's group);
// etc/ stays root's but what in it is not readable by others becomes
// readable by the user's group. mail/ is left alone (mailboxes belong to
// their users). Symbolic links are not followed.
absl::Status ChownNodeTree(const NodeDir& node, const User& user);

// A change of identity and capabilities, prepared before fork() and
// applied in the child with system calls only (async-signal-safe).
struct Switch {
  bool change_ids = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  // Kept in the effective, permitted, inheritable and ambient sets (so an
  // exec'd program keeps them); every other capability goes.
  uint64_t keep = 0;
};
Switch SwitchTo(const User& user, uint64_t keep);
// Applies `s` to the calling thread (and, for the ids, the process when it
// has one thread: call it between fork and exec, or before any thread
// starts). 0, or the errno of the step that failed.
int Apply(const Switch& s);

// Clears every capability (effective, permitted, inheritable, ambient) of
// the calling thread; call it before threads start.
absl::Status DropCapabilities();
// Clears the ambient and inheritable sets: the caller keeps its
// capabilities, the programs it runs do not inherit them.
void ClearInheritance();
// The effective capabilities of the calling thread.
uint64_t EffectiveCapabilities();
// Whether this process may run others as another user (root, or
// CAP_SETUID and CAP_SETGID in its effective set).
bool CanSwitchUsers();

}  // namespace zm::privileges

#endif  // ZM_DAEMON_PRIVILEGES_H_
