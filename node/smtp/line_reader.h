// zm::smtp::LineReader: splits an SMTP input stream into lines, bounded.
//
// Commands are limited to 1000 bytes including CRLF (RFC 5321 4.5.3.1.4):
// a longer command is swallowed up to its end and reported as too_long,
// without ever buffering more than the limit. Message data may carry
// longer lines (real mail does); those come out in fragments marked
// !complete, so memory stays bounded there too.
//
//   LineReader r;
//   r.Append(bytes_from_socket);
//   LineReader::Line l;
//   while (r.Next(LineReader::Mode::kCommand, &l)) { ... l.text ... }
//
// `text` points into the reader's buffer and is valid until the next
// Append() or Next(). Thread-compatible.
#ifndef ZM_SMTP_LINE_READER_H_
#define ZM_SMTP_LINE_READER_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "node/smtp/command.h"

namespace zm::smtp {

class LineReader {
 public:
  enum class Mode { kCommand, kData };
  struct Line {
    std::string_view text;  // without the line ending
    bool crlf = false;      // ended with CRLF (false: bare LF, or a fragment)
    bool complete = true;   // false: a fragment of a longer data line
    bool too_long = false;  // command mode: the line was over the limit
  };

  explicit LineReader(size_t max_command = kMaxCommandLine,
                      size_t data_fragment = 32 * 1024)
      : max_command_(max_command), data_fragment_(data_fragment) {}

  void Append(std::string_view bytes);
  // Next line in `mode`; false if more input is needed.
  bool Next(Mode mode, Line* out);
  // BDAT: up to `max` bytes exactly as received, no line framing; ""
  // when nothing is buffered. Valid until the next Append() or Next().
  std::string_view TakeRaw(size_t max);
  // Throws away everything buffered (STARTTLS: plaintext the client
  // pipelined before the handshake must not be read as commands).
  void Clear();
  // Bytes waiting (part of a line not yet complete).
  size_t buffered() const { return buf_.size() - pos_; }
  // Whether a complete line (or a data fragment) is waiting.
  bool HasLine(Mode mode) const;

 private:
  const size_t max_command_;
  const size_t data_fragment_;
  std::string buf_;
  size_t pos_ = 0;
  bool discarding_ = false;  // inside an over-long command line
  bool mid_line_ = false;    // previous data fragment ended inside a line
};

}  // namespace zm::smtp

#endif  // ZM_SMTP_LINE_READER_H_
