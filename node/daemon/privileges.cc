#include "node/daemon/privileges.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::privileges {
namespace {

namespace stdfs = std::filesystem;

struct CapSets {
  uint64_t effective = 0, permitted = 0, inheritable = 0;
};

int GetCaps(CapSets* out) {
  __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) return errno;
  auto join = [](uint32_t lo, uint32_t hi) {
    return (uint64_t{hi} << 32) | lo;
  };
  out->effective = join(data[0].effective, data[1].effective);
  out->permitted = join(data[0].permitted, data[1].permitted);
  out->inheritable = join(data[0].inheritable, data[1].inheritable);
  return 0;
}

int SetCaps(const CapSets& c) {
  __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    data[i].effective = static_cast<uint32_t>(c.effective >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(c.permitted >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(c.inheritable >> (32 * i));
  }
  return ::syscall(SYS_capset, &hdr, data) == 0 ? 0 : errno;
}

absl::StatusOr<User> FromPasswd(const struct passwd& pw) {
  User u;
  u.name = pw.pw_name;
  u.uid = pw.pw_uid;
  u.gid = pw.pw_gid;
  int n = 64;
  for (int tries = 0; tries < 4; ++tries) {
    u.groups.assign(static_cast<size_t>(n), 0);
    int got = n;
    if (::getgrouplist(pw.pw_name, pw.pw_gid, u.groups.data(), &got) >= 0) {
      u.groups.resize(static_cast<size_t>(got));
      return u;
    }
    n = got > n ? got : n * 4;
  }
  return absl::ResourceExhaustedError(
      StrCat("user ", u.name, " is in too many groups"));
}

absl::StatusOr<User> LookupUid(uid_t uid) {
  std::vector<char> buf(16384);
  struct passwd pw, *found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 ||
      found == nullptr) {
    return absl::NotFoundError(StrCat("no user with uid ", uid));
  }
  return FromPasswd(pw);
}

// What a walk does to each file of a tree.
struct Walk {
  uid_t uid;
  gid_t gid;
  bool readable_only;  // etc/: group read access, owner unchanged
};

// 0, or the errno of what failed on `path`.
int Visit(const std::string& path, const Walk& w) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT ? 0 : errno;
  if (S_ISLNK(st.st_mode)) return 0;  // never followed
  if (w.readable_only) {
    bool dir = S_ISDIR(st.st_mode);
    mode_t need = dir ? (S_IRGRP | S_IXGRP) : S_IRGRP;
    mode_t other = dir ? (S_IROTH | S_IXOTH) : S_IROTH;
    if ((st.st_mode & other) == other) return 0;
    if (st.st_gid == w.gid && (st.st_mode & need) == need) return 0;
    if (st.st_uid != 0) return 0;  // not root's: the operator's choice
    if (::lchown(path.c_str(), static_cast<uid_t>(-1), w.gid) != 0 ||
        ::chmod(path.c_str(), (st.st_mode & 07777 & ~S_IWGRP) | need) != 0) {
      return errno;
    }
    return 0;
  }
  if ((st.st_uid != w.uid || st.st_gid != w.gid) &&
      ::lchown(path.c_str(), w.uid, w.gid) != 0) {
    return errno;
  }
  // Set-group-id folders: what root writes there (`sendmail` run by root
  // puts files in spool/public) gets the node user's group, so the node
  // can read it.
  if (S_ISDIR(st.st_mode) && (st.st_mode & S_ISGID) == 0 &&
      ::chmod(path.c_str(), (st.st_mode & 07777) | S_ISGID) != 0) {
    return errno;
  }
  return 0;
}

