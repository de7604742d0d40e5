// The agent loop of docs/ta-protocol.md.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <optional>
#include <unordered_set>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mail/envelope.h"
#include "node/mail/queue_id.h"
#include "node/mail/xtext.h"
#include "node/spool/spool.h"
#include "node/ta/common/ta.h"

namespace zm::ta {
namespace {

// Control files are small (one line per recipient plus results).
constexpr size_t kMaxControlBytes = 16u << 20;
// More recipients than this in one job is not a job the scheduler sends.
constexpr size_t kMaxJobIndexes = 100000;

const char* StatusWord(Result::Status s) {
  switch (s) {
    case Result::Status::kOk:
      return "ok";
    case Result::Status::kError:
      return "error";
    case Result::Status::kDeferred:
      return "deferred";
    case Result::Status::kRetryAt:
      return "retryat";
  }
  return "deferred";
}

// Reads `\n`-terminated lines from a file descriptor, each at most kMaxLine.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}

  // A line without its '\n'; nullopt at end of input (a last partial line
  // is dropped: the scheduler always ends its lines). OutOfRange for an
  // over-long line, other errors for failed reads.
  absl::StatusOr<std::optional<std::string>> Next() {
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (line.size() > kMaxLine) {
          return absl::OutOfRangeError("job line longer than 8 KiB");
        }
        return std::optional<std::string>(std::move(line));
      }
      if (buf_.size() > kMaxLine) {
        return absl::OutOfRangeError("job line longer than 8 KiB");
      }
      char chunk[4096];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fs::ErrnoStatus("read", "job input", errno);
      }
      if (n == 0) return std::optional<std::string>();
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
};

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// The files of one job, loaded once for all its recipients.
struct JobFiles {
  absl::Status status;  // not OK: every recipient is deferred with it
  mail::ControlFile control;
  MappedFile message_file;
  std::string_view message;
};

JobFiles LoadJob(const spool::Spool& spool, const std::string& queue_id) {
  JobFiles jf;
  if (!mail::IsQueueId(queue_id)) {
    jf.status = absl::InvalidArgumentError(
        StrCat("not a queue id: '", CleanDiag(queue_id), "'"));
    return jf;
  }
  std::string cpath = spool.Path(spool::kTransport, queue_id);
  auto text = fs::ReadFile(cpath, kMaxControlBytes);
  if (!text.ok()) {
    jf.status = absl::Status(text.status().code(),
                             StrCat("control file: ", Message(text.status())));
    return jf;
  }
  auto cf = mail::ParseControl(*text);
  if (!cf.ok()) {
    jf.status = absl::DataLossError(
        StrCat("control file ", cpath, ": ", Message(cf.status())));
    return jf;
  }
  if (cf->queue_id != queue_id) {
    jf.status = absl::DataLossError(
        StrCat("control file ", cpath, " names message ", cf->queue_id));
    return jf;
  }
  jf.control = *std::move(cf);
  std::string mpath = spool.Path(spool::kQueue, queue_id);
  auto mf = MappedFile::Open(mpath);
  if (!mf.ok()) {
    jf.status = absl::Status(mf.status().code(),
                             StrCat("message file: ", Message(mf.status())));
    return jf;
  }
  jf.message_file = *std::move(mf);
  std::string_view all = jf.message_file.data();
  // The envelope's fixed-width size field tells a truncated file apart.
  if (auto parsed = mail::ParseMessageFile(all); !parsed.ok()) {
    jf.status = absl::DataLossError(
        StrCat("message file ", mpath, ": ", Message(parsed.status())));
    return jf;
  }
  if (jf.control.body_offset > all.size()) {
    jf.status = absl::DataLossError(
        StrCat("message file ", mpath, " is shorter than the body offset"));
    return jf;
  }
  jf.message = all.substr(jf.control.body_offset);
  return jf;
}

const mail::ControlResult* FinalResult(const mail::ControlFile& cf, int index) {
  const mail::ControlResult* found = nullptr;
  for (const auto& r : cf.results) {
    if (r.index == index) found = &r;  // the last one wins
  }
  return found;
}

}  // namespace

std::vector<Result> Handler::DeliverJob(
    const std::string& queue_id, const std::string& host,
    const mail::ControlFile& control,
    const std::vector<const mail::ControlRecipient*>& rcpts,
    std::string_view message) {
  std::vector<Result> out;
  out.reserve(rcpts.size());
  for (const mail::ControlRecipient* rcpt : rcpts) {
    auto start = std::chrono::steady_clock::now();
    Result r = Deliver(Delivery{queue_id, host, control, *rcpt, message});
    r.xfer_s = Seconds(std::chrono::steady_clock::now() - start) - r.connect_s;
    if (r.xfer_s < 0) r.xfer_s = 0;
    out.push_back(std::move(r));
  }
  return out;
}

