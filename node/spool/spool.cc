#include "node/spool/spool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>

#include "node/common/hash.h"
#include "node/common/strings.h"
#include "node/mail/queue_id.h"

namespace zm::spool {
namespace {

constexpr size_t kBufferSize = 64 * 1024;
constexpr int kMaxIdAttempts = 8;

// Spreads queue ids, which differ mostly in their last digits.
int StagingBucket(std::string_view name) {
  return static_cast<int>(Fnv1a64(name) % kStagingFanout);
}

std::string BucketName(int bucket) {
  static constexpr char kHex[] = "0123456789abcdef";
  return {kHex[(bucket >> 4) & 0xf], kHex[bucket & 0xf]};
}

int64_t NowUsec() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool IsStagingFolder(std::string_view folder) {
  for (auto f : kStagingFolders) {
    if (f == folder) return true;
  }
  return false;
}

Submission::Submission(const Spool& spool, std::string queue_id,
                       std::string path, fs::UniqueFd fd, size_t size_offset)
    : spool_(spool),
      queue_id_(std::move(queue_id)),
      temp_path_(std::move(path)),
      fd_(std::move(fd)),
      size_offset_(size_offset) {
  buffer_.reserve(kBufferSize);
}

Submission::~Submission() {
  if (!published_) Abort();
}

absl::Status Submission::FlushBuffer() {
  if (buffer_.empty()) return absl::OkStatus();
  absl::Status s = fs::WriteAll(fd_.get(), buffer_, temp_path_);
  buffer_.clear();
  return s;
}

absl::Status Submission::Append(std::string_view data) {
  if (prepared_ || !fd_.valid()) {
    return absl::FailedPreconditionError("append to a closed submission");
  }
  size_ += data.size();
  if (buffer_.size() + data.size() > kBufferSize) {
    if (auto s = FlushBuffer(); !s.ok()) return s;
    if (data.size() >= kBufferSize) {
      return fs::WriteAll(fd_.get(), data, temp_path_);
    }
  }
  buffer_.append(data);
  return absl::OkStatus();
}

absl::Status Submission::Prepare(bool sync) {
  if (!fd_.valid()) return absl::FailedPreconditionError("submission closed");
  if (auto s = FlushBuffer(); !s.ok()) return s;
  std::string field = mail::FormatSizeField(size_);
  if (::pwrite(fd_.get(), field.data(), field.size(),
               static_cast<off_t>(size_offset_)) !=
      static_cast<ssize_t>(field.size())) {
    return fs::ErrnoStatus("pwrite", temp_path_, errno);
  }
  if (sync) {
    if (auto s = fs::Fsync(fd_.get(), temp_path_); !s.ok()) return s;
  }
  prepared_ = true;
  return absl::OkStatus();
}

void Submission::StartWriteOut() {
  // Only a hint to begin early; AwaitWriteOut() does (and checks) it all.
  if (fd_.valid()) ::sync_file_range(fd_.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
}

absl::Status Submission::AwaitWriteOut() {
  if (!prepared_ || !fd_.valid()) {
    return absl::FailedPreconditionError("write-out of an unprepared file");
  }
  // All three flags: every page dirty now is written and waited for (as
  // data-integrity writeback since Linux 5.2; nothing else writes this
  // file, so no page is skipped before either). ext4 and XFS end a page's
  // writeback only after the extent it went to is recorded as written, so
  // that record precedes the rename too.
  constexpr unsigned kFlags = SYNC_FILE_RANGE_WAIT_BEFORE |
                              SYNC_FILE_RANGE_WRITE |
                              SYNC_FILE_RANGE_WAIT_AFTER;
  while (::sync_file_range(fd_.get(), 0, 0, kFlags) != 0) {
    if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
      // A file system that cannot: make the data durable instead, which
      // is more than needed and keeps the order.
      return fs::Fsync(fd_.get(), temp_path_);
    }
    if (errno != EINTR) {
      return fs::ErrnoStatus("sync_file_range", temp_path_, errno);
    }
  }
  return absl::OkStatus();
}

absl::Status Submission::Publish(std::string_view folder,
                                 std::string_view name) {
  if (!prepared_)
    return absl::FailedPreconditionError("publish before prepare");
  if (auto s = fs::RenameNoReplace(
          temp_path_, spool_.Path(folder, name.empty() ? queue_id_ : name));
      !s.ok()) {
    return s;
  }
  published_ = true;
  fd_.reset();  // releases the lock; the file is the router's now
  return absl::OkStatus();
}

absl::Status Submission::PrependToMessage(std::string_view lines) {
  if (!prepared_ || published_ || !fd_.valid()) {
    return absl::FailedPreconditionError("prepend to an unprepared submission");
  }
  if (lines.empty()) return absl::OkStatus();
  off_t end = ::lseek(fd_.get(), 0, SEEK_END);
  if (end < 0 || static_cast<uint64_t>(end) < size_) {
    return fs::ErrnoStatus("lseek", temp_path_, errno);
  }
  off_t start = end - static_cast<off_t>(size_);
  // The file is write-only through fd_: read the message through a second
  // descriptor, then write it back behind the new lines.
  fs::UniqueFd in(::open(temp_path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return fs::ErrnoStatus("open", temp_path_, errno);
  std::string message(lines);
  message.resize(lines.size() + size_);
  size_t got = 0;
  while (got < size_) {
    ssize_t n = ::pread(in.get(), message.data() + lines.size() + got,
                        size_ - got, start + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fs::ErrnoStatus("read", temp_path_, n < 0 ? errno : EIO);
    got += static_cast<size_t>(n);
  }
  size_t put = 0;
  while (put < message.size()) {
    ssize_t n = ::pwrite(fd_.get(), message.data() + put, message.size() - put,
                         start + static_cast<off_t>(put));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fs::ErrnoStatus("pwrite", temp_path_, n < 0 ? errno : EIO);
    put += static_cast<size_t>(n);
  }
  size_ = message.size();
  prepared_ = false;
  return Prepare(/*sync=*/false);
}

absl::Status Submission::Commit() {
  if (auto s = Prepare(); !s.ok()) return s;
  if (auto s = Publish(); !s.ok()) return s;
  return spool_.SyncRouterDir();
}

void Submission::Abort() {
  if (published_) return;
  if (fd_.valid()) {
    ::unlink(temp_path_.c_str());
    fd_.reset();
  }
}

Spool::Spool(std::string postoffice, std::string node_tag)
    : root_(std::move(postoffice)), node_tag_(std::move(node_tag)) {}

std::string Spool::Path(std::string_view folder) const {
  return StrCat(root_, "/", folder);
}

std::string Spool::Path(std::string_view folder, std::string_view name) const {
  return StrCat(root_, "/", folder, "/", name);
}

std::string Spool::StagingPath(std::string_view folder,
                               std::string_view name) const {
  return StrCat(root_, "/", folder, "/", BucketName(StagingBucket(name)), "/",
                name);
}

absl::StatusOr<std::vector<std::string>> Spool::Files(
    std::string_view folder) const {
  return IsStagingFolder(folder) ? ListStaged(folder)
                                 : fs::ListDir(Path(folder));
}

absl::StatusOr<std::vector<std::string>> Spool::ListStaged(
    std::string_view folder, bool include_hidden) const {
  std::string top = Path(folder);
  auto entries = fs::ListDir(top, include_hidden);
  if (!entries.ok()) return entries.status();
  std::vector<std::string> out;
  for (const std::string& e : *entries) {
    std::string sub = StrCat(top, "/", e);
    struct stat st;
    if (::lstat(sub.c_str(), &st) != 0) continue;  // gone meanwhile
    if (!S_ISDIR(st.st_mode)) {
      out.push_back(e);  // left at the top by a release before the hashing
      continue;
    }
    auto inner = fs::ListDir(sub, include_hidden);
    if (!inner.ok()) continue;
    for (const std::string& n : *inner) out.push_back(StrCat(e, "/", n));
  }
  return out;
}

absl::Status Spool::CreateLayout() const {
  for (auto folder : kFolders) {
    std::string dir = Path(folder);
    if (auto s = fs::MakeDirs(dir, 0750); !s.ok()) return s;
    if (!IsStagingFolder(folder)) continue;
    // Before the subfolders exist: the flag places each new one in a block
    // group of its own. Without it (tmpfs, xfs) they still split the lock.
    (void)fs::MarkTopDir(dir);
    for (int b = 0; b < kStagingFanout; ++b) {
      if (auto s = fs::MakeDirs(StrCat(dir, "/", BucketName(b)), 0750);
          !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Submission>> Spool::Begin(
    mail::Envelope envelope) const {
  if (envelope.arrival_usec == 0) envelope.arrival_usec = NowUsec();
  for (int attempt = 0; attempt < kMaxIdAttempts; ++attempt) {
    envelope.queue_id = mail::NewQueueId(node_tag_);
    std::string path = StagingPath(kPublic, envelope.queue_id);
    fs::UniqueFd fd(
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
    if (!fd.valid() && errno == ENOENT && attempt == 0) {
      // A spool laid out before the hashing, and no daemon has renewed
      // its layout yet (sendmail on a stopped node).
      if (auto s = CreateLayout(); !s.ok()) return s;
      fd.reset(
          ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
    }
    if (!fd.valid()) {
      if (errno == EEXIST) continue;
      return fs::ErrnoStatus("create", path, errno);
    }
    // The lock tells RemoveAbandonedTemporaries() that a writer lives.
    if (::flock(fd.get(), LOCK_EX) != 0) {
      int err = errno;
      ::unlink(path.c_str());
      return fs::ErrnoStatus("flock", path, err);
    }
    size_t size_offset = 0;
    envelope.size = 0;
    std::string head = mail::SerializeEnvelope(envelope, &size_offset);
    if (auto s = fs::WriteAll(fd.get(), head, path); !s.ok()) {
      ::unlink(path.c_str());
      return s;
    }
    return std::unique_ptr<Submission>(new Submission(
        *this, envelope.queue_id, std::move(path), std::move(fd), size_offset));
  }
  return absl::InternalError("could not find a free queue id in public/");
}

absl::Status Spool::SyncRouterDir() const {
  return fs::FsyncDir(Path(kRouter));
}

absl::Status Spool::Quarantine(std::string_view folder, std::string_view name,
                               std::string_view cause) const {
  std::string from = Path(folder, name);
  std::string base = StrCat(name, ".", cause);
  std::string to = Path(kPostman, base);
  for (int n = 1; fs::Exists(to); ++n) {
    to = Path(kPostman, StrCat(base, ".", n));
  }
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return fs::ErrnoStatus("rename " + from + " to", to, errno);
  }
  return fs::FsyncDir(Path(kPostman));
}

absl::StatusOr<std::vector<std::string>> Spool::RemoveAbandonedTemporaries(
    int min_age_sec) const {
  auto names = ListStaged(kPublic, /*include_hidden=*/true);
  if (!names.ok()) return names.status();
  std::vector<std::string> removed;
  time_t now = ::time(nullptr);
  for (const auto& name : *names) {
    std::string path = Path(kPublic, name);
    fs::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) continue;
    struct stat st;
    if (::fstat(fd.get(), &st) != 0 || now - st.st_mtime < min_age_sec) {
      continue;
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // a live writer
    if (::unlink(path.c_str()) == 0) removed.push_back(name);
  }
  return removed;
}

std::vector<std::pair<std::string, size_t>> Spool::Counts() const {
  std::vector<std::pair<std::string, size_t>> out;
  for (auto folder : kFolders) {
    auto names = Files(folder);
    out.emplace_back(std::string(folder), names.ok() ? names->size() : 0);
  }
  return out;
}

}  // namespace zm::spool
