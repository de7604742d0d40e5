#include "node/relations/relation_db.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <filesystem>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/relations/relation_index.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"

namespace zm::relations {
namespace {

// RocksDB's info LOG would otherwise appear (and rotate) in every
// generation each time a reader opens it.
class NullLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

std::shared_ptr<rocksdb::Logger> SharedNullLogger() {
  static auto* logger =
      new std::shared_ptr<rocksdb::Logger>(std::make_shared<NullLogger>());
  return *logger;
}

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(StrCat(what, ": ", s.ToString()));
}

// Generation numbers of db_dir/<name>.<N> entries.
std::vector<uint64_t> Generations(const std::string& db_dir,
                                  const std::string& name) {
  std::vector<uint64_t> out;
  auto names = fs::ListDir(db_dir);
  if (!names.ok()) return out;
  std::string prefix = name + ".";
  for (const std::string& n : *names) {
    std::string_view v = n;
    uint64_t gen = 0;
    if (ConsumePrefix(&v, prefix) && ParseNumber(v, &gen)) out.push_back(gen);
  }
  return out;
}

// Point-lookup tuning for generations read through RocksDB (no index):
// bloom filters and a hash index inside each data block, written by the
// builder and used by readers, and a block cache of `cache_mb`.
void TuneForPointLookups(rocksdb::Options* options, uint64_t cache_mb) {
  options->OptimizeForPointLookup(cache_mb);
  options->compression = rocksdb::kNoCompression;
}

}  // namespace

absl::StatusOr<std::string> CurrentGeneration(const std::string& db_dir,
                                              const std::string& name) {
  std::string link = db_dir + "/" + name;
  char buf[4096];
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          StrCat("relation database ", link, " does not exist"));
    }
    return fs::ErrnoStatus("readlink", link, errno);
  }
  return std::string(buf, static_cast<size_t>(n));
}

absl::StatusOr<std::unique_ptr<RelationDb>> RelationDb::Open(
    const std::string& db_dir, const std::string& name, ReadPath read_path) {
  auto gen = CurrentGeneration(db_dir, name);
  if (!gen.ok()) return gen.status();
  std::string path = db_dir + "/" + *gen;
  std::unique_ptr<RelationDb> db(new RelationDb());
  db->db_dir_ = db_dir;
  db->name_ = name;
  db->generation_ = *gen;
  // A generation from before the index existed (or with a damaged one) is
  // read through RocksDB.
  if (read_path == ReadPath::kIndexIfBuilt) {
    if (auto idx = RelationIndex::Map(path + "/" + kIndexFileName); idx.ok()) {
      db->index_ = std::move(*idx);
      return db;
    }
  }
  rocksdb::Options options;
  TuneForPointLookups(&options, 64);
  options.create_if_missing = false;
  options.max_open_files = -1;  // deleted generations stay readable
  options.info_log = SharedNullLogger();
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, path, &raw);
  if (!s.ok()) {
    return absl::InternalError(
        StrCat("cannot open relation database ", path, ": ", s.ToString()));
  }
  db->db_.reset(raw);
  return db;
}

RelationDb::~RelationDb() = default;

std::optional<std::string> RelationDb::Lookup(std::string_view key) const {
  if (index_ != nullptr) {
    std::string_view v;
    if (!index_->Find(key, &v)) return std::nullopt;
    return std::string(v);
  }
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(),
                               rocksdb::Slice(key.data(), key.size()), &value);
  if (!s.ok()) return std::nullopt;
  return value;
}

bool RelationDb::Changed() const {
  auto gen = CurrentGeneration(db_dir_, name_);
  return !gen.ok() || *gen != generation_;
}

absl::Status BuildAndSwap(
    const std::string& db_dir, const std::string& name,
    const std::vector<std::pair<std::string, std::string>>& entries) {
  if (auto s = fs::MakeDirs(db_dir); !s.ok()) return s;
  std::string previous;
  if (auto cur = CurrentGeneration(db_dir, name); cur.ok()) previous = *cur;
  std::vector<uint64_t> gens = Generations(db_dir, name);
  uint64_t next = 1;
  for (uint64_t g : gens) next = std::max(next, g + 1);
  std::string gen_name = StrCat(name, ".", next);
  std::string gen_path = db_dir + "/" + gen_name;

  {
    rocksdb::Options options;
    TuneForPointLookups(&options, 8);
    options.create_if_missing = true;
    options.error_if_exists = true;
    options.info_log = SharedNullLogger();
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(options, gen_path, &raw);
    if (!s.ok()) return FromRocks(s, StrCat("create ", gen_path));
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteBatch batch;
    for (const auto& [k, v] : entries) batch.Put(k, v);
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;  // flushed to a table file right below
    if (auto st = FromRocks(db->Write(wo, &batch), "write " + gen_path);
        !st.ok()) {
      return st;
    }
    rocksdb::FlushOptions fo;
    fo.wait = true;
    if (auto st = FromRocks(db->Flush(fo), "flush " + gen_path); !st.ok()) {
      return st;
    }
    if (auto st = FromRocks(db->Close(), "close " + gen_path); !st.ok()) {
      return st;
    }
  }
  if (auto s = RelationIndex::Write(gen_path + "/" + kIndexFileName, entries);
      !s.ok()) {
    return s;
  }
  // Everything of the new generation is durable before anyone can see it.
  if (auto s = fs::SyncFs(gen_path); !s.ok()) return s;

  std::string tmp_link = db_dir + "/." + name + ".newlink";
  ::unlink(tmp_link.c_str());
  if (::symlink(gen_name.c_str(), tmp_link.c_str()) != 0) {
    return fs::ErrnoStatus("symlink", tmp_link, errno);
  }
  std::string link = db_dir + "/" + name;
  if (::rename(tmp_link.c_str(), link.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp_link.c_str());
    return fs::ErrnoStatus("rename " + tmp_link + " to", link, err);
  }
  if (auto s = fs::FsyncDir(db_dir); !s.ok()) return s;

  // Keep the current and the previous generation; older ones go.
  for (uint64_t g : gens) {
    std::string n = StrCat(name, ".", g);
    if (n == previous || n == gen_name) continue;
    std::error_code ec;
    std::filesystem::remove_all(db_dir + "/" + n, ec);
  }
  return absl::OkStatus();
}

}  // namespace zm::relations
