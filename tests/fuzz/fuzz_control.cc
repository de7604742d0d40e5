// libFuzzer: the spool's file readers: transport control files (what the
// scheduler and the agents read back after a crash, torn appends included)
// and message files (envelope + message). The first byte picks the reader.
// A control file that parses must survive a serialise/parse round trip of
// its result lines.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "node/mail/control.h"
#include "node/mail/envelope.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    (void)zm::mail::ParseMessageFile(in);
    return 0;
  }
  auto cf = zm::mail::ParseControl(in);
  if (!cf.ok()) return 0;
  // What parsed serialises to a file that parses.
  zm::fuzz::Expect(
      zm::mail::ParseControl(zm::mail::SerializeControl(*cf)).ok());
  // Appending its own results again must give a file that still parses.
  std::string again(in);
  for (const auto& r : cf->results) again += zm::mail::SerializeResult(r);
  auto cf2 = zm::mail::ParseControl(again);
  zm::fuzz::Expect(cf2.ok());
  return 0;
}
