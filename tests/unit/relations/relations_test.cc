#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "node/common/strings.h"
#include "node/relations/dbases_conf.h"
#include "node/relations/newdb.h"
#include "node/relations/relation_db.h"
#include "node/relations/relation_source.h"
#include "tests/unit/router/test_node.h"

namespace zm::relations {
namespace {

using ::testing::HasSubstr;
using zm::test::TestNode;

TEST(DbasesConfTest, ShippedTemplateParses) {
  TestNode t;
  auto specs = LoadDbasesConf(t.node());
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 5u);
  const RelationSpec& a = (*specs)[0];
  EXPECT_EQ(a.name, "aliases");
  EXPECT_EQ(a.dbtype, "rocksdb");
  EXPECT_TRUE(a.aliases_syntax);
  EXPECT_TRUE(a.lowercase_keys);
  EXPECT_TRUE(a.reload_on_change);
  EXPECT_EQ(a.source, t.Path("etc/aliases"));
  EXPECT_EQ((*specs)[3].name, "thishost");
  EXPECT_FALSE((*specs)[3].aliases_syntax);
  EXPECT_EQ((*specs)[4].name, "userdb");
}

TEST(DbasesConfTest, ZMailerSynonymsAndErrorsWithFileLine) {
  TestNode t;
  t.Write("etc/dbases.conf",
          "# comment\n"
          "aliases btree,x priv -la $MAILVAR/aliases -lm\n"
          "routes  hash - - routes -\n");
  auto specs = LoadDbasesConf(t.node());
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ((*specs)[1].source, t.Path("etc/routes"));
  EXPECT_FALSE((*specs)[1].lowercase_keys);

  struct Bad {
    const char* line;
    const char* what;
  } bad[] = {
      {"aliases bind,mxlocal - - - -1", "unsupported dbtype"},
      {"aliases $DBTYPE priv -lq $MAILVAR/aliases",
       "unknown newdb option '-q'"},
      {"aliases $DBTYPE priv -la $MAILVAR/aliases -lx", "unknown flag '-x'"},
      {"aliases $DBTYPE priv -la", "expected: relation"},
      {"al/ases $DBTYPE priv -la x", "bad relation name"},
      {"aliases $DBTYPE priv -la -", "needs a source file"},
      {"aliases $NOSUCHVAR priv -la x", "NOSUCHVAR"},
      {"  aliases $DBTYPE priv -la x", "beginning of the line"},
      // A variable that expands to nothing names no file (it was the
      // etc/ folder itself).
      {"aliases $DBTYPE priv -la ${ZM_TEST_EMPTY}", "needs a source file"},
  };
  ::setenv("ZM_TEST_EMPTY", "", 1);
  for (const Bad& b : bad) {
    t.Write("etc/dbases.conf", std::string("# first\n") + b.line + "\n");
    auto s = LoadDbasesConf(t.node());
    ASSERT_FALSE(s.ok()) << b.line;
    EXPECT_THAT(Message(s.status()),
                HasSubstr(t.Path("etc/dbases.conf") + ":2: "))
        << b.line;
    EXPECT_THAT(Message(s.status()), HasSubstr(b.what)) << b.line;
  }
  t.Write("etc/dbases.conf", "a rocksdb - - x\na rocksdb - - y\n");
  auto dup = LoadDbasesConf(t.node());
  ASSERT_FALSE(dup.ok());
  EXPECT_THAT(Message(dup.status()),
              HasSubstr(":2: relation 'a' listed twice"));
}

TEST(AliasesSourceTest, ParsesTargetsAndContinuations) {
  auto e = ParseAliasesSource(
      "# comment\n"
      "Staff: alice, Bob@Example.ORG,\n"
      "       \"|/usr/bin/logger -t staff, x\", /var/log/staff.mbox\n"
      "\t:include:/etc/staff.list, \\carol\n"
      "\n"
      "box: /home/x/Maildir/   # a Maildir\n",
      "aliases", true);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].key, "staff");
  EXPECT_EQ((*e)[0].line, 2);
  EXPECT_EQ(SplitStoredTargets((*e)[0].value),
            (std::vector<std::string>{
                "alice", "Bob@example.org", "|/usr/bin/logger -t staff, x",
                "/var/log/staff.mbox", ":include:/etc/staff.list", "\\carol"}));
  EXPECT_EQ((*e)[1].key, "box");
  EXPECT_EQ((*e)[1].value, "/home/x/Maildir/");
}

TEST(AliasesSourceTest, ErrorsNameFileAndLine) {
  struct Bad {
    const char* text;
    const char* what;
  } bad[] = {
      {"a: b\nA: c\n", "aliases:2: duplicate alias 'a' (first at line 1)"},
      {"a: b,,c\n", "aliases:1: alias 'a': empty target"},
      {"a:\nb: c\n", "aliases:1: alias 'a' has no targets"},
      {"x: y\na: b,\n  , c\n", "aliases:3: alias 'a': empty target"},
      {"  b\n", "aliases:1: continuation line without an alias"},
      {"a b c\n", "aliases:1: expected 'name: target, ...'"},
      {"a: |\n", "aliases:1: alias 'a': empty command"},
      {"a: b c\n", "aliases:1: alias 'a': bad address 'b c'"},
      {"a: :include:relative\n", "absolute file name"},
      {"a: <>\n", "empty target"},
      {": b\n", "aliases:1: empty alias name"},
  };
  for (const Bad& b : bad) {
    auto e = ParseAliasesSource(b.text, "aliases", true);
    ASSERT_FALSE(e.ok()) << b.text;
    EXPECT_THAT(Message(e.status()), HasSubstr(b.what)) << b.text;
  }
}

