#include "node/mail/address.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "node/common/strings.h"

namespace zm::mail {
namespace {

struct Good {
  const char* in;
  const char* local;
  const char* domain;
};

TEST(AddressTest, ParsesWhatEnvelopesCarry) {
  const Good cases[] = {
      {"bob@Example.NET", "bob", "example.net"},
      {"<bob@example.net>", "bob", "example.net"},
      {"  <Bob.Smith@EXAMPLE.net.>  ", "Bob.Smith", "example.net"},
      {"root", "root", ""},
      {"<@relay1.example,@relay2.example:u@d.example>", "u", "d.example"},
      {"\"john doe\"@example.org", "\"john doe\"", "example.org"},
      {"\"a@b\"@example.org", "\"a@b\"", "example.org"},
      {"\"q\\\"x\"@example.org", "\"q\\\"x\"", "example.org"},
      {"u%other.example@example.net", "u%other.example", "example.net"},
      {"host!user", "host!user", ""},
      {"host!user@example.net", "host!user", "example.net"},
      {"a@b@c.example", "a@b", "c.example"},
      {"postmaster@[127.0.0.1]", "postmaster", "[127.0.0.1]"},
      {"root@[IPv6:::1]", "root", "[ipv6:::1]"},
      {"x+tag@sub.example.com", "x+tag", "sub.example.com"},
  };
  for (const Good& c : cases) {
    auto a = ParseAddress(c.in);
    ASSERT_TRUE(a.ok()) << c.in << ": " << a.status();
    EXPECT_FALSE(a->null) << c.in;
    EXPECT_EQ(a->local, c.local) << c.in;
    EXPECT_EQ(a->domain, c.domain) << c.in;
  }
}

TEST(AddressTest, NullAddress) {
  for (const char* in : {"<>", "", "  < >  "}) {
    auto a = ParseAddress(in);
    ASSERT_TRUE(a.ok()) << in;
    EXPECT_TRUE(a->null) << in;
    EXPECT_EQ(a->ToString(), "");
  }
}

TEST(AddressTest, RefusesMalformed) {
  const char* bad[] = {
      "<bob@example.net",       // no '>'
      "bob@example.net>",       // no '<'
      "@example.net",           // empty local part
      "bob@",                   // empty domain
      "bob@exa mple.net",       // space
      "bob smith@example.net",  // space outside quotes
      "\"unterminated@example.net",
      "bo\"b\"x@example.net",  // quote inside an unquoted local part
      "bob@.example.net",
      "bob@example..net",
      "bob@[1.2.3.4",
      "bob@exa$mple.net",
      "@relay:",        // nothing after the source route
      "@:u@d.example",  // empty hop
      "a,b@example.net",
      "bob\r@example.net",
      "a@p..",        // two trailing dots: an empty label
      "<@r:@x@y@z>",  // the mailbox would read back as a source route
      "@r:@x@y",
  };
  for (const char* in : bad) {
    EXPECT_FALSE(ParseAddress(in).ok()) << in;
  }
  EXPECT_FALSE(ParseAddress(std::string(300, 'a') + "@example.net").ok());
  EXPECT_FALSE(ParseAddress("a@" + std::string(256, 'b')).ok());
}

TEST(AddressTest, UnquoteAndFormat) {
  EXPECT_EQ(UnquoteLocalPart("\"john doe\""), "john doe");
  EXPECT_EQ(UnquoteLocalPart("\"q\\\"x\""), "q\"x");
  EXPECT_EQ(UnquoteLocalPart("plain"), "plain");
  EXPECT_EQ(ParseAddress("<Bob@EXAMPLE.org>")->ToString(), "Bob@example.org");
  EXPECT_EQ(ParseAddress("root")->ToString(), "root");
}

// An address as the spool and the router write it back: the source route
// (if any) then local@domain, in angle brackets.
std::string Print(const Address& a) {
  std::string route;
  for (const std::string& hop : a.source_route) {
    route += route.empty() ? "@" : ",@";
    route += hop;
  }
  if (!route.empty()) route += ":";
  return StrCat("<", route, a.ToString(), ">");
}

void ExpectStable(std::string_view in) {
  auto a = ParseAddress(in);
  if (!a.ok()) return;
  std::string printed = Print(*a);
  auto b = ParseAddress(printed);
  ASSERT_TRUE(b.ok()) << "accepted '" << in << "' but not its printed form '"
                      << printed << "': " << b.status();
  EXPECT_EQ(b->null, a->null) << in;
  EXPECT_EQ(b->local, a->local) << in;
  EXPECT_EQ(b->domain, a->domain) << in;
  EXPECT_EQ(b->source_route, a->source_route) << in;
  EXPECT_EQ(Print(*b), printed) << in;
}

// parse -> print -> parse gives the same address, for the fuzzer's findings
// and for random strings over the characters that matter to the grammar.
TEST(AddressTest, ParsePrintParseIsStable) {
  for (const char* in :
       {"a@p..", "<@r:@x@y@z>", "a@p.", "<@r.:a@b>", "\"a@b\"@c", "a@b@c",
        "\"\"@x", "<@a,@b:c@d>", "x@[1.2.3.4].", "u%h@D", "h!u"}) {
    ExpectStable(in);
  }
  constexpr std::string_view kAlphabet = "ab.@\"\\:,<>[] %!-\x80\xff";
  std::mt19937 rng(20261121);
  std::uniform_int_distribution<size_t> len(0, 14);
  std::uniform_int_distribution<size_t> pick(0, kAlphabet.size() - 1);
  int accepted = 0;
  for (int i = 0; i < 200000; ++i) {
    std::string in(len(rng), '\0');
    for (char& c : in) c = kAlphabet[pick(rng)];
    ExpectStable(in);
    accepted += ParseAddress(in).ok();
    if (HasFailure()) {
      ADD_FAILURE() << "first unstable input: '" << in << "'";
      break;
    }
  }
  EXPECT_GT(accepted, 1000);  // the alphabet does reach valid addresses
}

// The fuzzer's finding: a bare address of the longest length allowed
// printed back with its angle brackets was "too long".
TEST(AddressTest, TheLengthBoundIsInsideTheBrackets) {
  std::string route;
  while (route.size() + 4 < kMaxAddress - 4) route += "@r.x,";
  route.back() = ':';
  std::string longest =
      route + std::string(kMaxAddress - route.size() - 4, 'a') + "@b.c";
  ASSERT_EQ(longest.size(), kMaxAddress);
  ASSERT_TRUE(ParseAddress(longest).ok()) << ParseAddress(longest).status();
  EXPECT_TRUE(ParseAddress(StrCat("<", longest, ">")).ok());
  ExpectStable(longest);
  EXPECT_FALSE(ParseAddress(StrCat("a", longest)).ok());
  EXPECT_FALSE(ParseAddress(StrCat("<a", longest, ">")).ok());
}

}  // namespace
}  // namespace zm::mail
