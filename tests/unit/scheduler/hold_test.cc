// The hold agent's handler: a condition that still holds defers; one that
// cleared hands the message back to the router through the spool.
#include "node/ta/hold/hold.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "node/common/fs.h"
#include "node/mail/envelope.h"

namespace zm::hold {
namespace {

class HoldTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-hold-XXXXXX";
    node_.home = ::mkdtemp(tmpl);
    spool::Spool s(node_.spool(), "t1");
    ASSERT_TRUE(s.CreateLayout().ok());
    cf_.queue_id = "0GC4H8WY3TQ2K7PX-t1";
    cf_.sender = "alice@example.org";
    cf_.envid = "env-7";
    cf_.ret = "HDRS";
    rcpt_.channel = "hold";
    rcpt_.host = "dns:remote.example";
    rcpt_.user = "bob@remote.example";
    rcpt_.orig = "bobby@alias.example";
    rcpt_.notify = "SUCCESS,FAILURE";
    rcpt_.orcpt = "rfc822;bobby@alias.example";
  }
  void TearDown() override { std::filesystem::remove_all(node_.home); }

  // The agent with the built-in kinds and a "dns" kind that answers
  // `verdict` (recording its argument in *kind/*arg).
  ta::Result Run(absl::Status verdict, std::string* kind, std::string* arg) {
    Kinds kinds = BuiltinKinds();
    kinds["dns"] = [&](std::string_view a) -> absl::StatusOr<Release> {
      *kind = "dns";
      *arg = std::string(a);
      if (!verdict.ok()) return verdict;
      return Release{};
    };
    HoldAgent agent(node_, "t1", std::move(kinds));
    std::string host = rcpt_.host;
    ta::Delivery d{cf_.queue_id, host, cf_, rcpt_, message_};
    return agent.Deliver(d);
  }

  NodeDir node_;
  mail::ControlFile cf_;
  mail::ControlRecipient rcpt_;
  std::string message_ = "Subject: held\n\nbody\n";
};

TEST_F(HoldTest, StillFailingDefers) {
  std::string kind, arg;
  ta::Result r = Run(absl::UnavailableError("SERVFAIL"), &kind, &arg);
  EXPECT_EQ(kind, "dns");
  EXPECT_EQ(arg, "remote.example");
  EXPECT_EQ(r.status, ta::Result::Status::kDeferred);
  EXPECT_EQ(r.dsn, "4.4.3");
  EXPECT_EQ(r.diag, "still held: SERVFAIL");
  EXPECT_TRUE(fs::ListDir(node_.spool() + "/router")->empty());
}

TEST_F(HoldTest, ClearedGoesBackToTheRouter) {
  std::string kind, arg;
  ta::Result r = Run(absl::OkStatus(), &kind, &arg);
  ASSERT_EQ(r.status, ta::Result::Status::kOk) << r.diag;
  EXPECT_EQ(r.relay, "router");
  auto names = fs::ListDir(node_.spool() + "/router");
  ASSERT_TRUE(names.ok());
  ASSERT_EQ(names->size(), 1u);
  EXPECT_NE(r.diag.find((*names)[0]), std::string::npos) << r.diag;
  auto text = fs::ReadFile(node_.spool() + "/router/" + (*names)[0]);
  ASSERT_TRUE(text.ok());
  auto mf = mail::ParseMessageFile(*text);
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->envelope.sender, "alice@example.org");
  ASSERT_EQ(mf->envelope.recipients.size(), 1u);
  EXPECT_EQ(mf->envelope.recipients[0].address, "bob@remote.example");
  EXPECT_EQ(mf->envelope.recipients[0].notify, "SUCCESS,FAILURE");
  EXPECT_EQ(mf->envelope.recipients[0].orcpt, "rfc822;bobby@alias.example");
  EXPECT_EQ(mf->envelope.envid, "env-7");
  EXPECT_EQ(mf->envelope.ret, "HDRS");
  EXPECT_EQ(text->substr(mf->body_offset), message_);
}

// owner: is an ordinary kind of the table: cleared at once, its argument
// the new sender, and the dns check is not asked.
TEST_F(HoldTest, OwnerKindReleasesWithTheOwnerAsSender) {
  rcpt_.host = "owner:owner-team@example.org";
  std::string kind, arg;
  ta::Result r = Run(absl::UnavailableError("never asked"), &kind, &arg);
  ASSERT_EQ(r.status, ta::Result::Status::kOk) << r.diag;
  EXPECT_EQ(kind, "");
  auto names = fs::ListDir(node_.spool() + "/router");
  ASSERT_TRUE(names.ok());
  ASSERT_EQ(names->size(), 1u);
  EXPECT_EQ(r.diag, "handed to the router as " + (*names)[0] +
                        " with the list owner <owner-team@example.org> as "
                        "sender");
  auto text = fs::ReadFile(node_.spool() + "/router/" + (*names)[0]);
  ASSERT_TRUE(text.ok());
  auto mf = mail::ParseMessageFile(*text);
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->envelope.sender, "owner-team@example.org");
}

TEST_F(HoldTest, UnknownConditionDefers) {
  rcpt_.host = "whatever";
  std::string kind, arg;
  ta::Result r = Run(absl::OkStatus(), &kind, &arg);
  EXPECT_EQ(r.status, ta::Result::Status::kDeferred);
  EXPECT_EQ(r.diag, "unknown hold condition 'whatever'");
  rcpt_.host = "frost:x";
  r = Run(absl::OkStatus(), &kind, &arg);
  EXPECT_EQ(r.status, ta::Result::Status::kDeferred);
  EXPECT_EQ(r.diag,
            "cannot check frost:x: unknown hold condition kind 'frost'");
  std::string k2, a2;
  rcpt_.host = "dns:x.example";
  r = Run(absl::FailedPreconditionError("no resolver"), &k2, &a2);
  EXPECT_EQ(r.status, ta::Result::Status::kDeferred);
  EXPECT_EQ(r.dsn, "4.3.0");
}

}  // namespace
}  // namespace zm::hold
