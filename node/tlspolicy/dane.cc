// DANE: TLSA names, records and their usability for SMTP.
#include "node/tlspolicy/dane.h"

#include "node/common/strings.h"

namespace zm::tlspolicy {

std::string TlsaName(std::string_view host, int port) {
  return StrCat("_", port, "._tcp.", ToLower(StripTrailingDots(host)));
}

std::optional<smtpclient::TlsaRecord> ParseTlsa(std::string_view rdata) {
  if (rdata.size() < 4) return std::nullopt;
  smtpclient::TlsaRecord t;
  t.usage = static_cast<unsigned char>(rdata[0]);
  t.selector = static_cast<unsigned char>(rdata[1]);
  t.mtype = static_cast<unsigned char>(rdata[2]);
  t.data = std::string(rdata.substr(3));
  return t;
}

bool Usable(const smtpclient::TlsaRecord& t) {
  if (t.usage != 2 && t.usage != 3) return false;
  if (t.selector != 0 && t.selector != 1) return false;
  switch (t.mtype) {
    case 0:
      return !t.data.empty();
    case 1:
      return t.data.size() == 32;
    case 2:
      return t.data.size() == 64;
    default:
      return false;
  }
}

std::vector<smtpclient::TlsaRecord> UsableTlsa(
    const std::vector<std::string>& rdata) {
  std::vector<smtpclient::TlsaRecord> out;
  for (const std::string& r : rdata) {
    auto t = ParseTlsa(r);
    if (t && Usable(*t)) out.push_back(*std::move(t));
  }
  return out;
}

}  // namespace zm::tlspolicy
