// Start-up recovery of the router's part of the spool.
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/router/router.h"

namespace zm::router {

absl::Status RemoveAbandonedSubmissions(const spool::Spool& spool,
                                        Logger& log) {
  auto removed = spool.RemoveAbandonedTemporaries();
  if (!removed.ok()) return removed.status();
  for (const std::string& n : *removed) {
    log.Info(n, "removed abandoned submission from public/");
  }
  return absl::OkStatus();
}

absl::Status RecoverSpool(const spool::Spool& spool, Logger& log) {
  if (auto s = spool.CreateLayout(); !s.ok()) return s;
  if (auto s = RemoveAbandonedSubmissions(spool, log); !s.ok()) return s;
  // tmp/ holds only our own half-written control files; no router runs
  // but us, so all of them are leftovers of a crash.
  auto tmp = spool.ListStaged(spool::kTmp, /*include_hidden=*/true);
  if (!tmp.ok()) return tmp.status();
  for (const std::string& n : *tmp) {
    std::string p = spool.Path(spool::kTmp, n);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
      return fs::ErrnoStatus("unlink", p, errno);
    }
  }
  // queue/<id> without transport/<id>: the router crashed between its two
  // renames; the scheduler never saw the message. Route it again.
  auto queued = fs::ListDir(spool.Path(spool::kQueue));
  if (!queued.ok()) return queued.status();
  std::sort(queued->begin(), queued->end());
  bool moved = false;
  for (const std::string& id : *queued) {
    if (fs::Exists(spool.Path(spool::kTransport, id))) continue;
    auto s = fs::RenameNoReplace(spool.Path(spool::kQueue, id),
                                 spool.Path(spool::kRouter, id));
    if (!s.ok()) {
      log.Error(id, StrCat("cannot move unscheduled queue/", id,
                           " back to router/: ", Message(s)));
      continue;
    }
    log.Info(id, "unscheduled message moved from queue/ back to router/");
    moved = true;
  }
  if (!moved) return absl::OkStatus();
  if (auto s = fs::FsyncDir(spool.Path(spool::kRouter)); !s.ok()) return s;
  return fs::FsyncDir(spool.Path(spool::kQueue));
}

}  // namespace zm::router
