#include "node/mailq/mailq.h"

#include <gtest/gtest.h>

#include <sstream>

namespace zm::mailq {
namespace {

TEST(MailqTest, ListingGroupsByThread) {
  std::vector<std::string> lines = {
      R"({"queue_id":"A-t1","recipients":[{"channel":"smtp","host":"x.example","attempts":3,"expires":1000,"delay_reason":"connect to x.example: refused"}]})",
      R"({"queue_id":"B-t1","recipients":[{"channel":"smtp","host":"x.example","attempts":1,"expires":100000,"delay_reason":""},{"channel":"local","host":"bob","attempts":0,"expires":100000}]})",
      "not json"};
  std::string out = RenderListing(lines, "", "", 0);
  EXPECT_EQ(out,
            "local/bob:\n"
            "  B-t1: (0 tries, expires in 1d3h46m40s)\n"
            "smtp/x.example:\n"
            "  A-t1: (3 tries, expires in 16m40s) \\\n"
            "    connect to x.example: refused\n"
            "  B-t1: (1 try, expires in 1d3h46m40s)\n");
  EXPECT_EQ(RenderListing(lines, "local", "", 0),
            "local/bob:\n  B-t1: (0 tries, expires in 1d3h46m40s)\n");
  EXPECT_EQ(RenderListing({}, "", "", 0), "Mail queue is empty\n");
}

TEST(MailqTest, UsageErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(Main({"-x"}, out, err), 64);
  EXPECT_NE(err.str().find("unknown argument '-x'"), std::string::npos);
  std::ostringstream err2;
  EXPECT_EQ(Main({"-U", "nobody"}, out, err2), 64);
  EXPECT_NE(err2.str().find("-U needs user/password"), std::string::npos);
  std::ostringstream err3;
  EXPECT_EQ(Main({"-C", "/nonexistent/node"}, out, err3), 78);
  EXPECT_NE(err3.str().find("no node at /nonexistent/node"), std::string::npos);
}

}  // namespace
}  // namespace zm::mailq
