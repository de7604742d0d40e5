#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "node/sendmail/sendmail.h"
#include "node/sendmail/submit.h"

namespace zm::sendmail {
namespace {

Options Parse(std::vector<std::string> argv) {
  argv.insert(argv.begin(), "sendmail");
  auto o = ParseArgs(argv);
  EXPECT_TRUE(o.ok()) << o.status();
  return o.ok() ? *o : Options{};
}

bool Refused(std::vector<std::string> argv) {
  argv.insert(argv.begin(), "sendmail");
  auto o = ParseArgs(argv);
  return !o.ok() && o.status().code() == absl::StatusCode::kInvalidArgument;
}

TEST(SendmailFlagsTest, PhpTI) {
  Options o = Parse({"-t", "-i"});
  EXPECT_TRUE(o.request.extract_recipients);
  EXPECT_FALSE(o.request.dot_terminates);
  EXPECT_TRUE(o.request.recipients.empty());
  EXPECT_EQ(o.mode, Mode::kSubmit);
}

TEST(SendmailFlagsTest, Cron) {
  Options o = Parse({"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "user"});
  EXPECT_EQ(o.request.full_name, "CronDaemon");
  EXPECT_EQ(o.request.bodytype, "8BITMIME");
  EXPECT_FALSE(o.request.dot_terminates);
  EXPECT_EQ(o.request.recipients, std::vector<std::string>{"user"});
}

TEST(SendmailFlagsTest, MuttMailxGit) {
  Options mutt = Parse({"-oem", "-oi", "--", "a@x", "-not-an-option@y"});
  EXPECT_FALSE(mutt.request.dot_terminates);
  EXPECT_EQ(mutt.request.recipients,
            (std::vector<std::string>{"a@x", "-not-an-option@y"}));
  Options mailx = Parse({"-oi", "-f", "x@y", "-t"});
  EXPECT_EQ(mailx.request.sender, "x@y");
  EXPECT_TRUE(mailx.request.sender_given);
  EXPECT_TRUE(mailx.request.extract_recipients);
  Options git = Parse({"-i", "-f", "x@y", "a@b", "c@d"});
  EXPECT_EQ(git.request.recipients, (std::vector<std::string>{"a@b", "c@d"}));
}

TEST(SendmailFlagsTest, AttachedSeparateAndClustered) {
  Options o = Parse({"-fuser", "-N", "success,failure", "-Rhdrs", "-V", "e1",
                     "-ti", "-B", "7bit", "-r", "<other@x>"});
  EXPECT_EQ(o.request.sender, "other@x");
  EXPECT_EQ(o.request.notify, "SUCCESS,FAILURE");
  EXPECT_EQ(o.request.ret, "HDRS");
  EXPECT_EQ(o.request.envid, "e1");
  EXPECT_EQ(o.request.bodytype, "7BIT");
  EXPECT_TRUE(o.request.extract_recipients);
  EXPECT_FALSE(o.request.dot_terminates);
  EXPECT_EQ(Parse({"-Nnever"}).request.notify, "NEVER");
}

TEST(SendmailFlagsTest, NullSender) {
  for (std::string v : {"<>", ""}) {
    Options o = Parse({"-f", v, "a@b"});
    EXPECT_TRUE(o.request.sender_given);
    EXPECT_EQ(o.request.sender, "");
  }
  Options o = Parse({"-f<>", "a@b"});
  EXPECT_EQ(o.request.sender, "");
}

TEST(SendmailFlagsTest, IgnoredOptionsAreAccepted) {
  Options o =
      Parse({"-em",  "-ep",    "-eq",  "-ew",   "-oem", "-oep",        "-oee",
             "-odb", "-odi",   "-odq", "-U",    "-G",   "-L",          "tag",
             "-X",   "/tmp/x", "-h",   "5",     "-O",   "Timeout.x=1", "-A",
             "c",    "-Am",    "-o",   "Q/tmp", "-m",   "-n",          "a@b"});
  EXPECT_TRUE(o.request.dot_terminates);
  EXPECT_EQ(o.request.recipients, std::vector<std::string>{"a@b"});
  EXPECT_FALSE(o.ignored.empty());
  EXPECT_FALSE(Parse({"-o", "i"}).request.dot_terminates);
  EXPECT_FALSE(Parse({"-OIgnoreDots=true"}).request.dot_terminates);
  EXPECT_FALSE(Parse({"-O", "IgnoreDots"}).request.dot_terminates);
}

TEST(SendmailFlagsTest, Modes) {
  EXPECT_EQ(Parse({"-bm", "a"}).mode, Mode::kSubmit);
  EXPECT_EQ(Parse({"-bs"}).mode, Mode::kSmtp);
  EXPECT_EQ(Parse({"-bv", "a"}).mode, Mode::kVerify);
  EXPECT_EQ(Parse({"-bi"}).mode, Mode::kNewAliases);
  EXPECT_EQ(Parse({"-I"}).mode, Mode::kNewAliases);
  Options bp = Parse({"-C", "/n", "-bp", "-Q", "-v"});
  EXPECT_EQ(bp.mode, Mode::kPrintQueue);
  EXPECT_EQ(bp.node_dir, "/n");
  EXPECT_EQ(bp.mailq_args, (std::vector<std::string>{"-Q", "-v"}));
  EXPECT_FALSE(bp.verbose);
}

TEST(SendmailFlagsTest, QueueRuns) {
  Options q = Parse({"-q"});
  EXPECT_EQ(q.mode, Mode::kRunQueue);
  EXPECT_TRUE(q.queue_site.empty());
  EXPECT_TRUE(q.queue_id.empty());
  EXPECT_EQ(Parse({"-q30m"}).mode, Mode::kRunQueue);
  EXPECT_EQ(Parse({"-qR", "example.org"}).queue_site, "example.org");
  EXPECT_EQ(Parse({"-qRexample.org"}).queue_site, "example.org");
  EXPECT_EQ(Parse({"-qI", "0ABC-mx1"}).queue_id, "0ABC-mx1");
  EXPECT_EQ(Parse({"-qI0ABC-mx1"}).queue_id, "0ABC-mx1");
  EXPECT_TRUE(Refused({"-qR"}));
}

TEST(SendmailFlagsTest, InvokedAsMailqOrNewaliases) {
  auto mq = ParseArgs({"/usr/bin/mailq", "-Q"});
  ASSERT_TRUE(mq.ok());
  EXPECT_EQ(mq->mode, Mode::kPrintQueue);
  EXPECT_EQ(mq->mailq_args, std::vector<std::string>{"-Q"});
  auto na = ParseArgs({"newaliases"});
  ASSERT_TRUE(na.ok());
  EXPECT_EQ(na->mode, Mode::kNewAliases);
}

TEST(SendmailFlagsTest, BadFlagsAreRefused) {
  EXPECT_TRUE(Refused({"-Z"}));
  EXPECT_TRUE(Refused({"-f"}));
  EXPECT_TRUE(Refused({"-N", "sometimes"}));
  EXPECT_TRUE(Refused({"-N", "never,success"}));
  EXPECT_TRUE(Refused({"-R", "most"}));
  EXPECT_TRUE(Refused({"-B", "BINARYMIME"}));
  EXPECT_TRUE(Refused({"-bd"}));
  EXPECT_TRUE(Refused({"-bt"}));
  EXPECT_TRUE(Refused({"-bx"}));
  EXPECT_TRUE(Refused({"-f", "a b@c"}));
}

TEST(SendmailRmailFlagsTest, Recipients) {
  auto o = ParseRmailArgs(
      {"rmail", "-T", "-D", "uucp.example", "-C", "/n", "a", "host!b"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->node_dir, "/n");
  EXPECT_EQ(o->recipients, (std::vector<std::string>{"a", "host!b"}));
  EXPECT_FALSE(ParseRmailArgs({"rmail", "-x", "a"}).ok());
}

TEST(SendmailNotifyTest, Normalized) {
  EXPECT_EQ(*submit::NormalizeNotify("delay, Failure"), "DELAY,FAILURE");
  EXPECT_EQ(*submit::NormalizeNotify("success,success"), "SUCCESS");
  EXPECT_FALSE(submit::NormalizeNotify("").ok());
}

}  // namespace
}  // namespace zm::sendmail
