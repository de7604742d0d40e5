#include "node/zmailer/zmailer_dkim.h"

#include <iostream>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mailauth/mailauth.h"
#include "node/zmailer/zmailer.h"

namespace zm::zmailer::internal {
namespace {

constexpr int kExitCantCreate = 73;  // EX_CANTCREAT
constexpr int kExitConfig = 78;      // EX_CONFIG

// A DNS name of letters, digits, '-' and '.' (no empty labels).
bool IsDnsName(std::string_view s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.' ||
      s.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// A zone file TXT record: character-strings of at most 255 bytes.
std::string ZoneLine(const std::string& name, const std::string& txt) {
  std::string out = StrCat(name, ". IN TXT (");
  for (size_t i = 0; i < txt.size(); i += 250) {
    StrAppend(&out, " \"", txt.substr(i, 250), "\"");
  }
  return out + " )";
}

}  // namespace

DkimCommand::DkimCommand(CLI::App& app) {
  cmd_ = app.add_subcommand("dkim", "DKIM signing keys");
  cmd_->require_subcommand(1);
  keygen_ = cmd_->add_subcommand(
      "keygen", "make a signing key and print the TXT record to publish");
  keygen_->add_option("DOMAIN", domain_, "the signing domain (d=)")
      ->required();
  keygen_->add_option("SELECTOR", selector_, "the selector (s=)")->required();
  keygen_->add_flag("--ed25519", ed25519_, "an Ed25519 key (RFC 8463)");
  keygen_->add_option("--bits", bits_, "RSA key size (default 2048)");
  keygen_->add_flag("--force", force_, "replace an existing key file");
}

int DkimCommand::Run(const NodeDir& node) const {
  std::string domain = ToLower(domain_);
  if (!IsDnsName(domain) || !IsDnsName(selector_)) {
    std::cerr << "zmailer dkim keygen: DOMAIN and SELECTOR must be DNS names\n";
    return kExitUsage;
  }
  if (!ed25519_ && (bits_ < 1024 || bits_ > 8192)) {
    std::cerr << "zmailer dkim keygen: --bits must be 1024 to 8192\n";
    return kExitUsage;
  }
  if (!fs::Exists(node.etc())) {
    std::cerr << "zmailer dkim keygen: no node at " << node.home
              << " (zmailer init first)\n";
    return kExitConfig;
  }
  std::string dir = node.etc_file("dkim");
  std::string name = StrCat(domain, ".", selector_, ".pem");
  std::string path = StrCat(dir, "/", name);
  if (fs::Exists(path) && !force_) {
    std::cerr << "zmailer dkim keygen: " << path
              << " exists (--force replaces it)\n";
    return kExitCantCreate;
  }
  auto key = mailauth::GenerateKey(ed25519_, bits_);
  if (!key.ok()) {
    std::cerr << "zmailer dkim keygen: " << Message(key.status()) << "\n";
    return kExitFailure;
  }
  absl::Status st = fs::MakeDirs(dir, 0700);
  if (st.ok()) st = fs::WriteFileAtomically(dir, name, key->private_pem, 0600);
  if (!st.ok()) {
    std::cerr << "zmailer dkim keygen: " << Message(st) << "\n";
    return kExitCantCreate;
  }
  std::cout << "; the key: " << path << "\n"
            << "; publish in DNS:\n"
            << ZoneLine(StrCat(selector_, "._domainkey.", domain),
                        key->txt_record)
            << "\n"
            << "; and add to etc/dkim-keys:\n"
            << domain << " " << selector_ << " dkim/" << name << " "
            << (ed25519_ ? "ed25519-sha256" : "rsa-sha256") << "\n";
  return kExitOk;
}

}  // namespace zm::zmailer::internal
