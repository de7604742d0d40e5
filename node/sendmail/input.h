// zm::submit: turning what a local caller pipes into sendmail or rmail into
// the spool's form of a message (LF line endings, nothing else changed).
//
//   InputNormalizer norm(/*dot_terminates=*/!ignore_dots);
//   std::string out;
//   norm.Feed(chunk, &out);          // as often as input arrives
//   if (norm.done()) ...             // a line with a single '.' was seen
//   norm.Finish(&out);               // at end of input
//
// CRLF becomes LF (so CRLF and LF callers give the same message); a lone CR
// is kept. Without -i a line holding only "." (or ".\r") ends the message,
// as sendmail(8) does; there is no dot-unstuffing (sendmail -bm never
// stuffs). A message whose last line lacks its newline gets one.
//
// ParseUucpFromLines() reads the envelope sender rmail gets from the
// "From sender date remote from host" and ">From ..." lines at the top.
// I/O-free, thread-compatible.
#ifndef ZM_SENDMAIL_INPUT_H_
#define ZM_SENDMAIL_INPUT_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace zm::submit {

class InputNormalizer {
 public:
  explicit InputNormalizer(bool dot_terminates)
      : dot_terminates_(dot_terminates) {}

  // Appends the normalized form of `in` to *out. Input after the
  // terminating "." line is ignored.
  void Feed(std::string_view in, std::string* out);

  // End of input: releases held-back characters and ends the last line.
  void Finish(std::string* out);

  // True once the terminating "." line was seen.
  bool done() const { return done_; }

 private:
  void Emit(char c, std::string* out);

  const bool dot_terminates_;
  bool done_ = false;
  bool at_line_start_ = true;
  bool pending_cr_ = false;  // a CR waits to see whether LF follows
  int pending_dot_ = 0;      // 1: "." held at line start; 2: ".\r" held
  bool emitted_ = false;
  char last_ = '\n';
};

struct UucpFrom {
  std::string sender;  // "host1!host2!user", or "user" without remote from
  size_t length = 0;   // bytes of the From lines at the start of the text
};

// Reads the leading "From user date [remote from host]" line and the
// ">From ..." lines after it (the forwarding hosts) as traditional rmail
// does: the sender is the hosts of the lines, in order, each followed by
// '!', then the user of the last line. NotFound if the text does not start
// with "From "; InvalidArgument if such a line names no user.
absl::StatusOr<UucpFrom> ParseUucpFromLines(std::string_view text);

// Length of a leading mbox "From " line (sendmail drops it), else 0.
size_t LeadingFromLineLength(std::string_view text);

}  // namespace zm::submit

#endif  // ZM_SENDMAIL_INPUT_H_
