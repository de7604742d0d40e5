#include "node/sendmail/address_list.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace zm::submit {
namespace {

struct Good {
  Good(std::string t, std::vector<std::string> a,
       std::vector<std::string> n = {})
      : text(std::move(t)), addresses(std::move(a)), names(std::move(n)) {}
  std::string text;
  std::vector<std::string> addresses;
  std::vector<std::string> names;  // empty: not checked
};

class SendmailGoodLists : public ::testing::TestWithParam<Good> {};

TEST_P(SendmailGoodLists, YieldTheAddrSpecs) {
  const Good& g = GetParam();
  auto list = ParseAddressList(g.text);
  ASSERT_TRUE(list.ok()) << g.text << ": " << list.status();
  std::vector<std::string> got, names;
  for (const auto& m : *list) {
    got.push_back(m.address);
    names.push_back(m.display_name);
  }
  EXPECT_EQ(got, g.addresses) << g.text;
  if (!g.names.empty()) {
    EXPECT_EQ(names, g.names) << g.text;
  }
}

INSTANTIATE_TEST_SUITE_P(
    SendmailAddressList, SendmailGoodLists,
    ::testing::Values(
        Good{"alice@example.org", {"alice@example.org"}, {""}},
        Good{"root", {"root"}}, Good{"  a@x ,b@y,  ", {"a@x", "b@y"}},
        Good{",,a@x,,", {"a@x"}},
        Good{"Bob Smith <bob@example.org>", {"bob@example.org"}, {"Bob Smith"}},
        Good{"\"Smith, Bob\" <bob@example.org>, c@d",
             {"bob@example.org", "c@d"},
             {"Smith, Bob", ""}},
        Good{"John Q. Public <jqp@example.com>",
             {"jqp@example.com"},
             {"John Q. Public"}},
        Good{"<bare@example.org>", {"bare@example.org"}, {""}},
        Good{"a@x (Alice (the (nested) one))", {"a@x"}},
        Good{"(lead) Bob (mid) <b@y> (trail)", {"b@y"}, {"Bob"}},
        Good{"\"john doe\"@example.com", {"\"john doe\"@example.com"}},
        Good{"\"a\\\"q\"@example.com", {"\"a\\\"q\"@example.com"}},
        Good{"user@[192.0.2.1]", {"user@[192.0.2.1]"}},
        Good{"undisclosed-recipients:;", {}},
        Good{"friends: a@x, B <b@y>;, c@z", {"a@x", "b@y", "c@z"}},
        Good{"\"the team\": a@x;", {"a@x"}}, Good{"empty:;, x@y", {"x@y"}},
        Good{"<@relay.example,@r2.example:u@example.org>", {"u@example.org"}},
        Good{"first.last+tag@sub.example.org",
             {"first.last+tag@sub.example.org"}},
        Good{"J\xc3\xbcrgen <j@example.de>",
             {"j@example.de"},
             {"J\xc3\xbcrgen"}},
        Good{"a@x,\r\n\tb@y", {"a@x", "b@y"}}, Good{"", {}}));

class SendmailBadLists : public ::testing::TestWithParam<std::string> {};

TEST_P(SendmailBadLists, AreRefusedWithAReason) {
  auto list = ParseAddressList(GetParam());
  ASSERT_FALSE(list.ok()) << GetParam();
  EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(list.status().message().empty());
}

INSTANTIATE_TEST_SUITE_P(
    SendmailAddressList, SendmailBadLists,
    ::testing::Values("Bob Smith bob@example.org",   // a name needs <>
                      "Bob <bob@example.org",        // missing '>'
                      "\"unterminated@example.org",  // quote
                      "a@x (open comment",           // comment
                      "a@x)",                        // stray ')'
                      "a@",                          // no domain
                      "a@x..org",                    // empty label
                      "<>",                          // empty address
                      "group: a@x",                  // group not closed
                      "g1: g2: a@x;;",               // nested group
                      "user@[1.2.3.4",               // literal
                      "a@x b@y",                     // missing comma
                      "g: a@x; c@z",                 // comma after group
                      "a\x01@x"));                   // control character

TEST(SendmailAddressListLimitsTest, BoundsAreEnforced) {
  AddressListLimits limits;
  limits.max_addresses = 2;
  EXPECT_FALSE(ParseAddressList("a@x, b@x, c@x", limits).ok());
  EXPECT_TRUE(ParseAddressList("a@x, b@x", limits).ok());
  limits.max_address_bytes = 5;
  EXPECT_FALSE(ParseAddressList("abcdef@x", limits).ok());
  limits.max_text_bytes = 3;
  EXPECT_FALSE(ParseAddressList("a@xy", limits).ok());
}

}  // namespace
}  // namespace zm::submit
