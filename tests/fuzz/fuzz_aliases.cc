// libFuzzer: the relation sources: aliases, plain `key value` files and
// :include: lists. The first byte picks the parser and the options.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "node/relations/relation_source.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zm::relations;
  if (size == 0) return 0;
  const uint8_t opts = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const bool lower = opts & 4;
  switch (opts & 3) {
    case 0: {
      auto entries = ParseAliasesSource(in, "aliases", lower);
      if (!entries.ok()) {
        zm::fuzz::Expect(zm::fuzz::NamesFile(entries.status(), "aliases"));
        break;
      }
      // Every alias value is a target list the router splits again.
      for (const auto& e : *entries) {
        for (const auto& t : SplitTargetList(e.value)) {
          (void)NormalizeAliasTarget(t);
        }
      }
      break;
    }
    case 1: {
      auto entries = ParsePlainSource(in, "routes", lower);
      if (!entries.ok()) {
        zm::fuzz::Expect(zm::fuzz::NamesFile(entries.status(), "routes"));
      }
      break;
    }
    case 2: {
      auto targets = ParseIncludeFile(in, "list.inc");
      if (!targets.ok()) {
        zm::fuzz::Expect(zm::fuzz::NamesFile(targets.status(), "list.inc"));
      }
      break;
    }
    default:
      for (const auto& t : SplitTargetList(in)) (void)NormalizeAliasTarget(t);
  }
  return 0;
}
