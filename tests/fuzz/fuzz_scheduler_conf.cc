// libFuzzer: scheduler.conf (channel/host selectors, parameter blocks,
// inheritance). A parsed file must also answer Resolve() for any thread.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "node/scheduler/scheduler_conf.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string file = "scheduler.conf";
  auto conf =
      zm::scheduler::ParseSchedulerConf(in, file, zm::fuzz::ScratchNode());
  if (!conf.ok()) {
    zm::fuzz::Expect(zm::fuzz::NamesFile(conf.status(), file));
    return 0;
  }
  (void)conf->Resolve("smtp", "example.org");
  (void)conf->Resolve("local", "root");
  (void)conf->Resolve("", "");
  (void)conf->EffectiveMaxTa();
  return 0;
}
