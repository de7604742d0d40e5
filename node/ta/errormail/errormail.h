// errormail: the transport agent of the `error` channel.
//
// The router sends a recipient to `error` when it knows the address cannot
// be delivered (an unknown local user: host `nouser`, diag "user unknown").
// errormail fails every such recipient at once with the router's
// diagnostic; it sends no message itself: the scheduler writes the DSN to
// the sender from the failed result.
//
//   host `nouser` -> error 5.1.1; any other host -> error 5.0.0
//   diagnostic    -> the control file's diag=, else "user unknown"
#ifndef ZM_TA_ERRORMAIL_ERRORMAIL_H_
#define ZM_TA_ERRORMAIL_ERRORMAIL_H_

#include "node/ta/common/ta.h"

namespace zm::errormail {

class ErrorMailAgent : public ta::Handler {
 public:
  ta::Result Deliver(const ta::Delivery& d) override;
};

}  // namespace zm::errormail

#endif  // ZM_TA_ERRORMAIL_ERRORMAIL_H_
