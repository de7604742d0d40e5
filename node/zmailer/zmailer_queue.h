// zmailer's queue commands: thaw, requeue and delete one message, and
// ETRN a domain (docs/scheduler.md "Managing the queue").
//
//   zmailer thaw QID       freezer/QID.<cause>  -> router/QID
//   zmailer requeue QID    postman/QID.<cause> (a message file) -> router/QID;
//                          a queued message: retried now (RUNQ ID)
//   zmailer delete QID     freezer/ or postman/ copies removed; a queued
//                          message: KILL MSG (no DSN)
//   zmailer etrn DOMAIN    every thread for DOMAIN runs now (queueonly too);
//                          on every live node when the node is in a fleet
//                          (--wait: until each answered, 10 s at most;
//                          exit 75 if some did not)
//
// The scheduler is asked over its gRPC admin service (run/scheduler.sock,
// docs/admin-protocol.md); KillMessage logs in as the
// first scheduler.auth user with KILL (or ALL) allowed from 127.0.0.1.
#ifndef ZM_ZMAILER_ZMAILER_QUEUE_H_
#define ZM_ZMAILER_ZMAILER_QUEUE_H_

#include <string>

#include "node/common/node_dir.h"

namespace zm::zmailer::internal {

int CmdThawMessage(const NodeDir& node, const std::string& qid);
int CmdRequeue(const NodeDir& node, const std::string& qid);
int CmdDelete(const NodeDir& node, const std::string& qid);
int CmdEtrn(const NodeDir& node, const std::string& domain, bool wait);

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_ZMAILER_QUEUE_H_
