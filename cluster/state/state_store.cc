// RocksDB persistence of the fleet state: one row per record, per origin
// digest and per ETRN claim (fleet_state.cc chooses the keys).
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "cluster/state/state_internal.h"
#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::cluster::internal {
namespace {

absl::Status FromRocks(const rocksdb::Status& s, const std::string& path) {
  if (s.ok()) return absl::OkStatus();
  return absl::UnavailableError(StrCat(path, ": ", s.ToString()));
}

class RocksStore : public Store {
 public:
  RocksStore(std::unique_ptr<rocksdb::DB> db, std::string path)
      : db_(std::move(db)), path_(std::move(path)) {}

  absl::Status Load(const std::function<void(std::string_view,
                                             std::string_view)>& row) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      row(std::string_view(it->key().data(), it->key().size()),
          std::string_view(it->value().data(), it->value().size()));
    }
    return FromRocks(it->status(), path_);
  }

  absl::Status Write(const Batch& rows, bool sync) override {
    if (rows.empty()) return absl::OkStatus();
    rocksdb::WriteBatch batch;
    for (const auto& [key, value] : rows) {
      rocksdb::Status s = value ? batch.Put(key, *value) : batch.Delete(key);
      if (!s.ok()) return FromRocks(s, path_);
    }
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    return FromRocks(db_->Write(wo, &batch), path_);
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::string path_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenRocksStore(const std::string& path) {
  if (absl::Status made = fs::MakeDirs(path, 0700); !made.ok()) return made;
  rocksdb::Options options;
  options.create_if_missing = true;
  options.max_open_files = 64;
  options.keep_log_file_num = 2;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, path, &raw);
  if (!s.ok()) return FromRocks(s, path);
  return std::unique_ptr<Store>(
      new RocksStore(std::unique_ptr<rocksdb::DB>(raw), path));
}

}  // namespace zm::cluster::internal
