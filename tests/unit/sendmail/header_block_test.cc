#include "node/sendmail/header_block.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace zm::submit {
namespace {

TEST(SendmailHeaderBlockTest, FieldsFoldsAndTheBlankLine) {
  std::string text =
      "To: a@x,\n"
      "\tb@y\n"
      "Subject : hello\n"
      "X-Empty:\n"
      "\n"
      "Body: not a header\n";
  auto hb = ParseHeaderBlock(text, true, {});
  ASSERT_TRUE(hb.ok()) << hb.status();
  ASSERT_EQ(hb->fields.size(), 3u);
  EXPECT_EQ(hb->fields[0].name, "To");
  EXPECT_EQ(hb->fields[0].value, " a@x,\tb@y");
  EXPECT_EQ(hb->fields[0].raw, "To: a@x,\n\tb@y\n");
  EXPECT_EQ(hb->fields[1].name, "Subject");
  EXPECT_EQ(hb->fields[2].value, "");
  EXPECT_TRUE(hb->blank_line);
  EXPECT_EQ(text.substr(hb->end), "Body: not a header\n");
  EXPECT_TRUE(hb->Has("subject"));
  EXPECT_FALSE(hb->Has("Date"));
}

TEST(SendmailHeaderBlockTest, ANonHeaderLineStartsTheBody) {
  std::string text = "Subject: x\nhello world\nmore\n";
  auto hb = ParseHeaderBlock(text, true, {});
  ASSERT_TRUE(hb.ok());
  EXPECT_EQ(hb->fields.size(), 1u);
  EXPECT_FALSE(hb->blank_line);
  EXPECT_EQ(text.substr(hb->end), "hello world\nmore\n");

  auto none = ParseHeaderBlock("hi\n", true, {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->fields.empty());
  EXPECT_EQ(none->end, 0u);

  // A continuation line with no field before it is body text.
  auto cont = ParseHeaderBlock(" indented\n", true, {});
  ASSERT_TRUE(cont.ok());
  EXPECT_TRUE(cont->fields.empty());
}

TEST(SendmailHeaderBlockTest, HeadersOnlyAndAMissingFinalNewline) {
  auto hb = ParseHeaderBlock("Subject: x\nTo: a@b", true, {});
  ASSERT_TRUE(hb.ok());
  ASSERT_EQ(hb->fields.size(), 2u);
  EXPECT_EQ(hb->fields[1].raw, "To: a@b\n");
  EXPECT_EQ(hb->end, 18u);
}

TEST(SendmailHeaderBlockTest, SizeLimits) {
  HeaderLimits limits;
  limits.max_header_bytes = 64;
  std::string big;
  for (int i = 0; i < 10; ++i) big += "X-Field: 0123456789\n";
  EXPECT_FALSE(ParseHeaderBlock(big, true, limits).ok());
  // Not at the end of input and no end of the section in sight.
  EXPECT_FALSE(ParseHeaderBlock("Subject: x\nTo: a", false, {}).ok());

  HeaderLimits field;
  field.max_field_bytes = 16;
  EXPECT_FALSE(
      ParseHeaderBlock("Subject: 0123456789abcdef\n\n", true, field).ok());
  EXPECT_FALSE(
      ParseHeaderBlock("Subject: 0123\n 456789abcdef\n\n", true, field).ok());

  HeaderLimits count;
  count.max_fields = 2;
  EXPECT_FALSE(ParseHeaderBlock("A: 1\nB: 2\nC: 3\n\n", true, count).ok());
}

std::vector<std::string> Recipients(const std::string& text) {
  auto hb = ParseHeaderBlock(text, true, {});
  EXPECT_TRUE(hb.ok());
  auto r = HeaderRecipients(*hb);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : std::vector<std::string>{};
}

TEST(SendmailHeaderRecipientsTest, ToCcBccInOrder) {
  EXPECT_EQ(Recipients("From: me@x\nTo: a@x, B <b@y>\ncc: c@z\n"
                       "BCC: hidden@w\nReply-To: no@x\n\n"),
            (std::vector<std::string>{"a@x", "b@y", "c@z", "hidden@w"}));
}

TEST(SendmailHeaderRecipientsTest, ResentFieldsWin) {
  EXPECT_EQ(Recipients("To: old@x\nResent-To: new@y\nResent-Bcc: hid@z\n\n"),
            (std::vector<std::string>{"new@y", "hid@z"}));
}

TEST(SendmailHeaderRecipientsTest, AnUnparseableFieldIsNamed) {
  auto hb = ParseHeaderBlock("To: a@x\nCc: Joe Bloggs joe@x\n\n", true, {});
  ASSERT_TRUE(hb.ok());
  auto r = HeaderRecipients(*hb);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("Cc: header"),
            std::string::npos)
      << r.status();
}

TEST(SendmailHeaderRecipientsTest, BlindFields) {
  EXPECT_TRUE(IsBlindField("bcc"));
  EXPECT_TRUE(IsBlindField("Resent-BCC"));
  EXPECT_FALSE(IsBlindField("Cc"));
}

}  // namespace
}  // namespace zm::submit
