// Test helper: puts a message into a spool the way the router leaves it,
// the message file in queue/ and its control file in transport/, so
// scheduler and transport-agent tests start from a routed message.
#ifndef ZM_TESTS_UNIT_TESTING_QUEUED_MESSAGE_H_
#define ZM_TESTS_UNIT_TESTING_QUEUED_MESSAGE_H_

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/fs.h"
#include "node/mail/control.h"
#include "node/mail/envelope.h"
#include "node/spool/spool.h"

namespace zm::testutil {

// Recipients are numbered in order; their `orig` (or `user` when empty)
// becomes the envelope recipient. Returns the queue id.
inline absl::StatusOr<std::string> QueueRoutedMessage(
    const spool::Spool& spool, const std::string& sender,
    std::vector<mail::ControlRecipient> rcpts, std::string_view message,
    const std::string& ret = "", int64_t arrival_usec = 0) {
  mail::Envelope env;
  env.sender = sender;
  env.arrival_usec = arrival_usec;
  for (const auto& r : rcpts) {
    env.recipients.push_back(
        {r.orig.empty() ? r.user : r.orig, r.notify, r.orcpt});
  }
  auto sub = spool.Begin(env);
  if (!sub.ok()) return sub.status();
  std::string id = (*sub)->queue_id();
  if (auto s = (*sub)->Append(message); !s.ok()) return s;
  if (auto s = (*sub)->Commit(); !s.ok()) return s;
  std::string qpath = spool.Path(spool::kQueue, id);
  if (std::rename(spool.Path(spool::kRouter, id).c_str(), qpath.c_str()) != 0) {
    return absl::InternalError("rename into queue/ failed");
  }
  auto text = fs::ReadFile(qpath);
  if (!text.ok()) return text.status();
  auto mf = mail::ParseMessageFile(*text);
  if (!mf.ok()) return mf.status();
  mail::ControlFile cf;
  cf.queue_id = id;
  cf.body_offset = mf->body_offset;
  cf.sender = sender;
  cf.error_to = sender;
  cf.ret = ret;
  for (size_t i = 0; i < rcpts.size(); ++i) {
    rcpts[i].index = static_cast<int>(i);
    cf.recipients.push_back(rcpts[i]);
  }
  if (auto s = fs::WriteFileAtomically(spool.Path(spool::kTransport), id,
                                       mail::SerializeControl(cf));
      !s.ok()) {
    return s;
  }
  return id;
}

}  // namespace zm::testutil

#endif  // ZM_TESTS_UNIT_TESTING_QUEUED_MESSAGE_H_