std::string CleanDiag(std::string_view text) {
  std::string out;
  out.reserve(std::min(text.size(), kMaxDiag));
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    char put = (u < 0x20 || u == 0x7f) ? ' ' : c;
    if (put == ' ' && (out.empty() || out.back() == ' ')) continue;
    if (out.size() >= kMaxDiag) break;
    out += put;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

absl::StatusOr<Job> ParseJob(std::string_view line) {
  std::vector<std::string_view> f = Split(line, '\t');
  if (f.size() != 3) {
    return absl::InvalidArgumentError("job line needs 3 TAB-separated fields");
  }
  Job job;
  job.queue_id = std::string(f[0]);
  if (job.queue_id.empty()) return absl::InvalidArgumentError("empty queue id");
  auto host = mail::XtextDecode(f[1]);
  if (!host.ok()) {
    return absl::InvalidArgumentError(
        StrCat("job host: ", Message(host.status())));
  }
  job.host = *std::move(host);
  std::unordered_set<int> seen;
  for (std::string_view i : Split(f[2], ',')) {
    int idx = 0;
    if (!ParseNumber(i, &idx) || idx < 0) {
      return absl::InvalidArgumentError(
          StrCat("bad recipient index '", CleanDiag(i), "'"));
    }
    // A repeated index gets one result only (the scheduler expects one).
    if (!seen.insert(idx).second) continue;
    job.indexes.push_back(idx);
    if (job.indexes.size() > kMaxJobIndexes) {
      return absl::InvalidArgumentError("too many indexes in one job");
    }
  }
  return job;
}

std::string FormatResult(std::string_view queue_id, int index, const Result& r,
                         double xfer_s) {
  std::string status = StatusWord(r.status);
  if (r.status == Result::Status::kDeferred && r.unreachable) {
    status = "unreachable";
  }
  if (r.status == Result::Status::kRetryAt) {
    status = StrCat("retryat=", r.retry_at);
  }
  std::string dsn = CleanDiag(r.dsn);
  std::string relay = CleanDiag(r.relay);
  for (std::string* s : {&dsn, &relay}) {
    for (char& c : *s) {
      if (c == ' ') c = '_';
    }
  }
  return fmt::format("{}\t{}\t{}\t{}\t{}\t{:.3f}\t{:.3f}\t{}\n", queue_id,
                     index, status, dsn.empty() ? "-" : dsn,
                     relay.empty() ? "none" : relay, r.connect_s, xfer_s,
                     CleanDiag(r.diag));
}

absl::Status AppendResult(const std::string& path, std::string_view line) {
  fs::UniqueFd fd(::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
  if (!fd.valid()) return fs::ErrnoStatus("open", path, errno);
  std::string data;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return fs::ErrnoStatus("fstat", path, errno);
  if (st.st_size > 0) {
    char last = 0;
    if (::pread(fd.get(), &last, 1, st.st_size - 1) == 1 && last != '\n') {
      data += '\n';
    }
  }
  data.append(line);
  ssize_t n;
  do {
    n = ::write(fd.get(), data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fs::ErrnoStatus("append to", path, errno);
  if (static_cast<size_t>(n) != data.size()) {
    // A torn line would glue itself to the next agent's append: cut it off.
    off_t end = ::lseek(fd.get(), 0, SEEK_CUR);
    if (end >= n) (void)::ftruncate(fd.get(), end - n);
    return fs::ErrnoStatus("append to", path, ENOSPC);
  }
  return absl::OkStatus();
}

absl::StatusOr<MappedFile> MappedFile::Open(const std::string& path) {
  fs::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return fs::ErrnoStatus("open", path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return fs::ErrnoStatus("fstat", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(path + ": not a regular file");
  }
  MappedFile mf;
  if (st.st_size == 0) return mf;
  void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ,
                   MAP_PRIVATE, fd.get(), 0);
  if (p == MAP_FAILED) return fs::ErrnoStatus("mmap", path, errno);
  mf.addr_ = p;
  mf.size_ = static_cast<size_t>(st.st_size);
  return mf;
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : addr_(o.addr_), size_(o.size_) {
  o.addr_ = nullptr;
  o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = o.addr_;
    size_ = o.size_;
    o.addr_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
}

absl::Status RunAgent(const NodeDir& node, Handler& handler, Logger& log,
                      int in_fd, int out_fd) {
  // The spool's node tag only matters for new submissions; agents read.
  spool::Spool spool(node.spool(), "");
  LineReader reader(in_fd);
  auto say = [&](std::string_view text) {
    return fs::WriteAll(out_fd, text, "result output");
  };
  // A job's result lines go out in one write together with the next
  // `#hungry`: one wake-up of the scheduler per job, not one per line.
  std::string results_out;
  for (;;) {
    results_out += "#hungry\n";
    if (auto s = say(results_out); !s.ok()) return s;
    results_out.clear();
    auto line = reader.Next();
    if (!line.ok()) {
      log.Error("", StrCat("protocol error: ", Message(line.status())));
      return line.status();
    }
    if (!line->has_value()) return absl::OkStatus();  // scheduler is done
    auto job = ParseJob(**line);
    if (!job.ok()) {
      log.Error("", StrCat("protocol error: ", Message(job.status()), ": '",
                           CleanDiag(**line), "'"));
      return job.status();
    }
    JobFiles files = LoadJob(spool, job->queue_id);
    if (!files.status.ok()) {
      log.Warning(mail::IsQueueId(job->queue_id) ? job->queue_id : "",
                  StrCat("deferring job: ", Message(files.status)));
    }
    // Result lines for a job whose queue id is no queue id still must name
    // what the scheduler sent; keep it to one token.
    std::string qid = CleanDiag(job->queue_id);
    std::string cpath = spool.Path(spool::kTransport, job->queue_id);
    // First what needs no delivery, then one DeliverJob() for the rest.
    const size_t n = job->indexes.size();
    std::vector<Result> results(n);
    std::vector<double> xfers(n, 0);
    std::vector<bool> records(n, false);
    std::vector<size_t> todo_pos;
    std::vector<const mail::ControlRecipient*> todo;
    for (size_t i = 0; i < n; ++i) {
      int index = job->indexes[i];
      Result& r = results[i];
      if (!files.status.ok()) {
        r = Result::Deferred("4.3.0", "none", Message(files.status));
      } else if (static_cast<size_t>(index) >=
                 files.control.recipients.size()) {
        r = Result::Deferred("4.3.0", "none",
                             StrCat("control file has no recipient ", index));
      } else if (const auto* done = FinalResult(files.control, index)) {
        // Delivered or failed by an earlier run that died before telling
        // the scheduler: report it again, do not deliver twice.
        r = done->status == mail::ResultStatus::kDelivered
                ? Result::Ok(done->dsn, "none", done->diag)
                : Result::Error(done->dsn, "none", done->diag);
      } else {
        todo_pos.push_back(i);
        todo.push_back(&files.control.recipients[index]);
      }
    }
    if (!todo.empty()) {
      auto start = std::chrono::steady_clock::now();
      std::vector<Result> got = handler.DeliverJob(
          job->queue_id, job->host, files.control, todo, files.message);
      double all = Seconds(std::chrono::steady_clock::now() - start);
      for (size_t k = 0; k < todo_pos.size(); ++k) {
        size_t i = todo_pos[k];
        if (k < got.size()) {
          results[i] = std::move(got[k]);
        } else {
          results[i] = Result::Deferred("4.3.0", "none",
                                        "transport agent gave no result");
        }
        Result& r = results[i];
        xfers[i] = r.xfer_s >= 0 ? r.xfer_s : all - r.connect_s;
        if (xfers[i] < 0) xfers[i] = 0;
        records[i] = r.status == Result::Status::kOk ||
                     r.status == Result::Status::kError;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      int index = job->indexes[i];
      Result& r = results[i];
      double xfer = xfers[i];
      bool record = records[i];
      if (record) {
        mail::ControlResult cr;
        cr.index = index;
        cr.status = r.status == Result::Status::kOk
                        ? mail::ResultStatus::kDelivered
                        : mail::ResultStatus::kFailed;
        cr.time = static_cast<int64_t>(std::time(nullptr));
        cr.dsn = r.dsn;
        cr.diag = CleanDiag(r.diag);
        if (auto s = AppendResult(cpath, mail::SerializeResult(cr)); !s.ok()) {
          log.Error(
              job->queue_id,
              StrCat("recipient ", index, " ",
                     r.status == Result::Status::kOk ? "delivered" : "failed",
                     " but the result could not be recorded: ", Message(s)));
          r = Result::Deferred(
              "4.3.0", r.relay,
              StrCat("result not recorded (", Message(s), ")"));
        }
      }
      results_out += FormatResult(qid, index, r, xfer);
    }
  }
}

}  // namespace zm::ta
