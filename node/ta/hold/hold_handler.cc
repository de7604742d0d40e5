#include <sys/time.h>

#include <string>

#include "node/common/strings.h"
#include "node/mail/envelope.h"
#include "node/ta/hold/hold.h"

namespace zm::hold {

ta::Result HoldAgent::Deliver(const ta::Delivery& d) {
  std::string_view cond = d.host.empty() ? d.recipient.host : d.host;
  size_t colon = cond.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return ta::Result::Deferred("4.3.0", "none",
                                StrCat("unknown hold condition '", cond, "'"));
  }
  std::string_view kind = cond.substr(0, colon), arg = cond.substr(colon + 1);
  // owner:ADDRESS is no condition: the router split a list with its own
  // owner off this message; it goes back with the owner as sender.
  bool owner = kind == "owner";
  absl::Status s = owner ? absl::OkStatus() : check_(kind, arg);
  if (absl::IsUnavailable(s)) {
    return ta::Result::Deferred("4.4.3", "none",
                                StrCat("still held: ", zm::Message(s)));
  }
  if (!s.ok()) {
    return ta::Result::Deferred(
        "4.3.0", "none", StrCat("cannot check ", cond, ": ", zm::Message(s)));
  }
  const mail::ControlRecipient& r = d.recipient;
  mail::Envelope env;
  env.sender = owner ? std::string(arg) : d.control.sender;
  env.recipients.push_back(
      {r.user.empty() ? r.orig : r.user, r.notify, r.orcpt});
  env.envid = d.control.envid;
  env.ret = d.control.ret;
  env.protocol = "local";
  env.local_user = "hold";
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  env.arrival_usec = static_cast<int64_t>(tv.tv_sec) * 1'000'000 + tv.tv_usec;
  auto sub = spool_.Begin(env);
  absl::Status w = sub.ok() ? (*sub)->Append(d.message) : sub.status();
  if (w.ok()) w = (*sub)->Commit();
  if (!w.ok()) {
    return ta::Result::Deferred(
        "4.3.0", "none",
        StrCat("cannot hand back to the router: ", zm::Message(w)));
  }
  if (owner) {
    return ta::Result::Ok("2.0.0", "router",
                          StrCat("handed to the router as ", (*sub)->queue_id(),
                                 " with the list owner <", arg, "> as sender"));
  }
  return ta::Result::Ok(
      "2.0.0", "router",
      StrCat(cond, " cleared; released to the router as ", (*sub)->queue_id()));
}

}  // namespace zm::hold
