// One batch: prepare control files, make them durable, rename.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mail/control.h"
#include "node/mail/envelope.h"
#include "node/mail/queue_id.h"
#include "node/router/router.h"
#include "node/spool/group_commit.h"

namespace zm::router {
namespace {

enum class Outcome { kPrepared, kDone, kRetry };

struct Prepared {
  fs::UniqueFd fd;  // the control temporary, open until the batch's flush
  std::string tmp;  // its path, tmp/<hh>/<id>
  std::string id;
  std::string sender;
  uint64_t size = 0;
  size_t nrcpt = 0;
};

// A read-only view of a whole message file.
class MappedFile {
 public:
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }
  absl::Status Open(const std::string& path) {
    fs::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return fs::ErrnoStatus("open", path, errno);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0)
      return fs::ErrnoStatus("fstat", path, errno);
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError("not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ == 0) return absl::OkStatus();
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) return fs::ErrnoStatus("mmap", path, errno);
    data_ = p;
    return absl::OkStatus();
  }
  std::string_view view() const {
    return data_ == nullptr
               ? std::string_view()
               : std::string_view(static_cast<const char*>(data_), size_);
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

Outcome Quarantine(const spool::Spool& spool, Logger& log,
                   const std::string& name, std::string_view cause,
                   std::string_view why) {
  auto s = spool.Quarantine(spool::kRouter, name, cause);
  if (!s.ok()) {
    log.Error(name, StrCat("cannot move unprocessable file to postman/: ",
                           Message(s), " (", why, ")"));
    return Outcome::kRetry;
  }
  log.Warning(name, StrCat("moved to postman/", name, ".", cause, ": ", why));
  return Outcome::kDone;
}

Outcome Prepare(const spool::Spool& spool, Routing& routing, Logger& log,
                const std::string& name, Prepared* out) {
  if (!mail::IsQueueId(name)) {
    return Quarantine(spool, log, name, "badname", "not a queue id");
  }
  std::string path = spool.Path(spool::kRouter, name);
  MappedFile file;
  if (auto s = file.Open(path); !s.ok()) {
    if (!fs::Exists(path)) return Outcome::kDone;  // already gone
    if (absl::IsInvalidArgument(s)) {
      return Quarantine(spool, log, name, "malformed", Message(s));
    }
    log.Error(name, Message(s));
    return Outcome::kRetry;
  }
  auto mf = mail::ParseMessageFile(file.view());
  if (!mf.ok()) {
    return Quarantine(spool, log, name,
                      absl::IsDataLoss(mf.status()) ? "truncated" : "malformed",
                      Message(mf.status()));
  }
  const mail::Envelope& env = mf->envelope;
  if (env.queue_id != name) {
    return Quarantine(
        spool, log, name, "malformed",
        StrCat("envelope id ", env.queue_id, " differs from the file name"));
  }
  if (env.recipients.empty()) {
    return Quarantine(spool, log, name, "malformed", "no recipients");
  }

  mail::ControlFile cf;
  cf.queue_id = name;
  cf.body_offset = mf->body_offset;
  cf.sender = env.sender;
  cf.error_to = env.sender;  // "" for <>: nothing is ever sent back
  cf.envid = env.envid;
  cf.ret = env.ret;
  // owner-LIST: the routes of a list with an owner carry the owner as
  // their sender, so that bounces go to it. A control file has one sender,
  // so recipients are grouped by owner (a recipient whose routes disagree
  // goes with the message's own sender). The first group (the sender's own,
  // if any) stays in this control file, with its owner as sender; each
  // recipient of another group becomes one route `hold owner:<OWNER>`: the
  // hold agent hands the message back to the router for that recipient
  // with the owner as envelope sender, where it forms a single group. All
  // of it is in this one control file, so a crash before its rename loses
  // or duplicates nothing (the message is routed again from router/).
  struct Routed {
    const mail::EnvelopeRecipient* er;
    std::vector<Route> routes;
    std::string owner;  // "" = the message's own sender
  };
  std::vector<Routed> routed;
  for (const mail::EnvelopeRecipient& er : env.recipients) {
    Routed rd{&er, routing.RouteAddress(er.address), ""};
    if (!env.sender.empty() && !rd.routes.empty()) {
      rd.owner = rd.routes.front().sender;
      for (const Route& r : rd.routes) {
        if (r.sender != rd.owner) rd.owner.clear();
      }
    }
    routed.push_back(std::move(rd));
  }
  std::string owner = routed.front().owner;
  for (const Routed& rd : routed) {
    if (rd.owner.empty()) owner.clear();
  }
  for (Routed& rd : routed) {
    if (rd.owner == owner) continue;
    log.Info(name, StrCat("to=<", rd.er->address, ">: list owner <", rd.owner,
                          "> differs from this message's sender: handed "
                          "back to the router with that sender"));
    rd.routes = {Route{"hold", StrCat("owner:", rd.owner), rd.er->address,
                       StrCat("list owner ", rd.owner), ""}};
  }
  for (Routed& rd : routed) {
    const mail::EnvelopeRecipient& er = *rd.er;
    for (Route& r : rd.routes) {
      bool seen = false;
      for (const auto& c : cf.recipients) {
        if (c.channel == r.channel && c.host == r.host && c.user == r.user) {
          seen = true;
          break;
        }
      }
      if (seen) continue;  // one delivery per destination and message
      if (r.channel == "error") {
        log.Warning(name, StrCat("to=<", r.user, ">, orig_to=<", er.address,
                                 ">: ", r.diag, " (error/", r.host, ")"));
      } else if (r.channel == "hold" && !r.host.starts_with("owner:")) {
        log.Info(name, StrCat("to=<", r.user, ">, orig_to=<", er.address,
                              ">: held (", r.host, "): ", r.diag));
      }
      mail::ControlRecipient cr;
      cr.index = static_cast<int>(cf.recipients.size());
      cr.channel = std::move(r.channel);
      cr.host = std::move(r.host);
      cr.user = std::move(r.user);
      cr.diag = std::move(r.diag);
      cr.notify = er.notify;
      cr.orcpt = er.orcpt;
      cr.orig = er.address;
      cf.recipients.push_back(std::move(cr));
    }
  }

  if (!owner.empty()) {
    log.Info(name, StrCat("envelope sender <", env.sender,
                          "> replaced by list owner <", owner, ">"));
    cf.sender = owner;
    cf.error_to = owner;
  }

  // Written without fsync: the batch's SyncFilesData makes it durable.
  std::string tmp = spool.StagingPath(spool::kTmp, name);
  fs::UniqueFd fd(
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
  if (!fd.valid()) {
    log.Error(name, Message(fs::ErrnoStatus("create", tmp, errno)));
    return Outcome::kRetry;
  }
  if (auto s = fs::WriteAll(fd.get(), mail::SerializeControl(cf), tmp);
      !s.ok()) {
    ::unlink(tmp.c_str());
    log.Error(name, Message(s));
    return Outcome::kRetry;
  }
  out->fd = std::move(fd);
  out->tmp = std::move(tmp);
  out->id = name;
  out->sender = env.sender;
  out->size = env.size;
  out->nrcpt = cf.recipients.size();
  return Outcome::kPrepared;
}

}  // namespace

absl::Status RouteBatch(const spool::Spool& spool, Routing& routing,
                        Logger& log, const std::vector<std::string>& names,
                        std::vector<std::string>* retry) {
  std::vector<Prepared> ready;
  for (const std::string& name : names) {
    Prepared p;
    switch (Prepare(spool, routing, log, name, &p)) {
      case Outcome::kPrepared:
        ready.push_back(std::move(p));
        break;
      case Outcome::kRetry:
        if (retry != nullptr) retry->push_back(name);
        break;
      case Outcome::kDone:
        break;
    }
  }
  if (ready.empty()) return absl::OkStatus();

  auto give_back = [&](const absl::Status& s) {
    for (const Prepared& p : ready) {
      ::unlink(p.tmp.c_str());
      if (retry != nullptr) retry->push_back(p.id);
    }
    return s;
  };
  // Every control temporary of the batch is durable after this: the
  // files' own fdatasyncs, issued together (not a syncfs, which would
  // write back every dirty page of the file system).
  std::vector<int> fds;
  fds.reserve(ready.size());
  for (const Prepared& p : ready) fds.push_back(p.fd.get());
  if (auto s = spool::SyncFilesData(fds); !s.ok()) return give_back(s);
  for (Prepared& p : ready) p.fd.reset();

  std::vector<const Prepared*> moved;
  for (const Prepared& p : ready) {
    std::string from = spool.Path(spool::kRouter, p.id);
    std::string queued = spool.Path(spool::kQueue, p.id);
    if (auto s = fs::RenameNoReplace(from, queued); !s.ok()) {
      ::unlink(p.tmp.c_str());
      if (absl::IsAlreadyExists(s)) {
        Quarantine(spool, log, p.id, "duplicate",
                   "queue/ already holds a message with this id");
      } else {
        log.Error(p.id, Message(s));
        if (retry != nullptr) retry->push_back(p.id);
      }
      continue;
    }
    if (auto s =
            fs::RenameNoReplace(p.tmp, spool.Path(spool::kTransport, p.id));
        !s.ok()) {
      // Put the message back so that it is routed again; the stale control
      // file (if any) is the scheduler's, not ours to touch.
      log.Error(p.id, Message(s));
      ::unlink(p.tmp.c_str());
      if (fs::RenameNoReplace(queued, from).ok()) {
        if (absl::IsAlreadyExists(s)) {
          Quarantine(spool, log, p.id, "duplicate",
                     "transport/ already holds a control file with this id");
        } else if (retry != nullptr) {
          retry->push_back(p.id);
        }
      }
      continue;
    }
    moved.push_back(&p);
  }
  // No flush of the renames: the scheduler acts on transport/<id> as soon
  // as it appears, durable or not, so a flush here would protect nothing
  // and only hold this worker back from the next batch. After a crash
  // that loses them the message is in router/ again (or in queue/ alone,
  // which RecoverSpool() moves back) and is routed again; its file was
  // made durable by the smtpserver before it was acknowledged.
  for (const Prepared* p : moved) {
    log.Info(p->id, StrCat("from=<", p->sender, ">, size=", p->size,
                           ", nrcpt=", p->nrcpt, " (routed)"));
  }
  return absl::OkStatus();
}

}  // namespace zm::router
