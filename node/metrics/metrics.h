// zm::metrics: counters and gauges a program exports without an RPC.
//
// Each long-running program maps a small shared file
// `run/metrics/<program>.stats` and bumps 64-bit atomics in it; admind maps
// the files read-only and renders them as Prometheus text. No locks, no
// sockets: an increment is one relaxed atomic add in shared memory.
//
//   // main.cc, once:
//   auto reg = zm::metrics::Registry::Open(node.run() + "/metrics",
//                                          "smtpserver");
//   // a registration block (names are in metrics_catalog.h):
//   zm::metrics::Counter conns = reg->GetCounter(
//       "zmnode_smtp_connections_total", {{"listener", "smtp"}});
//   // the hot path:
//   conns.Inc();
//
// Open() never fails: if the file cannot be made (read-only run/, full
// disk), the registry keeps its counters in private memory and the program
// runs on without exported metrics (check exported()).
//
// File layout (all little-endian, host order; version 1):
//   Header (64 bytes): magic "ZMSTATS1", u32 version, u32 capacity,
//     atomic u32 allocated (slots handed out), i32 pid, i64 start_unix,
//     char program[32].
//   Slot (192 bytes) x capacity: atomic u32 state (0 free, 1 being written,
//     2 ready), u32 kind (1 counter, 2 gauge), atomic i64 value,
//     char name[64], char labels[112] (Prometheus label text without braces,
//     `channel="smtp",result="ok"`, NUL-terminated).
// A writer takes a slot by fetch_add on `allocated`, fills it, then stores
// state=ready with release order; readers load state with acquire order, so
// they see only complete slots. Two processes sharing one file may register
// the same series twice; readers sum duplicates.
#ifndef ZM_METRICS_METRICS_H_
#define ZM_METRICS_METRICS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace zm::metrics {

enum class Kind : uint32_t { kCounter = 1, kGauge = 2 };

using LabelList = std::vector<std::pair<std::string_view, std::string_view>>;

// Renders labels as Prometheus label text (`a="x",b="y"`), escaping `\`,
// `"` and newlines in values.
std::string RenderLabels(const LabelList& labels);

// A handle to one series. Cheap to copy; valid while its Registry lives.
// A default-constructed handle counts into nothing.
class Counter {
 public:
  Counter() = default;
  void Inc(int64_t n = 1) const {
    if (v_ != nullptr) v_->fetch_add(n, std::memory_order_relaxed);
  }
  int64_t value() const {
    return v_ == nullptr ? 0 : v_->load(std::memory_order_relaxed);
  }

 private:
  friend class Registry;
  explicit Counter(std::atomic<int64_t>* v) : v_(v) {}
  std::atomic<int64_t>* v_ = nullptr;
};

class Gauge {
 public:
  Gauge() = default;
  void Set(int64_t n) const {
    if (v_ != nullptr) v_->store(n, std::memory_order_relaxed);
  }
  void Add(int64_t n) const {
    if (v_ != nullptr) v_->fetch_add(n, std::memory_order_relaxed);
  }
  int64_t value() const {
    return v_ == nullptr ? 0 : v_->load(std::memory_order_relaxed);
  }

 private:
  friend class Registry;
  explicit Gauge(std::atomic<int64_t>* v) : v_(v) {}
  std::atomic<int64_t>* v_ = nullptr;
};

// Adds 1 to a gauge for its lifetime (sessions open, jobs running).
class GaugeScope {
 public:
  explicit GaugeScope(const Gauge& g) : g_(g) { g_.Add(1); }
  ~GaugeScope() { g_.Add(-1); }
  GaugeScope(const GaugeScope&) = delete;
  GaugeScope& operator=(const GaugeScope&) = delete;

 private:
  Gauge g_;
};

inline constexpr size_t kNameMax = 63;     // bytes, without the NUL
inline constexpr size_t kLabelsMax = 111;  // bytes, without the NUL
inline constexpr uint32_t kDefaultCapacity = 512;

class Registry {
 public:
  // Creates (replacing any old one) `dir`/`program`.stats and maps it.
  // `dir` is made if missing. Never fails; see exported().
  static std::unique_ptr<Registry> Open(const std::string& dir,
                                        std::string_view program,
                                        uint32_t capacity = kDefaultCapacity);
  // A registry in private memory only (tests, programs run without a node).
  static std::unique_ptr<Registry> InMemory(
      uint32_t capacity = kDefaultCapacity);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Finds or creates the series. Thread-safe; creation takes a mutex, so
  // register at start-up or cache the handle. When the file is full the
  // handle counts into a private spare (the series is not exported).
  Counter GetCounter(std::string_view name, const LabelList& labels = {});
  Gauge GetGauge(std::string_view name, const LabelList& labels = {});

  // True if the values are visible to other processes (the file exists).
  bool exported() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

 private:
  Registry() = default;
  std::atomic<int64_t>* Find(Kind kind, std::string_view name,
                             const std::string& labels);

  std::string path_;
  void* base_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  absl::Mutex mu_;
  std::map<std::string, std::atomic<int64_t>*> cache_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<std::atomic<int64_t>>> spares_
      ABSL_GUARDED_BY(mu_);
};

// ---- Reading (admind) ----

struct Sample {
  std::string name;
  std::string labels;  // Prometheus label text, may be empty
  Kind kind = Kind::kCounter;
  int64_t value = 0;
  bool milli = false;  // value is in thousandths (rendered as value/1000)
};

struct StatsFile {
  std::string program;
  int pid = 0;
  int64_t start_unix = 0;
  std::vector<Sample> samples;  // duplicates of one series already summed
};

// Reads one .stats file (mapped read-only for the read, then unmapped).
// InvalidArgument for a file that is not a stats file.
absl::StatusOr<StatsFile> ReadStatsFile(const std::string& path);

// Reads every *.stats file in `dir` (missing dir: empty result). Files that
// do not parse are skipped.
std::vector<StatsFile> ReadStatsDir(const std::string& dir);

}  // namespace zm::metrics

#endif  // ZM_METRICS_METRICS_H_
