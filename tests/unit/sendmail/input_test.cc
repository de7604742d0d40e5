#include "node/sendmail/input.h"

#include <gtest/gtest.h>

#include <string>

namespace zm::submit {
namespace {

// Feeds `in` one byte at a time (the hardest split) and all at once; both
// must give the same result.
std::string Normalize(const std::string& in, bool dots, bool* done = nullptr) {
  std::string whole, bytewise;
  InputNormalizer a(dots), b(dots);
  a.Feed(in, &whole);
  a.Finish(&whole);
  for (char c : in) b.Feed(std::string_view(&c, 1), &bytewise);
  b.Finish(&bytewise);
  EXPECT_EQ(whole, bytewise) << "split changed the result for: " << in;
  EXPECT_EQ(a.done(), b.done());
  if (done != nullptr) *done = a.done();
  return whole;
}

TEST(SendmailInputNormalizerTest, CrlfBecomesLf) {
  EXPECT_EQ(Normalize("a\r\nb\r\n", true), "a\nb\n");
  EXPECT_EQ(Normalize("a\nb\n", true), "a\nb\n");
  EXPECT_EQ(Normalize("lone\rcr\n", true), "lone\rcr\n");
  EXPECT_EQ(Normalize("end\r", true), "end\r\n");
}

TEST(SendmailInputNormalizerTest, TheLastLineGetsItsNewline) {
  EXPECT_EQ(Normalize("no newline", true), "no newline\n");
  EXPECT_EQ(Normalize("", true), "");
}

TEST(SendmailInputNormalizerTest, ALoneDotEndsTheMessageWithoutI) {
  bool done = false;
  EXPECT_EQ(Normalize("a\n.\nafter\n", true, &done), "a\n");
  EXPECT_TRUE(done);
  EXPECT_EQ(Normalize("a\r\n.\r\nafter\r\n", true, &done), "a\n");
  EXPECT_TRUE(done);
  EXPECT_EQ(Normalize(".\n", true, &done), "");
  EXPECT_TRUE(done);
  // Dots that are not alone on their line stay, and nothing is unstuffed.
  EXPECT_EQ(Normalize("..\n.x\nx.\n. \n", true, &done), "..\n.x\nx.\n. \n");
  EXPECT_FALSE(done);
  EXPECT_EQ(Normalize(".\rx\n", true, &done), ".\rx\n");
  EXPECT_EQ(Normalize("a\n.", true, &done), "a\n.\n");
  EXPECT_FALSE(done);
}

TEST(SendmailInputNormalizerTest, WithIDotsAreData) {
  bool done = true;
  EXPECT_EQ(Normalize("a\n.\nb\n", false, &done), "a\n.\nb\n");
  EXPECT_FALSE(done);
}

TEST(SendmailUucpFromTest, RemoteHostsMakeABangPath) {
  const std::string from_lines =
      "From joe Mon Nov 20 10:00:00 2026 remote from hostb\n"
      ">From joe Mon Nov 20 09:00:00 2026 remote from hosta\n";
  auto f = ParseUucpFromLines(from_lines + "Subject: x\n");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->sender, "hostb!hosta!joe");
  EXPECT_EQ(f->length, from_lines.size());
}

TEST(SendmailUucpFromTest, PlainFromLine) {
  auto f =
      ParseUucpFromLines("From alice@example.org Mon Nov 20 2026\r\nX: y\n");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->sender, "alice@example.org");
}

TEST(SendmailUucpFromTest, MissingOrEmpty) {
  EXPECT_TRUE(absl::IsNotFound(ParseUucpFromLines("Subject: x\n").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseUucpFromLines("From \n").status()));
}

TEST(SendmailLeadingFromLineTest, OnlyAnMboxFromLine) {
  EXPECT_EQ(LeadingFromLineLength("From x Mon\nSubject: y\n"), 11u);
  EXPECT_EQ(LeadingFromLineLength("From: x\n"), 0u);
}

}  // namespace
}  // namespace zm::submit
