// libFuzzer: the router's own files, router.conf and dbases.conf. The
// first byte picks the file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "node/relations/dbases_conf.h"
#include "node/router/router_conf.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const zm::NodeDir& node = zm::fuzz::ScratchNode();
  if (data[0] & 1) {
    zm::fuzz::WriteEtc("router.conf", in);
    auto conf = zm::router::LoadRouterConf(node);
    if (!conf.ok()) {
      zm::fuzz::Expect(zm::fuzz::NamesFile(conf.status(), "router.conf"));
    }
  } else {
    std::string path = zm::fuzz::WriteEtc("dbases.conf", in);
    auto specs = zm::relations::ParseDbasesConf(path, node);
    if (!specs.ok()) {
      zm::fuzz::Expect(zm::fuzz::NamesFile(specs.status(), "dbases.conf"));
    }
  }
  return 0;
}