TEST(PlainSourceTest, KeysValuesAndDuplicates) {
  auto e = ParsePlainSource("Example.ORG  smtp![192.0.2.1]\nlocalhost\n",
                            "routes", true);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].key, "example.org");
  EXPECT_EQ((*e)[0].value, "smtp![192.0.2.1]");
  EXPECT_EQ((*e)[1].value, "");
  auto dup = ParsePlainSource("a 1\n# x\nA 2\n", "routes", true);
  ASSERT_FALSE(dup.ok());
  EXPECT_THAT(Message(dup.status()),
              HasSubstr("routes:3: duplicate key 'a' (first at line 1)"));
  EXPECT_FALSE(
      ParsePlainSource(std::string(kMaxSourceLine + 1, 'x'), "r", false).ok());
}

TEST(NewDbTest, CompilesAllRelationsAndLooksUp) {
  TestNode t;
  t.Append("etc/aliases", "Team: alice, bob\n");
  t.Append("etc/routes", ".partner.example smtp!mx.partner.example\n");
  std::string report;
  ASSERT_TRUE(NewDb(t.node(), "", &report).ok());
  EXPECT_THAT(report,
              HasSubstr("aliases: 13 keys from " + t.Path("etc/aliases")));
  EXPECT_THAT(report, HasSubstr("routesdb: 1 key from"));
  EXPECT_THAT(report, HasSubstr("thishost: 2 keys from"));

  auto db = RelationDb::Open(t.node().db(), "aliases");
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ((*db)->Lookup("team"), "alice\nbob");
  EXPECT_EQ((*db)->Lookup("mailer-daemon"), "postmaster");
  EXPECT_EQ((*db)->Lookup("nosuch"), std::nullopt);
  auto routes = RelationDb::Open(t.node().db(), "routesdb");
  ASSERT_TRUE(routes.ok());
  EXPECT_EQ((*routes)->Lookup(".partner.example"), "smtp!mx.partner.example");
  auto hosts = RelationDb::Open(t.node().db(), "thishost");
  ASSERT_TRUE(hosts.ok());
  EXPECT_TRUE((*hosts)->Lookup("mx1.example.net").has_value());
}

TEST(NewDbTest, OnlyOneRelationAndUnknownName) {
  TestNode t;
  std::string report;
  ASSERT_TRUE(NewDb(t.node(), "aliases", &report).ok());
  EXPECT_THAT(report, HasSubstr("aliases:"));
  EXPECT_THAT(report, ::testing::Not(HasSubstr("routesdb")));
  EXPECT_FALSE(std::filesystem::exists(t.Path("db/routesdb")));
  auto s = NewDb(t.node(), "nosuch", nullptr);
  EXPECT_TRUE(absl::IsNotFound(s));
  EXPECT_THAT(Message(s), HasSubstr("'nosuch' is not listed"));
}

TEST(NewDbTest, MissingSourceAndBadSourceChangeNothing) {
  TestNode t;
  ASSERT_TRUE(NewDb(t.node(), "", nullptr).ok());
  auto before = CurrentGeneration(t.node().db(), "aliases");
  ASSERT_TRUE(before.ok());

  t.Append("etc/aliases", "postmaster: someone-else\n");  // duplicate
  auto s = NewDb(t.node(), "aliases", nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(Message(s), HasSubstr(t.Path("etc/aliases") + ":"));
  EXPECT_THAT(Message(s), HasSubstr("duplicate alias 'postmaster'"));
  EXPECT_EQ(*CurrentGeneration(t.node().db(), "aliases"), *before);

  std::filesystem::remove(t.Path("etc/routes"));
  auto m = NewDb(t.node(), "routesdb", nullptr);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(Message(m), HasSubstr(t.Path("etc/routes")));
  EXPECT_THAT(Message(m), HasSubstr("does not exist"));
}

TEST(NewDbTest, SwapIsAtomicAndOldReadersKeepWorking) {
  TestNode t;
  t.Append("etc/aliases", "team: alice\n");
  ASSERT_TRUE(NewDb(t.node(), "aliases", nullptr).ok());
  auto old_db = RelationDb::Open(t.node().db(), "aliases");
  ASSERT_TRUE(old_db.ok());
  EXPECT_EQ((*old_db)->generation(), "aliases.1");
  EXPECT_FALSE((*old_db)->Changed());

  // Three more generations: the reader's (1) is deleted under it.
  for (int i = 2; i <= 4; ++i) {
    t.Append("etc/aliases", StrCat("extra", i, ": root\n"));
    ASSERT_TRUE(NewDb(t.node(), "aliases", nullptr).ok());
  }
  EXPECT_TRUE(std::filesystem::is_symlink(t.Path("db/aliases")));
  EXPECT_EQ(*CurrentGeneration(t.node().db(), "aliases"), "aliases.4");
  EXPECT_TRUE(std::filesystem::exists(t.Path("db/aliases.3")));  // previous
  EXPECT_FALSE(std::filesystem::exists(t.Path("db/aliases.2")));
  EXPECT_FALSE(std::filesystem::exists(t.Path("db/aliases.1")));

  EXPECT_TRUE((*old_db)->Changed());
  EXPECT_EQ((*old_db)->Lookup("team"), "alice");  // still readable
  EXPECT_EQ((*old_db)->Lookup("extra4"), std::nullopt);

  auto fresh = RelationDb::Open(t.node().db(), "aliases");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ((*fresh)->Lookup("extra4"), "root");
  // No temporary link is left behind.
  EXPECT_FALSE(std::filesystem::exists(t.Path("db/.aliases.newlink")));
}

TEST(NewDbTest, NeverCompiledIsNotFound) {
  TestNode t;
  auto db = RelationDb::Open(t.node().db(), "aliases");
  EXPECT_TRUE(absl::IsNotFound(db.status()));
}

}  // namespace
}  // namespace zm::relations
