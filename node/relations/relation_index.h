// The hash index of a compiled relation: a read-only open-addressing hash
// table written beside the RocksDB generation (db/<name>.<N>/index.zmh) when
// the generation is built, and mapped by readers, so a lookup is one hash
// and, mostly, one probe into shared page cache: no allocation, no lock, no
// per-process load at open. RocksDB stays the compiled store; the index holds
// the same keys and values, and a generation without one is read from
// RocksDB.
//
//   RelationIndex::Write(gen_path + "/index.zmh", entries);   // builder
//   auto idx = RelationIndex::Map(gen_path + "/index.zmh");    // reader
//   std::string_view v;
//   if ((*idx)->Find("postmaster", &v)) ...  // v lives as long as *idx
//
// File layout (host byte order, the file never leaves the node):
//   header   64 bytes: "ZMRIDX01", slots (a power of two), entries,
//            file size, table offset, data offset, 2 reserved words
//   table    slots x u64: 0 = empty, else (tag << 40) | (record offset + 1)
//            where tag is the hash's top 24 bits
//   records  u32 key length, u32 value length, key, value
// Every offset read from the file is checked against its size.
#ifndef ZM_RELATIONS_RELATION_INDEX_H_
#define ZM_RELATIONS_RELATION_INDEX_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zm::relations {

inline constexpr char kIndexFileName[] = "index.zmh";

class RelationIndex {
 public:
  // Writes the index of `entries` (a later duplicate key wins, as in a
  // RocksDB write batch) to `path` and fsyncs it.
  static absl::Status Write(
      const std::string& path,
      const std::vector<std::pair<std::string, std::string>>& entries);

  // Maps `path`. NotFound if it does not exist, DataLoss if it is not a
  // well-formed index.
  static absl::StatusOr<std::unique_ptr<RelationIndex>> Map(
      const std::string& path);

  ~RelationIndex();
  RelationIndex(const RelationIndex&) = delete;
  RelationIndex& operator=(const RelationIndex&) = delete;

  // True and *value set (pointing into the mapping) if `key` is present.
  bool Find(std::string_view key, std::string_view* value) const;

  uint64_t entries() const { return entries_; }

  // The 64-bit hash the index uses (MurmurHash64A, seed fixed): stable
  // across builds, since the file outlives the program that wrote it.
  static uint64_t Hash(std::string_view key);

 private:
  RelationIndex() = default;
  const char* base_ = nullptr;
  uint64_t size_ = 0, mask_ = 0, entries_ = 0, data_off_ = 0;
  const uint64_t* table_ = nullptr;
};

}  // namespace zm::relations

#endif  // ZM_RELATIONS_RELATION_INDEX_H_
