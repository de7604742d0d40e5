// libFuzzer: the envelope address parser (node/mail/address.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "node/mail/address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto a = zm::mail::ParseAddress(in);
  if (a.ok()) {
    std::string s = a->ToString();
    (void)zm::mail::UnquoteLocalPart(a->local);
    // Parsing the result again must be safe too. It is not always the
    // same address (found by this target, reported to the router's
    // owner): "a@b.." becomes "a@b." and then "a@b", and after a source
    // route an unquoted '@' stays in the local part ("<@r:@x@y@z>" ->
    // local "@x@y"), which the next pass reads as a source route.
    (void)zm::mail::ParseAddress(s);
  }
  return 0;
}