absl::Status WalkTree(const std::string& dir, const Walk& w) {
  std::string what = w.readable_only ? "chgrp" : "chown";
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    return errno == ENOENT ? absl::OkStatus()
                           : fs::ErrnoStatus("stat", dir, errno);
  }
  if (int e = Visit(dir, w)) return fs::ErrnoStatus(what, dir, e);
  if (!S_ISDIR(st.st_mode)) return absl::OkStatus();
  // Symbolic links to folders are not followed (the default options).
  std::error_code ec;
  for (stdfs::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string path = it->path().string();
    if (int e = Visit(path, w)) return fs::ErrnoStatus(what, path, e);
  }
  if (ec) return fs::ErrnoStatus("walk", dir, ec.value());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<User> LookupUser(const std::string& name) {
  int64_t id = 0;
  if (ParseNumber(std::string_view(name), &id) && id >= 0) {
    return LookupUid(static_cast<uid_t>(id));
  }
  std::vector<char> buf(16384);
  struct passwd pw, *found = nullptr;
  if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 ||
      found == nullptr) {
    return absl::NotFoundError(StrCat("no user ", name));
  }
  return FromPasswd(pw);
}

absl::StatusOr<std::optional<User>> NodeUser(const NodeDir& node,
                                             const std::string& configured) {
  if (!configured.empty()) {
    auto u = LookupUser(configured);
    if (!u.ok()) return u.status();
    return std::optional<User>(*u);
  }
  struct stat st;
  if (::stat(node.home.c_str(), &st) != 0) {
    return fs::ErrnoStatus("stat", node.home, errno);
  }
  if (st.st_uid == 0) return std::optional<User>();
  auto u = LookupUid(st.st_uid);
  if (!u.ok()) return u.status();
  return std::optional<User>(*u);
}

absl::Status ChownNodeTree(const NodeDir& node, const User& user) {
  for (const std::string& d :
       {node.spool(), node.db(), node.log(), node.run()}) {
    if (auto s = WalkTree(d, Walk{user.uid, user.gid, false}); !s.ok()) {
      return s;
    }
  }
  return WalkTree(node.etc(), Walk{user.uid, user.gid, true});
}

Switch SwitchTo(const User& user, uint64_t keep) {
  Switch s;
  s.change_ids = true;
  s.uid = user.uid;
  s.gid = user.gid;
  s.groups = user.groups;
  s.keep = keep;
  return s;
}

int Apply(const Switch& s) {
  CapSets now;
  if (int e = GetCaps(&now)) return e;
  if (s.change_ids) {
    // Keep the permitted set across the uid change; trimmed below.
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return errno;
    if (::syscall(SYS_setgroups, s.groups.size(), s.groups.data()) != 0 ||
        ::syscall(SYS_setresgid, s.gid, s.gid, s.gid) != 0 ||
        ::syscall(SYS_setresuid, s.uid, s.uid, s.uid) != 0) {
      return errno;
    }
    if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return errno;
    // The uid change made the process undumpable: no core files, and the
    // leak checker cannot attach. A process of the same user still cannot
    // trace it while it holds capabilities that user lacks.
    if (::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) return errno;
  }
  uint64_t keep = s.keep & now.permitted;
  CapSets want{keep, keep, keep};
  if (int e = SetCaps(want)) return e;
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 &&
      errno != EINVAL) {
    return errno;
  }
  for (int bit = 0; bit < 64; ++bit) {
    if ((keep & Cap(bit)) != 0 &&
        ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, bit, 0, 0) != 0) {
      return errno;
    }
  }
  return 0;
}

absl::Status DropCapabilities() {
  ClearInheritance();
  if (int e = SetCaps(CapSets{})) return fs::ErrnoStatus("capset", "", e);
  return absl::OkStatus();
}

void ClearInheritance() {
  (void)::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  CapSets c;
  if (GetCaps(&c) == 0 && c.inheritable != 0) {
    c.inheritable = 0;
    (void)SetCaps(c);
  }
}

uint64_t EffectiveCapabilities() {
  CapSets c;
  return GetCaps(&c) == 0 ? c.effective : 0;
}

bool CanSwitchUsers() {
  if (::geteuid() == 0) return true;
  uint64_t need = kSetuid | kSetgid;
  return (EffectiveCapabilities() & need) == need;
}

}  // namespace zm::privileges
