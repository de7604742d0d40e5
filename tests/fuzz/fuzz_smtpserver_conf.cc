// libFuzzer: smtpserver.conf (PARAM lines and HELO/EHLO patterns). Any
// input either parses or is refused with an error naming the file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "node/smtpserver/smtpserver_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string path = zm::fuzz::WriteEtc("smtpserver.conf", in);
  auto conf = zm::smtpserver::ParseServerConfig(path);
  if (!conf.ok()) {
    zm::fuzz::Expect(zm::fuzz::NamesFile(conf.status(), "smtpserver.conf"));
  }
  return 0;
}
