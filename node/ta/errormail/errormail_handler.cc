#include <string>

#include "node/ta/errormail/errormail.h"

namespace zm::errormail {

ta::Result ErrorMailAgent::Deliver(const ta::Delivery& d) {
  const std::string& host = d.host.empty() ? d.recipient.host : d.host;
  std::string dsn = host == "nouser" ? "5.1.1" : "5.0.0";
  std::string diag =
      d.recipient.diag.empty() ? "user unknown" : d.recipient.diag;
  return ta::Result::Error(std::move(dsn), "none", std::move(diag));
}

}  // namespace zm::errormail
