#include "node/milter/protocol.h"

#include <gtest/gtest.h>

#include <random>

namespace zm::milter {
namespace {

using std::string_literals::operator""s;

Packet P(char c, std::string d) { return Packet{c, std::move(d)}; }

TEST(MilterProtocol, PacketFraming) {
  std::string wire = EncodePacket('c', "") + EncodePacket('h', "A\0b\0"s);
  EXPECT_EQ(wire.substr(0, 5), "\0\0\0\1c"s);
  PacketReader r;
  Packet p;
  // Byte by byte: nothing comes out before the packet is complete.
  for (size_t i = 0; i + 1 < 5; ++i) {
    r.Feed(wire.substr(i, 1));
    EXPECT_EQ(r.Next(&p), PacketReader::kNeedMore);
  }
  r.Feed(wire.substr(4));
  ASSERT_EQ(r.Next(&p), PacketReader::kPacket);
  EXPECT_EQ(p.command, 'c');
  EXPECT_EQ(p.data, "");
  ASSERT_EQ(r.Next(&p), PacketReader::kPacket);
  EXPECT_EQ(p.command, 'h');
  EXPECT_EQ(p.data, "A\0b\0"s);
  EXPECT_EQ(r.Next(&p), PacketReader::kNeedMore);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(MilterProtocol, BadLengthsAreErrors) {
  PacketReader zero;
  zero.Feed("\0\0\0\0"s);
  Packet p;
  EXPECT_EQ(zero.Next(&p), PacketReader::kError);
  PacketReader huge(1024);
  huge.Feed("\0\0\x04\x01"s);  // 1025 > 1024
  EXPECT_EQ(huge.Next(&p), PacketReader::kError);
}

TEST(MilterProtocol, Commands) {
  EXPECT_EQ(EncodeOptNeg(6, 0xff, 0x10),
            "\0\0\0\x0dO\0\0\0\x06\0\0\0\xff\0\0\0\x10"s);
  EXPECT_EQ(EncodeConnect("h", '4', 25, "1.2.3.4"),
            "\0\0\0\x0e"
            "Ch\0"
            "4\0\x19"
            "1.2.3.4\0"s);
  EXPECT_EQ(EncodeConnect("h", 'U', 0, ""),
            "\0\0\0\x04"
            "Ch\0U"s);
  EXPECT_EQ(EncodeMail("<a@b>", {"SIZE=1"}), "\0\0\0\x0eM<a@b>\0SIZE=1\0"s);
  EXPECT_EQ(EncodeHeader("To", "x"), "\0\0\0\x06LTo\0x\0"s);
  EXPECT_EQ(EncodeMacros('C', {{"j", "mx"}}),
            "\0\0\0\x07"
            "DCj\0mx\0"s);
  EXPECT_EQ(EncodeSimple('E'),
            "\0\0\0\x01"
            "E"s);
}

TEST(MilterProtocol, SimpleResponses) {
  EXPECT_EQ(DecodeResponse(P('c', ""))->kind, Response::Kind::kContinue);
  EXPECT_EQ(DecodeResponse(P('a', ""))->kind, Response::Kind::kAccept);
  EXPECT_EQ(DecodeResponse(P('r', ""))->kind, Response::Kind::kReject);
  EXPECT_EQ(DecodeResponse(P('t', ""))->kind, Response::Kind::kTempFail);
  EXPECT_EQ(DecodeResponse(P('d', ""))->kind, Response::Kind::kDiscard);
  EXPECT_EQ(DecodeResponse(P('p', ""))->kind, Response::Kind::kProgress);
  EXPECT_FALSE(DecodeResponse(P('c', "junk")).ok());
  EXPECT_FALSE(DecodeResponse(P('Z', "")).ok());
}

TEST(MilterProtocol, ReplyCodes) {
  auto r = DecodeResponse(P('y', "550 5.7.1 Go away\0"s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->code, 550);
  EXPECT_EQ(r->enhanced, "5.7.1");
  ASSERT_EQ(r->text.size(), 1u);
  EXPECT_EQ(r->text[0], "Go away");
  r = ParseReplyCode("451-4.3.0 one\r\n451 4.3.0 two\r\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->code, 451);
  EXPECT_EQ(r->text, (std::vector<std::string>{"one", "two"}));
  r = ParseReplyCode("554 no enhanced code");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->enhanced, "");
  EXPECT_EQ(r->text[0], "no enhanced code");
  EXPECT_FALSE(ParseReplyCode("250 2.0.0 fine").ok());   // not 4xx/5xx
  EXPECT_FALSE(ParseReplyCode("550 4.7.1 mixed").ok());  // class differs
  EXPECT_FALSE(ParseReplyCode("55").ok());
  EXPECT_FALSE(ParseReplyCode("550-a\r\n451 b").ok());
  EXPECT_FALSE(ParseReplyCode("550 bad\x01text").ok());
  EXPECT_FALSE(DecodeResponse(P('y', "550 no nul"s)).ok());
}

TEST(MilterProtocol, Modifications) {
  auto r = DecodeResponse(P('h', "X-Spam\0yes\0"s));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, Response::Kind::kModification);
  EXPECT_EQ(r->mod.type, Modification::Type::kAddHeader);
  EXPECT_EQ(r->mod.name, "X-Spam");
  EXPECT_EQ(r->mod.value, "yes");
  r = DecodeResponse(P('i',
                       "\0\0\0\x01"
                       "DKIM-Signature\0v=1\0"s));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mod.type, Modification::Type::kInsertHeader);
  EXPECT_EQ(r->mod.index, 1u);
  r = DecodeResponse(P('m', "\0\0\0\x02Subject\0\0"s));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mod.type, Modification::Type::kChangeHeader);
  EXPECT_EQ(r->mod.index, 2u);
  EXPECT_EQ(r->mod.value, "");
  r = DecodeResponse(P('2', "<x@y>\0NOTIFY=NEVER\0"s));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mod.type, Modification::Type::kAddRcptPar);
  EXPECT_EQ(r->mod.args, "NOTIFY=NEVER");
  r = DecodeResponse(P('e', "<new@y>\0"s));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mod.type, Modification::Type::kChangeFrom);
  EXPECT_EQ(r->mod.name, "<new@y>");
  r = DecodeResponse(P('b', "body\r\n"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mod.value, "body\r\n");
  r = DecodeResponse(P('q', "virus\0"s));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mod.type, Modification::Type::kQuarantine);
  // Malformed ones.
  EXPECT_FALSE(DecodeResponse(P('h', "X-Spam\0yes"s)).ok());
  EXPECT_FALSE(DecodeResponse(P('h', "Bad:Name\0v\0"s)).ok());
  EXPECT_FALSE(DecodeResponse(P('h', "\0v\0"s)).ok());
  EXPECT_FALSE(DecodeResponse(P('i', "\0\0"s)).ok());
  EXPECT_FALSE(DecodeResponse(P('+', "\0"s)).ok());
  EXPECT_FALSE(DecodeResponse(P('-', "<a>\0<b>\0"s)).ok());
  EXPECT_FALSE(DecodeResponse(P('O', "\0\0\0\x06"s)).ok());
}

TEST(MilterProtocol, OptionNegotiation) {
  auto r = DecodeResponse(P('O',
                            "\0\0\0\x06\0\0\0\x01\0\0\0\x20"
                            "extra"s));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->version, 6u);
  EXPECT_EQ(r->actions, 1u);
  EXPECT_EQ(r->steps, 0x20u);
}

// Random bytes never crash the reader or the decoder (run under ASan).
TEST(MilterProtocol, GarbageIsBounded) {
  std::mt19937 rng(42);
  for (int round = 0; round < 2000; ++round) {
    std::string junk(rng() % 64, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    if (round % 2 == 0 && junk.size() >= 4) {
      junk[0] = junk[1] = 0;  // plausible small lengths
      junk[2] = 0;
      junk[3] = static_cast<char>(rng() % 40 + 1);
    }
    PacketReader r(4096);
    r.Feed(junk);
    Packet p;
    for (int i = 0; i < 100 && r.Next(&p) == PacketReader::kPacket; ++i) {
      (void)DecodeResponse(p);
    }
    static const char kCmds[] = "carty pOhim+-2ebqfsZ";
    for (char c : kCmds) (void)DecodeResponse(P(c, junk));
  }
}

}  // namespace
}  // namespace zm::milter
