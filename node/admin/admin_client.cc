#include "node/admin/admin_client.h"

namespace zm::admin {

absl::StatusOr<std::unique_ptr<AdminClient>> AdminClient::Connect(
    const NodeDir& node, std::string user, std::string password) {
  return absl::UnavailableError("scheduler admin client not implemented yet");
}

absl::StatusOr<std::unique_ptr<AdminClient>> AdminClient::ConnectTo(
    std::string_view socket_spec, std::string user, std::string password) {
  return absl::UnavailableError("scheduler admin client not implemented yet");
}

AdminClient::~AdminClient() = default;

absl::StatusOr<std::vector<std::string>> AdminClient::Command(
    std::string_view line) {
  return absl::UnavailableError("not connected");
}

absl::StatusOr<std::string> AdminClient::ReadLine() {
  return absl::UnavailableError("not connected");
}

}  // namespace zm::admin
