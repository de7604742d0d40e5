#include "node/mail/address.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace zm::mail
