// The subcommands of zmailer, one function each; they print what the
// operator sees and return the exit code. Internal to node/zmailer (the
// command line is parsed in zmailer_cli.cc).
#ifndef ZM_ZMAILER_COMMANDS_INTERNAL_H_
#define ZM_ZMAILER_COMMANDS_INTERNAL_H_

#include <cstddef>
#include <string>

#include "node/common/node_dir.h"
#include "node/zmailer/zmailer.h"

namespace zm::zmailer::internal {

// The largest message file a command reads whole (thaw, requeue, drain):
// above what sendmail (256 MiB) or a sensible smtpserver maxsize accepts.
inline constexpr size_t kMaxMessageFileBytes = 512u << 20;

int CmdInit(const InitOptions& opts);
int CmdStart(const NodeDir& node, bool foreground);
int CmdStop(const NodeDir& node);
int CmdKill(const NodeDir& node);
int CmdReload(const NodeDir& node);
int CmdFreeze(const NodeDir& node);
int CmdThaw(const NodeDir& node);
int CmdStatus(const NodeDir& node);
// `only` empty: every relation of dbases.conf.
int CmdNewDb(const NodeDir& node, const std::string& only);

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_COMMANDS_INTERNAL_H_
