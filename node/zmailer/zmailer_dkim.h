// `zmailer dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N] [--force]`:
// a DKIM signing key for the smtpserver (etc/dkim/DOMAIN.SELECTOR.pem,
// mode 0600), and on stdout the TXT record to publish and the etc/dkim-keys
// line that puts the key to use.
#ifndef ZM_ZMAILER_ZMAILER_DKIM_H_
#define ZM_ZMAILER_ZMAILER_DKIM_H_

#include <CLI/CLI.hpp>
#include <string>

#include "node/common/node_dir.h"

namespace zm::zmailer::internal {

class DkimCommand {
 public:
  explicit DkimCommand(CLI::App& app);
  bool parsed() const { return cmd_->parsed(); }
  // 0 done; 64 (EX_USAGE) bad domain/selector/bits; 73 (EX_CANTCREAT) the
  // key exists (without --force) or cannot be written.
  int Run(const NodeDir& node) const;

 private:
  CLI::App* cmd_;
  CLI::App* keygen_;
  std::string domain_, selector_;
  bool ed25519_ = false;
  int bits_ = 2048;
  bool force_ = false;
};

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_ZMAILER_DKIM_H_
