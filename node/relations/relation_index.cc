#include "node/relations/relation_index.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::relations {
namespace {

constexpr char kMagic[8] = {'Z', 'M', 'R', 'I', 'D', 'X', '0', '1'};
constexpr uint64_t kHeaderSize = 64;
constexpr uint64_t kOffsetBits = 40;
constexpr uint64_t kOffsetMask = (uint64_t{1} << kOffsetBits) - 1;
constexpr uint64_t kRecordHeader = 8;  // u32 key length, u32 value length

struct Header {
  char magic[8];
  uint64_t slots, entries, file_size, table_off, data_off, reserved[2];
};
static_assert(sizeof(Header) == kHeaderSize);

uint64_t Tag(uint64_t hash) { return hash >> kOffsetBits; }

uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

uint32_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void Append32(std::string* out, uint32_t v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}

}  // namespace

uint64_t RelationIndex::Hash(std::string_view key) {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ULL;
  constexpr int r = 47;
  const uint64_t seed = 0x7a6d6e6f6465ULL;  // "zmnode"
  uint64_t h = seed ^ (key.size() * m);
  const char* p = key.data();
  size_t n = key.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t k = Load64(p);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  if (n > 0) {
    uint64_t k = 0;
    std::memcpy(&k, p, n);
    h ^= k;
    h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

absl::Status RelationIndex::Write(
    const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& entries) {
  // Slots hold entry numbers + 1 while building; a duplicate key takes over
  // its slot, so the last one wins.
  uint64_t slots = std::bit_ceil(std::max<uint64_t>(8, entries.size() * 2));
  uint64_t mask = slots - 1;
  std::vector<uint64_t> slot_entry(slots, 0);
  std::vector<uint64_t> hashes(entries.size());
  uint64_t live = 0;
  for (size_t e = 0; e < entries.size(); ++e) {
    const std::string& key = entries[e].first;
    if (key.size() > UINT32_MAX || entries[e].second.size() > UINT32_MAX) {
      return absl::InvalidArgumentError(
          StrCat(path, ": entry longer than 4 GiB"));
    }
    uint64_t h = Hash(key);
    hashes[e] = h;
    for (uint64_t i = h & mask;; i = (i + 1) & mask) {
      uint64_t cur = slot_entry[i];
      if (cur == 0) {
        slot_entry[i] = e + 1;
        ++live;
        break;
      }
      if (hashes[cur - 1] == h && entries[cur - 1].first == key) {
        slot_entry[i] = e + 1;
        break;
      }
    }
  }

  std::string file(kHeaderSize + slots * sizeof(uint64_t), '\0');
  uint64_t data_off = file.size();
  std::vector<uint64_t> table(slots, 0);
  for (uint64_t i = 0; i < slots; ++i) {
    if (slot_entry[i] == 0) continue;
    const auto& [key, value] = entries[slot_entry[i] - 1];
    uint64_t rec = file.size() - data_off;
    if (rec + 1 > kOffsetMask) {
      return absl::InvalidArgumentError(StrCat(path, ": relation too large"));
    }
    table[i] = (Tag(hashes[slot_entry[i] - 1]) << kOffsetBits) | (rec + 1);
    Append32(&file, static_cast<uint32_t>(key.size()));
    Append32(&file, static_cast<uint32_t>(value.size()));
    file += key;
    file += value;
  }
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.slots = slots;
  h.entries = live;
  h.file_size = file.size();
  h.table_off = kHeaderSize;
  h.data_off = data_off;
  std::memcpy(file.data(), &h, sizeof h);
  std::memcpy(file.data() + kHeaderSize, table.data(),
              slots * sizeof(uint64_t));
  std::filesystem::path p(path);
  return fs::WriteFileAtomically(p.parent_path().string(),
                                 p.filename().string(), file);
}

absl::StatusOr<std::unique_ptr<RelationIndex>> RelationIndex::Map(
    const std::string& path) {
  fs::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(StrCat(path, " does not exist"));
    }
    return fs::ErrnoStatus("open", path, errno);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return fs::ErrnoStatus("stat", path, errno);
  auto bad = [&](std::string_view why) {
    return absl::DataLossError(
        StrCat(path, ": not a relation index (", why, ")"));
  };
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kHeaderSize) return bad("short");
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (m == MAP_FAILED) return fs::ErrnoStatus("mmap", path, errno);
  std::unique_ptr<RelationIndex> idx(new RelationIndex());
  idx->base_ = static_cast<const char*>(m);
  idx->size_ = size;
  Header h;
  std::memcpy(&h, idx->base_, sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) return bad("magic");
  if (h.file_size != size) return bad("size");
  if (h.slots == 0 || !std::has_single_bit(h.slots) ||
      h.table_off != kHeaderSize || h.slots > (size - kHeaderSize) / 8 ||
      h.data_off != kHeaderSize + h.slots * 8 || h.entries > h.slots) {
    return bad("header");
  }
  idx->mask_ = h.slots - 1;
  idx->entries_ = h.entries;
  idx->data_off_ = h.data_off;
  idx->table_ = reinterpret_cast<const uint64_t*>(idx->base_ + h.table_off);
  ::madvise(m, size, MADV_RANDOM);
  return idx;
}

RelationIndex::~RelationIndex() {
  if (base_ != nullptr) {
    ::munmap(const_cast<char*>(base_), size_);
  }
}

bool RelationIndex::Find(std::string_view key, std::string_view* value) const {
  uint64_t h = Hash(key);
  uint64_t tag = Tag(h);
  // A well-formed table has empty slots; the bound only guards a bad file.
  for (uint64_t i = h & mask_, n = 0; n <= mask_; i = (i + 1) & mask_, ++n) {
    uint64_t s = table_[i];
    if (s == 0) return false;
    if ((s >> kOffsetBits) != tag) continue;
    uint64_t rec = data_off_ + (s & kOffsetMask) - 1;
    if (rec > size_ || size_ - rec < kRecordHeader) return false;
    uint64_t klen = Load32(base_ + rec);
    uint64_t vlen = Load32(base_ + rec + 4);
    if (size_ - rec - kRecordHeader < klen + vlen) return false;
    const char* k = base_ + rec + kRecordHeader;
    if (klen == key.size() && std::memcmp(k, key.data(), klen) == 0) {
      *value = std::string_view(k + klen, vlen);
      return true;
    }
  }
  return false;
}

}  // namespace zm::relations
