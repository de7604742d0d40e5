#include "node/metrics/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::metrics {
namespace {

constexpr char kMagic[8] = {'Z', 'M', 'S', 'T', 'A', 'T', 'S', '1'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxCapacity = 65536;

enum SlotState : uint32_t { kFree = 0, kWriting = 1, kReady = 2 };

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t capacity;
  std::atomic<uint32_t> allocated;
  int32_t pid;
  int64_t start_unix;
  char program[32];
};
static_assert(sizeof(Header) == 64);

struct Slot {
  std::atomic<uint32_t> state;
  uint32_t kind;
  std::atomic<int64_t> value;
  char name[kNameMax + 1];
  char labels[kLabelsMax + 1];
};
static_assert(sizeof(Slot) == 192);
static_assert(std::atomic<int64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

size_t FileSize(uint32_t capacity) {
  return sizeof(Header) + size_t{capacity} * sizeof(Slot);
}

Header* HeaderOf(void* base) { return static_cast<Header*>(base); }
Slot* SlotsOf(void* base) {
  return reinterpret_cast<Slot*>(static_cast<char*>(base) + sizeof(Header));
}

void CopyBounded(char* dst, size_t cap, std::string_view src) {
  size_t n = std::min(src.size(), cap - 1);
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

void InitHeader(void* base, uint32_t capacity, std::string_view program) {
  Header* h = HeaderOf(base);
  std::memcpy(h->magic, kMagic, sizeof(kMagic));
  h->version = kVersion;
  h->capacity = capacity;
  h->allocated.store(0, std::memory_order_relaxed);
  h->pid = static_cast<int32_t>(getpid());
  h->start_unix = static_cast<int64_t>(time(nullptr));
  CopyBounded(h->program, sizeof(h->program), program);
}

std::string CacheKey(Kind kind, std::string_view name,
                     const std::string& labels) {
  return StrCat(static_cast<uint32_t>(kind), "|", name, "{", labels, "}");
}

}  // namespace

std::string RenderLabels(const LabelList& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ',';
    out += k;
    out += "=\"";
    for (char c : v) {
      if (c == '\\' || c == '"') {
        out += '\\';
        out += c;
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    out += '"';
  }
  return out;
}

std::unique_ptr<Registry> Registry::InMemory(uint32_t capacity) {
  capacity = std::clamp<uint32_t>(capacity, 1, kMaxCapacity);
  std::unique_ptr<Registry> r(new Registry());
  r->size_ = FileSize(capacity);
  void* base = mmap(nullptr, r->size_, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    r->size_ = 0;
    return r;  // every handle counts into a spare
  }
  r->base_ = base;
  r->mapped_ = true;
  InitHeader(base, capacity, "");
  return r;
}

std::unique_ptr<Registry> Registry::Open(const std::string& dir,
                                         std::string_view program,
                                         uint32_t capacity) {
  capacity = std::clamp<uint32_t>(capacity, 1, kMaxCapacity);
  if (!fs::MakeDirs(dir).ok()) return InMemory(capacity);
  std::string final_path = StrCat(dir, "/", program, ".stats");
  std::string tmp_path = StrCat(dir, "/.", program, ".stats.", getpid());
  int fd = open(tmp_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return InMemory(capacity);
  size_t size = FileSize(capacity);
  void* base = MAP_FAILED;
  // posix_fallocate reserves the blocks, so a full disk fails here and not
  // with SIGBUS on a later increment.
  if (posix_fallocate(fd, 0, static_cast<off_t>(size)) == 0) {
    base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  close(fd);
  if (base == MAP_FAILED) {
    unlink(tmp_path.c_str());
    return InMemory(capacity);
  }
  InitHeader(base, capacity, program);
  // Readers only ever see a complete header: the file appears by rename.
  if (rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    munmap(base, size);
    unlink(tmp_path.c_str());
    return InMemory(capacity);
  }
  std::unique_ptr<Registry> r(new Registry());
  r->path_ = final_path;
  r->base_ = base;
  r->size_ = size;
  r->mapped_ = true;
  return r;
}

Registry::~Registry() {
  if (mapped_) munmap(base_, size_);
}

std::atomic<int64_t>* Registry::Find(Kind kind, std::string_view name,
                                     const std::string& labels) {
  std::string key = CacheKey(kind, name, labels);
  absl::MutexLock lock(&mu_);
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  std::atomic<int64_t>* v = nullptr;
  if (mapped_ && name.size() <= kNameMax && labels.size() <= kLabelsMax) {
    Header* h = HeaderOf(base_);
    Slot* slots = SlotsOf(base_);
    // Another process sharing the file (a fork) may have made it already.
    uint32_t n =
        std::min(h->allocated.load(std::memory_order_acquire), h->capacity);
    for (uint32_t i = 0; i < n && v == nullptr; ++i) {
      Slot& s = slots[i];
      if (s.state.load(std::memory_order_acquire) == kReady &&
          s.kind == static_cast<uint32_t>(kind) && name == s.name &&
          labels == s.labels) {
        v = &s.value;
      }
    }
    if (v == nullptr) {
      uint32_t i = h->allocated.fetch_add(1, std::memory_order_acq_rel);
      if (i < h->capacity) {
        Slot& s = slots[i];
        s.state.store(kWriting, std::memory_order_relaxed);
        s.kind = static_cast<uint32_t>(kind);
        s.value.store(0, std::memory_order_relaxed);
        CopyBounded(s.name, sizeof(s.name), name);
        CopyBounded(s.labels, sizeof(s.labels), labels);
        s.state.store(kReady, std::memory_order_release);
        v = &s.value;
      } else {
        h->allocated.store(h->capacity, std::memory_order_release);
      }
    }
  }
  if (v == nullptr) {
    spares_.push_back(std::make_unique<std::atomic<int64_t>>(0));
    v = spares_.back().get();
  }
  cache_.emplace(std::move(key), v);
  return v;
}

Counter Registry::GetCounter(std::string_view name, const LabelList& labels) {
  return Counter(Find(Kind::kCounter, name, RenderLabels(labels)));
}

Gauge Registry::GetGauge(std::string_view name, const LabelList& labels) {
  return Gauge(Find(Kind::kGauge, name, RenderLabels(labels)));
}

absl::StatusOr<StatsFile> ReadStatsFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fs::ErrnoStatus("open", path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(Header))) {
    close(fd);
    return absl::InvalidArgumentError(StrCat(path, ": not a stats file"));
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* base = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) return fs::ErrnoStatus("mmap", path, errno);
  // The mapping is read-only; the atomics are only loaded.
  const Header* h = static_cast<const Header*>(base);
  if (std::memcmp(h->magic, kMagic, sizeof(kMagic)) != 0 ||
      h->version != kVersion || h->capacity > kMaxCapacity ||
      FileSize(h->capacity) > size) {
    munmap(base, size);
    return absl::InvalidArgumentError(StrCat(path, ": not a stats file"));
  }
  StatsFile out;
  out.program.assign(h->program, strnlen(h->program, sizeof(h->program)));
  out.pid = h->pid;
  out.start_unix = h->start_unix;
  const Slot* slots = reinterpret_cast<const Slot*>(
      static_cast<const char*>(base) + sizeof(Header));
  uint32_t n = std::min(
      const_cast<Header*>(h)->allocated.load(std::memory_order_acquire),
      h->capacity);
  std::map<std::pair<std::string, std::string>, size_t> seen;
  for (uint32_t i = 0; i < n; ++i) {
    const Slot& s = slots[i];
    if (s.state.load(std::memory_order_acquire) != kReady) continue;
    if (s.kind != static_cast<uint32_t>(Kind::kCounter) &&
        s.kind != static_cast<uint32_t>(Kind::kGauge)) {
      continue;
    }
    Sample sample;
    sample.name.assign(s.name, strnlen(s.name, sizeof(s.name)));
    sample.labels.assign(s.labels, strnlen(s.labels, sizeof(s.labels)));
    sample.kind = static_cast<Kind>(s.kind);
    sample.value = s.value.load(std::memory_order_relaxed);
    auto key = std::make_pair(sample.name, sample.labels);
    if (auto it = seen.find(key); it != seen.end()) {
      out.samples[it->second].value += sample.value;
      continue;
    }
    seen.emplace(std::move(key), out.samples.size());
    out.samples.push_back(std::move(sample));
  }
  munmap(base, size);
  return out;
}

std::vector<StatsFile> ReadStatsDir(const std::string& dir) {
  std::vector<StatsFile> out;
  auto names = fs::ListDir(dir);
  if (!names.ok()) return out;
  std::vector<std::string> sorted(names->begin(), names->end());
  std::sort(sorted.begin(), sorted.end());
  for (const std::string& name : sorted) {
    if (name.empty() || name[0] == '.' || !name.ends_with(".stats")) continue;
    auto f = ReadStatsFile(dir + "/" + name);
    if (f.ok()) out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace zm::metrics
