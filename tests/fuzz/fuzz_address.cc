// libFuzzer: the envelope address parser (node/mail/address.h). An address
// it accepts, printed back (source route, then local@domain), must parse
// again to the same address.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "node/mail/address.h"

namespace {

std::string Print(const zm::mail::Address& a) {
  std::string out = "<";
  for (size_t i = 0; i < a.source_route.size(); ++i) {
    out += i == 0 ? "@" : ",@";
    out += a.source_route[i];
  }
  if (!a.source_route.empty()) out += ":";
  return out + a.ToString() + ">";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto a = zm::mail::ParseAddress(in);
  if (!a.ok()) return 0;
  (void)zm::mail::UnquoteLocalPart(a->local);
  auto b = zm::mail::ParseAddress(Print(*a));
  if (!b.ok() || b->null != a->null || b->local != a->local ||
      b->domain != a->domain || b->source_route != a->source_route) {
    std::abort();  // parse -> print -> parse changed the address
  }
  return 0;
}
