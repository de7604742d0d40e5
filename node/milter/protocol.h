// zm::milter protocol: the wire format of the Sendmail/Postfix milter
// protocol (version 6), without I/O.
//
// Every packet is a 4-byte big-endian length, then a command byte, then
// (length - 1) bytes of data. The MTA sends commands (SMFIC_*), the milter
// answers with responses (SMFIR_*) and, at end of message, modification
// requests before its final answer.
//
//   std::string out = EncodeMail("<alice@example.org>", {"SIZE=100"});
//   PacketReader reader;                         // bounded by kMaxPacket
//   reader.Feed(bytes_from_socket);
//   Packet p;
//   while (reader.Next(&p) == PacketReader::kPacket) {
//     absl::StatusOr<Response> r = DecodeResponse(p);  // garbage -> error
//   }
//
// Value types only; thread-compatible.
#ifndef ZM_MILTER_PROTOCOL_H_
#define ZM_MILTER_PROTOCOL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::milter {

inline constexpr uint32_t kVersion = 6;
// The largest packet a milter may send us (replbody chunks are at most
// 64 KiB in libmilter; headers and reply texts are far smaller).
inline constexpr uint32_t kMaxPacket = 1024 * 1024;
// The body travels in chunks of at most this size (libmilter's
// MILTER_CHUNK_SIZE).
inline constexpr size_t kBodyChunk = 65535;

// Commands (MTA -> milter).
namespace cmd {
inline constexpr char kAbort = 'A';
inline constexpr char kBody = 'B';
inline constexpr char kConnect = 'C';
inline constexpr char kMacro = 'D';
inline constexpr char kEom = 'E';
inline constexpr char kHelo = 'H';
inline constexpr char kHeader = 'L';
inline constexpr char kMail = 'M';
inline constexpr char kEoh = 'N';
inline constexpr char kOptNeg = 'O';
inline constexpr char kQuit = 'Q';
inline constexpr char kRcpt = 'R';
inline constexpr char kData = 'T';
}  // namespace cmd

// Actions the MTA allows the milter (SMFIF_*), negotiated.
namespace action {
inline constexpr uint32_t kAddHeaders = 0x01;
inline constexpr uint32_t kChangeBody = 0x02;
inline constexpr uint32_t kAddRcpt = 0x04;
inline constexpr uint32_t kDelRcpt = 0x08;
inline constexpr uint32_t kChangeHeaders = 0x10;
inline constexpr uint32_t kQuarantine = 0x20;
inline constexpr uint32_t kChangeFrom = 0x40;
inline constexpr uint32_t kAddRcptPar = 0x80;
inline constexpr uint32_t kAll = 0xff;  // everything zmnode honours
}  // namespace action

// Protocol steps (SMFIP_*), negotiated: what the milter does not want to
// see (kNo*) and where it will not answer (kNr*).
namespace step {
inline constexpr uint32_t kNoConnect = 0x01;
inline constexpr uint32_t kNoHelo = 0x02;
inline constexpr uint32_t kNoMail = 0x04;
inline constexpr uint32_t kNoRcpt = 0x08;
inline constexpr uint32_t kNoBody = 0x10;
inline constexpr uint32_t kNoHeaders = 0x20;
inline constexpr uint32_t kNoEoh = 0x40;
inline constexpr uint32_t kNrHeader = 0x80;
inline constexpr uint32_t kNoUnknown = 0x100;
inline constexpr uint32_t kNoData = 0x200;
inline constexpr uint32_t kSkip = 0x400;
inline constexpr uint32_t kRcptRej = 0x800;  // not offered
inline constexpr uint32_t kNrConnect = 0x1000;
inline constexpr uint32_t kNrHelo = 0x2000;
inline constexpr uint32_t kNrMail = 0x4000;
inline constexpr uint32_t kNrRcpt = 0x8000;
inline constexpr uint32_t kNrData = 0x10000;
inline constexpr uint32_t kNrUnknown = 0x20000;
inline constexpr uint32_t kNrEoh = 0x40000;
inline constexpr uint32_t kNrBody = 0x80000;
inline constexpr uint32_t kHeaderLeadingSpace = 0x100000;
// What zmnode offers: every step but kRcptRej.
inline constexpr uint32_t kOffered = 0x1fffff & ~kRcptRej;
}  // namespace step

