// libFuzzer: the transport-agent protocol: the job lines the scheduler
// writes to an agent's stdin (`queue-id TAB host(xtext) TAB idx[,idx]`),
// and the result line an agent writes back for any diagnostic text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "node/ta/common/ta.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto job = zm::ta::ParseJob(in);
  if (job.ok()) {
    zm::fuzz::Expect(!job->indexes.empty());
    for (int i : job->indexes) zm::fuzz::Expect(i >= 0);
  }
  // Whatever an agent has to say, its result is one line with 8 fields.
  zm::ta::Result r;
  r.diag = std::string(in);
  r.relay = std::string(in);
  r.dsn = std::string(in.substr(0, 12));
  std::string line = zm::ta::FormatResult("0GC4H8WY3TQ2K7PX-t1", 1, r, 0.5);
  zm::fuzz::Expect(!line.empty() && line.back() == '\n');
  zm::fuzz::Expect(line.find('\n') == line.size() - 1);
  return 0;
}
