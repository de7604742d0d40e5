// A compiled relation: a read-only RocksDB under db/, and how it is built.
//
// On disk:   db/aliases          -> aliases.7   (symlink, swapped atomically)
//            db/aliases.7/       the current generation (a RocksDB)
//            db/aliases.6/       the previous one, kept for readers that
//                                still have it open
//            db/aliases.7/index.zmh  its hash index (relation_index.h)
// Readers map the hash index when the generation has one (one hash probe per
// lookup, nothing loaded at open); else they open the RocksDB with
// max_open_files=-1, so every table file is open from the start. Either way
// a generation deleted under a reader stays readable.
//
//   auto db = zm::relations::RelationDb::Open(node.db(), "aliases");
//   std::optional<std::string> v = (*db)->Lookup("postmaster");
//   if ((*db)->Changed()) { ...open again... }
//
// RelationDb is thread-safe (RocksDB Get is).
#ifndef ZM_RELATIONS_RELATION_DB_H_
#define ZM_RELATIONS_RELATION_DB_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rocksdb {
class DB;
}

namespace zm::relations {

class RelationIndex;

class RelationDb {
 public:
  // Which structure lookups read: the hash index when the generation has
  // a valid one (the default), or always RocksDB (tests, benchmarks).
  enum class ReadPath { kIndexIfBuilt, kRocksDb };

  // Opens db_dir/<name> read-only. NotFound if it was never compiled.
  static absl::StatusOr<std::unique_ptr<RelationDb>> Open(
      const std::string& db_dir, const std::string& name,
      ReadPath path = ReadPath::kIndexIfBuilt);
  ~RelationDb();

  const std::string& name() const { return name_; }
  // The generation directory opened ("aliases.7").
  const std::string& generation() const { return generation_; }

  std::optional<std::string> Lookup(std::string_view key) const;

  // True if the lookups go through the generation's hash index.
  bool indexed() const { return index_ != nullptr; }

  // True if db/<name> now points at another generation (or is gone).
  bool Changed() const;

 private:
  RelationDb() = default;
  std::string db_dir_, name_, generation_;
  std::unique_ptr<RelationIndex> index_;
  std::unique_ptr<rocksdb::DB> db_;  // only when there is no index
};

// What db/<name> points at ("aliases.7"), or NotFound.
absl::StatusOr<std::string> CurrentGeneration(const std::string& db_dir,
                                              const std::string& name);

// Builds a new generation of `name` from `entries` and swaps it in:
// db/<name>.<N+1>/ (the RocksDB and its index.zmh) is written and synced, then
// a new symlink is renamed over db/<name>, then db/ is fsynced. Keeps the
// previous generation and deletes older ones. The caller serialises builds of
// one db_dir.
absl::Status BuildAndSwap(
    const std::string& db_dir, const std::string& name,
    const std::vector<std::pair<std::string, std::string>>& entries);

}  // namespace zm::relations

#endif  // ZM_RELATIONS_RELATION_DB_H_