struct Packet {
  char command = 0;
  std::string data;
};

// Frames one packet.
std::string EncodePacket(char command, std::string_view data);

// Splits a byte stream into packets. A length of 0 or above `max_packet`
// is a protocol error: the stream cannot be trusted any further.
class PacketReader {
 public:
  enum Result { kNeedMore, kPacket, kError };
  explicit PacketReader(uint32_t max_packet = kMaxPacket)
      : max_packet_(max_packet) {}
  void Feed(std::string_view bytes) { buffer_.append(bytes); }
  Result Next(Packet* out);
  // Bytes buffered but not yet returned.
  size_t buffered() const { return buffer_.size() - pos_; }

 private:
  uint32_t max_packet_;
  std::string buffer_;
  size_t pos_ = 0;
};

// ---- commands ------------------------------------------------------------

std::string EncodeOptNeg(uint32_t version, uint32_t actions, uint32_t steps);
// family: '4' IPv4, '6' IPv6, 'L' UNIX socket, 'U' unknown (then no port
// and no address are sent).
std::string EncodeConnect(std::string_view hostname, char family, uint16_t port,
                          std::string_view address);
std::string EncodeHelo(std::string_view name);
// `path` with its angle brackets ("<a@b>", "<>"), then ESMTP parameters.
std::string EncodeMail(std::string_view path,
                       const std::vector<std::string>& params);
std::string EncodeRcpt(std::string_view path,
                       const std::vector<std::string>& params);
std::string EncodeHeader(std::string_view name, std::string_view value);
std::string EncodeMacros(
    char for_command,
    const std::vector<std::pair<std::string, std::string>>& macros);
// Commands without data: kData, kEoh, kEom, kAbort, kQuit; kBody takes
// the chunk as data.
std::string EncodeSimple(char command, std::string_view data = {});

// ---- responses -----------------------------------------------------------

// One modification request sent before the final answer to kEom.
struct Modification {
  enum class Type {
    kAddHeader,     // 'h' name value
    kInsertHeader,  // 'i' index name value (index 0 = before the first)
    kChangeHeader,  // 'm' index name value (index-th of that name, from 1;
                    //     an empty value deletes it)
    kAddRcpt,       // '+' rcpt
    kAddRcptPar,    // '2' rcpt args
    kDelRcpt,       // '-' rcpt
    kChangeFrom,    // 'e' sender args
    kReplaceBody,   // 'b' value = the next chunk of the new body
    kQuarantine,    // 'q' value = the reason
  };
  Type type = Type::kAddHeader;
  uint32_t index = 0;
  std::string name;   // header name; the address for rcpt/from types
  std::string value;  // header value, body chunk, reason
  std::string args;   // ESMTP parameters of kAddRcptPar / kChangeFrom
};

struct Response {
  enum class Kind {
    kContinue,      // 'c'
    kAccept,        // 'a': no more callbacks for this message/connection
    kReject,        // 'r'
    kTempFail,      // 't'
    kDiscard,       // 'd'
    kReplyCode,     // 'y': code/enhanced/text below
    kSkip,          // 's': no more body chunks
    kProgress,      // 'p': still working, wait again
    kModification,  // a Modification (only valid during kEom)
    kOptNeg,        // 'O': the milter's negotiation answer
    kConnFail,      // 'f': drop the connection (treated as tempfail)
  };
  Kind kind = Kind::kContinue;
  // kReplyCode: a 4xx or 5xx code, its enhanced status code ("" when the
  // milter gave none) and text lines (a multi-line reply keeps each line).
  int code = 0;
  std::string enhanced;
  std::vector<std::string> text;
  Modification mod;
  // kOptNeg.
  uint32_t version = 0, actions = 0, steps = 0;
};

// Decodes one packet from a milter. InvalidArgument for anything malformed
// (unknown command, missing NUL terminators, a reply code that is not
// 4xx/5xx); the caller then treats the milter as failed.
absl::StatusOr<Response> DecodeResponse(const Packet& p);

// Parses the text of an SMFIR_REPLYCODE ("550 5.7.1 text", possibly
// multi-line "550-5.7.1 a\r\n550 5.7.1 b"). Exposed for tests.
absl::StatusOr<Response> ParseReplyCode(std::string_view text);

}  // namespace zm::milter

#endif  // ZM_MILTER_PROTOCOL_H_
