#include <sys/time.h>

#include <string>

#include "node/common/strings.h"
#include "node/mail/envelope.h"
#include "node/ta/hold/hold.h"

namespace zm::hold {

Kinds BuiltinKinds() {
  Kinds k;
  // The router split a list with its own owner off the message: nothing
  // to wait for; it goes back with the owner as the sender, so that list's
  // bounces reach its owner.
  k["owner"] = [](std::string_view owner) -> absl::StatusOr<Release> {
    return Release{std::string(owner), "handed to the router",
                   StrCat(" with the list owner <", owner, "> as sender")};
  };
  return k;
}

ta::Result HoldAgent::Deliver(const ta::Delivery& d) {
  std::string_view cond = d.host.empty() ? d.recipient.host : d.host;
  size_t colon = cond.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return ta::Result::Deferred("4.3.0", "none",
                                StrCat("unknown hold condition '", cond, "'"));
  }
  std::string_view kind = cond.substr(0, colon), arg = cond.substr(colon + 1);
  auto k = kinds_.find(kind);
  absl::StatusOr<Release> release =
      k == kinds_.end() ? absl::InvalidArgumentError(StrCat(
                              "unknown hold condition kind '", kind, "'"))
                        : k->second(arg);
  if (absl::IsUnavailable(release.status())) {
    return ta::Result::Deferred(
        "4.4.3", "none", StrCat("still held: ", zm::Message(release.status())));
  }
  if (!release.ok()) {
    return ta::Result::Deferred(
        "4.3.0", "none",
        StrCat("cannot check ", cond, ": ", zm::Message(release.status())));
  }
  const mail::ControlRecipient& r = d.recipient;
  mail::Envelope env;
  env.sender =
      release->sender.empty() ? d.control.sender : std::move(release->sender);
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
  std::string said = release->said.empty()
                         ? StrCat(cond, " cleared; released to the router")
                         : std::move(release->said);
  return ta::Result::Ok(
      "2.0.0", "router",
      StrCat(said, " as ", (*sub)->queue_id(), release->after));
}

}  // namespace zm::hold
