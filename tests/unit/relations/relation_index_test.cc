// The relation hash index: round trips, agreement with RocksDB on random
// relations, duplicates, and damaged files (refused or bounded, never read
// out of bounds).
#include "node/relations/relation_index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/relations/relation_db.h"
#include "tests/unit/router/test_node.h"

namespace zm::relations {
namespace {

using Entries = std::vector<std::pair<std::string, std::string>>;
using zm::test::TestNode;

std::string RandomString(std::mt19937* rng, size_t max_len) {
  std::uniform_int_distribution<size_t> len(0, max_len);
  std::uniform_int_distribution<int> ch(0, 255);
  std::string s(len(*rng), '\0');
  for (char& c : s) c = static_cast<char>(ch(*rng));
  return s;
}

TEST(RelationIndexTest, RoundTripAndMisses) {
  TestNode t;
  std::string path = t.Path("index.zmh");
  Entries e = {{"postmaster", "root"},
               {"", "empty key"},
               {"team", "alice\nbob"},
               {"x", ""}};
  ASSERT_TRUE(RelationIndex::Write(path, e).ok());
  auto idx = RelationIndex::Map(path);
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_EQ((*idx)->entries(), 4u);
  for (const auto& [k, v] : e) {
    std::string_view got;
    ASSERT_TRUE((*idx)->Find(k, &got)) << k;
    EXPECT_EQ(got, v);
  }
  std::string_view got;
  EXPECT_FALSE((*idx)->Find("nosuch", &got));
  EXPECT_FALSE((*idx)->Find("postmaste", &got));
  EXPECT_FALSE((*idx)->Find("postmaster ", &got));
}

TEST(RelationIndexTest, LaterDuplicateWins) {
  TestNode t;
  std::string path = t.Path("index.zmh");
  ASSERT_TRUE(
      RelationIndex::Write(path, {{"a", "1"}, {"b", "2"}, {"a", "3"}}).ok());
  auto idx = RelationIndex::Map(path);
  ASSERT_TRUE(idx.ok());
  EXPECT_EQ((*idx)->entries(), 2u);
  std::string_view got;
  ASSERT_TRUE((*idx)->Find("a", &got));
  EXPECT_EQ(got, "3");
}

TEST(RelationIndexTest, EmptyRelation) {
  TestNode t;
  std::string path = t.Path("index.zmh");
  ASSERT_TRUE(RelationIndex::Write(path, {}).ok());
  auto idx = RelationIndex::Map(path);
  ASSERT_TRUE(idx.ok());
  std::string_view got;
  EXPECT_FALSE((*idx)->Find("", &got));
  EXPECT_FALSE((*idx)->Find("a", &got));
}

// The index and RocksDB answer every key alike, hits and misses, over random
// binary keys (many sharing prefixes, so probe chains collide).
TEST(RelationIndexTest, AgreesWithRocksDbOnRandomRelations) {
  TestNode t;
  for (int seed = 1; seed <= 3; ++seed) {
    std::mt19937 rng(seed);
    Entries e;
    for (int i = 0; i < 3000; ++i) {
      std::string k = (i % 3 == 0) ? StrCat("k", i) : RandomString(&rng, 24);
      e.emplace_back(k, RandomString(&rng, 40));
    }
    std::string name = StrCat("rel", seed);
    ASSERT_TRUE(BuildAndSwap(t.node().db(), name, e).ok());
    auto fast = RelationDb::Open(t.node().db(), name);
    auto slow =
        RelationDb::Open(t.node().db(), name, RelationDb::ReadPath::kRocksDb);
    ASSERT_TRUE(fast.ok() && slow.ok());
    EXPECT_TRUE((*fast)->indexed());
    EXPECT_FALSE((*slow)->indexed());
    std::vector<std::string> probes;
    for (const auto& kv : e) probes.push_back(kv.first);
    for (int i = 0; i < 3000; ++i) probes.push_back(RandomString(&rng, 24));
    for (int i = 0; i < 3000; ++i) probes.push_back(StrCat("k", i, "x"));
    int hits = 0;
    for (const std::string& k : probes) {
      auto a = (*fast)->Lookup(k);
      ASSERT_EQ(a, (*slow)->Lookup(k)) << "key of size " << k.size();
      hits += a.has_value();
    }
    EXPECT_GE(hits, 3000);
  }
}

TEST(RelationIndexTest, DamagedFilesAreRefusedAndRelationFallsBack) {
  TestNode t;
  ASSERT_TRUE(BuildAndSwap(t.node().db(), "aliases",
                           {{"team", "alice"}, {"root", "admin"}})
                  .ok());
  std::string gen =
      t.node().db() + "/" + *CurrentGeneration(t.node().db(), "aliases");
  std::string path = gen + "/" + kIndexFileName;
  ASSERT_TRUE(std::filesystem::exists(path));
  auto whole = fs::ReadFile(path);
  ASSERT_TRUE(whole.ok());

  // Truncated: the size in the header no longer matches.
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(whole->size() - 3)), 0);
  EXPECT_TRUE(absl::IsDataLoss(RelationIndex::Map(path).status()));
  auto db = RelationDb::Open(t.node().db(), "aliases");
  ASSERT_TRUE(db.ok());
  EXPECT_FALSE((*db)->indexed());
  EXPECT_EQ((*db)->Lookup("team"), "alice");

  // Bad magic, and a file shorter than a header.
  std::string bad = *whole;
  bad[0] = 'X';
  std::ofstream(path, std::ios::trunc) << bad;
  EXPECT_TRUE(absl::IsDataLoss(RelationIndex::Map(path).status()));
  std::ofstream(path, std::ios::trunc) << "ZMRIDX01";
  EXPECT_TRUE(absl::IsDataLoss(RelationIndex::Map(path).status()));
  EXPECT_TRUE(absl::IsNotFound(RelationIndex::Map(gen + "/nosuch").status()));

  // Table slots pointing past the end: lookups stay in bounds (ASan) and
  // miss.
  std::string wild = *whole;
  for (size_t off = 64; off + 8 <= wild.size() && off < 64 + 8 * 8; off += 8) {
    uint64_t v = ~uint64_t{0};
    std::memcpy(wild.data() + off, &v, sizeof v);
  }
  std::ofstream(path, std::ios::trunc) << wild;
  auto idx = RelationIndex::Map(path);
  ASSERT_TRUE(idx.ok());
  std::string_view got;
  for (std::string_view k : {"team", "root", "nosuch"}) {
    (*idx)->Find(k, &got);  // any answer, no crash
  }
}

TEST(RelationIndexTest, HashIsStable) {
  // The file outlives the binary: these values must never change (they
  // are MurmurHash64A with the seed 0x7a6d6e6f6465, computed apart).
  EXPECT_EQ(RelationIndex::Hash(""), 0xcc7625d486abc325ULL);
  EXPECT_EQ(RelationIndex::Hash("a"), 0xb9e2d4cd936266d2ULL);
  EXPECT_EQ(RelationIndex::Hash("postmaster"), 0x7299bf759aaf420aULL);
}

}  // namespace
}  // namespace zm::relations
