// Maildir delivery: tmp/<unique>, fsync, rename into new/, fsync new/.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/ta/mailbox/mailbox_internal.h"

namespace zm::mailbox::internal {
namespace {

// Creates `dir` (mode 0700) if missing. Returns 0 or an errno; *made says
// whether it was created.
int EnsureDir(const std::string& dir, const Identity& owner, bool* made) {
  *made = false;
  if (::mkdir(dir.c_str(), 0700) == 0) {
    *made = true;
    if (owner.set && ::geteuid() == 0 &&
        ::chown(dir.c_str(), owner.uid, owner.gid) != 0) {
      return errno;
    }
    return 0;
  }
  if (errno != EEXIST) return errno;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

// The host part of a Maildir name: '/' and ':' are not allowed there.
std::string SafeHost(std::string_view host) {
  std::string out;
  for (char c : host) {
    if (c == '/') {
      out += "\\057";
    } else if (c == ':') {
      out += "\\072";
    } else {
      out += c;
    }
  }
  return out.empty() ? "localhost" : out;
}

std::string UniqueName(std::string_view host) {
  static unsigned counter = 0;
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
  return StrCat(us / 1000000, ".M", us % 1000000, "P", ::getpid(), "Q",
                ++counter, ".", SafeHost(host));
}

}  // namespace

ta::Result DeliverMaildir(const MaildirRequest& req, const Content& c) {
  const std::string& relay = req.relay;
  for (const std::string& d :
       {req.dir, req.dir + "/tmp", req.dir + "/new", req.dir + "/cur"}) {
    if (!req.create && d == req.dir && !fs::Exists(d)) {
      return ErrnoResult(ENOENT, "open", d, relay);
    }
    bool made = false;
    if (int e = EnsureDir(d, req.owner, &made); e != 0) {
      return ErrnoResult(e, "mkdir", d, relay);
    }
    if (made) {
      // Make the new folder's name durable in its parent.
      auto slash = d.find_last_of('/');
      std::string parent = slash == 0 ? "/" : d.substr(0, slash);
      if (auto s = fs::FsyncDir(parent); !s.ok()) {
        return ta::Result::Deferred("4.3.0", relay, Message(s));
      }
    }
  }
  std::string name = UniqueName(req.hostname);
  std::string tmp = StrCat(req.dir, "/tmp/", name);
  std::string dst = StrCat(req.dir, "/new/", name);
  fs::UniqueFd fd(::open(
      tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoResult(errno, "create", tmp, relay);
  auto fail = [&](int err, std::string_view what) {
    ::unlink(tmp.c_str());
    return ErrnoResult(err, what, tmp, relay);
  };
  if (req.owner.set && ::geteuid() == 0 &&
      ::fchown(fd.get(), req.owner.uid, req.owner.gid) != 0) {
    return fail(errno, "fchown");
  }
  for (std::string_view part : {c.prefix, c.message}) {
    while (!part.empty()) {
      ssize_t n = ::write(fd.get(), part.data(), part.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail(errno, "write");
      }
      part.remove_prefix(static_cast<size_t>(n));
    }
  }
  if (::fsync(fd.get()) != 0) return fail(errno, "fsync");
  if (::close(fd.release()) != 0) return fail(errno, "close");
  if (auto s = fs::RenameNoReplace(tmp, dst); !s.ok()) {
    ::unlink(tmp.c_str());
    return ta::Result::Deferred("4.3.0", relay, Message(s));
  }
  if (auto s = fs::FsyncDir(req.dir + "/new"); !s.ok()) {
    // The message is there but maybe not durably: say so, and let the
    // retry risk a duplicate rather than a loss.
    return ta::Result::Deferred("4.3.0", relay, Message(s));
  }
  return ta::Result::Ok("2.0.0", relay,
                        relay == "file"
                            ? StrCat("delivered to maildir: ", req.dir, "/")
                            : "delivered to maildir");
}

}  // namespace zm::mailbox::internal
