// zm::fs: small, durable file-system primitives shared by every program.
//
// The spool's promise (no acknowledged message is lost) rests on these:
// write to a temporary name, fsync, rename, fsync the directory. Every
// function returns a status naming the path and the failing system call;
// none throws. All are thread-safe (they share no state).
//
//   zm::fs::UniqueFd fd = ...;
//   if (auto s = zm::fs::WriteAll(fd.get(), data); !s.ok()) return s;
//   if (auto s = zm::fs::Fsync(fd.get(), path); !s.ok()) return s;
#ifndef ZM_COMMON_FS_H_
#define ZM_COMMON_FS_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zm::fs {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A status for a failed system call: "<what> <path>: <strerror(errno)>".
// Out-of-space errors become ResourceExhausted, so callers can answer 452.
absl::Status ErrnoStatus(std::string_view what, std::string_view path, int err);

// Reads a whole file; refuses files larger than max_bytes.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     size_t max_bytes = 64u << 20);

// Writes all of data, retrying short writes and EINTR.
absl::Status WriteAll(int fd, std::string_view data, std::string_view path);

absl::Status Fsync(int fd, std::string_view path);
absl::Status FsyncDir(const std::string& dir);

// Flushes the whole file system holding `any_path` (syncfs(2)): one call
// makes every earlier write on it durable, which is how batches share one
// disk flush.
absl::Status SyncFs(const std::string& any_path);

// rename(2) that fails with AlreadyExists instead of replacing `to`.
absl::Status RenameNoReplace(const std::string& from, const std::string& to);

// Writes `contents` to dir/name durably: dir/.name.tmp, fsync, rename,
// fsync(dir). Replaces an existing file atomically.
absl::Status WriteFileAtomically(const std::string& dir,
                                 const std::string& name,
                                 std::string_view contents, int mode = 0644);

// Creates dir (and parents) with the given mode if absent.
absl::Status MakeDirs(const std::string& dir, int mode = 0755);

// Asks the file system to spread the folders created later inside `dir`
// over its block groups (ext4's "top of a directory hierarchy" flag,
// FS_TOPDIR_FL, chattr +T). Unimplemented on file systems without such a
// flag (tmpfs, xfs): callers treat failure as harmless.
absl::Status MarkTopDir(const std::string& dir);

// Names in a directory, without "." and "..", unsorted. Names starting with
// '.' are included only if include_hidden.
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir,
                                                 bool include_hidden = false);

bool Exists(const std::string& path);

// Free space, in KiB, available to unprivileged users on the file system of
// `path`.
absl::StatusOr<uint64_t> AvailableKiB(const std::string& path);

}  // namespace zm::fs

#endif  // ZM_COMMON_FS_H_
