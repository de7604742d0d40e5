// RocksDB persistence of the rate-tracker.
#include "node/ratetrack/ratetrack_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "fmt/format.h"
#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::ratetrack::internal {

std::string EncodeRow(const std::vector<Entry>& entries) {
  std::string out;
  for (const Entry& e : entries) {
    out += fmt::format("{} {} {} {} {} {} {} {}\n", e.node, e.slot_start,
                       e.changed_sec, e.counts.messages, e.counts.recipients,
                       e.counts.auth_failures, e.counts.aborts,
                       e.counts.excesses);
  }
  return out;
}

std::vector<Entry> DecodeRow(std::string_view value) {
  std::vector<Entry> out;
  for (std::string_view line : Split(value, '\n', /*skip_empty=*/true)) {
    std::vector<std::string_view> f = SplitWhitespace(line);
    if (f.size() != 8) continue;
    Entry e;
    e.node = std::string(f[0]);
    std::optional<int64_t> slot = ParseInt(f[1]);
    std::optional<int64_t> changed = ParseInt(f[2]);
    uint64_t* fields[] = {&e.counts.messages, &e.counts.recipients,
                          &e.counts.auth_failures, &e.counts.aborts,
                          &e.counts.excesses};
    bool ok = slot && changed;
    for (int i = 0; ok && i < 5; ++i) {
      std::optional<uint64_t> v = ParseUint(f[3 + i]);
      if (!v) ok = false;
      else *fields[i] = *v;
    }
    if (!ok) continue;
    e.slot_start = *slot;
    e.changed_sec = *changed;
    out.push_back(std::move(e));
  }
  return out;
}

namespace {

absl::Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  return absl::UnavailableError(StrCat(what, ": ", s.ToString()));
}

class RocksStore : public Store {
 public:
  RocksStore(std::unique_ptr<rocksdb::DB> db, std::string path)
      : db_(std::move(db)), path_(std::move(path)) {}

  absl::Status Load(
      std::vector<std::pair<std::string, std::string>>* rows) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      rows->emplace_back(it->key().ToString(), it->value().ToString());
    }
    return FromRocks(it->status(), path_);
  }

  absl::Status Write(
      const std::vector<std::pair<std::string, std::optional<std::string>>>&
          rows) override {
    rocksdb::WriteBatch batch;
    for (const auto& [key, value] : rows) {
      rocksdb::Status s =
          value ? batch.Put(key, *value) : batch.Delete(key);
      if (!s.ok()) return FromRocks(s, path_);
    }
    return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), path_);
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::string path_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path,
                                                   bool read_only) {
  rocksdb::Options options;
  options.create_if_missing = !read_only;
  options.keep_log_file_num = 2;
  options.max_open_files = 64;
  options.write_buffer_size = 4 << 20;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (read_only) {
    s = rocksdb::DB::OpenForReadOnly(options, path, &raw);
  } else {
    if (absl::Status made = fs::MakeDirs(path); !made.ok()) return made;
    s = rocksdb::DB::Open(options, path, &raw);
  }
  if (!s.ok()) return FromRocks(s, path);
  return std::unique_ptr<Store>(
      std::make_unique<RocksStore>(std::unique_ptr<rocksdb::DB>(raw), path));
}

}  // namespace zm::ratetrack::internal
