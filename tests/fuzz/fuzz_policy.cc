// libFuzzer: smtp-policy.src and its companion lists. The input is the
// source, then (after a NUL byte) the text of smtp-policy.relay, then
// (after another) localnames. A parsed policy must answer lookups.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "node/smtpserver/smtpserver_policy.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t nul = in.find('\0', start);
    parts.push_back(in.substr(start, nul - start));
    if (nul == std::string_view::npos || parts.size() == 3) break;
    start = nul + 1;
  }
  std::vector<std::pair<std::string, std::string>> companions;
  if (parts.size() > 1) {
    companions.emplace_back("smtp-policy.relay", std::string(parts[1]));
  }
  if (parts.size() > 2) {
    companions.emplace_back("localnames", std::string(parts[2]));
  }
  auto policy =
      zm::smtpserver::Policy::Parse("smtp-policy.src", parts[0], companions);
  if (!policy.ok()) return 0;
  for (std::string_view ip :
       {"192.0.2.1", "127.0.0.1", "::1", "2001:db8::1", "not an address", ""}) {
    (void)policy->ForIp(ip);
    (void)policy->IsTrusted(ip);
  }
  (void)policy->ForDomain("example.com");
  (void)policy->ForDomain(".");
  (void)policy->ForAddress("user@example.com");
  (void)policy->ForAddress("@");
  (void)policy->CompiledEntries();
  return 0;
}
