// The pieces of a submission that do not touch the spool: exit codes,
// the node's names, recipient arguments, DSN parameters, dates.
#include <pwd.h>
#include <sysexits.h>
#include <unistd.h>

#include <ctime>

#include "absl/strings/cord.h"
#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/config/mail_conf.h"
#include "node/sendmail/address_list.h"
#include "node/sendmail/submit.h"

namespace zm::submit {
namespace {

constexpr char kSysexitPayload[] = "type.zmnode.dev/sendmail.sysexit";

}  // namespace

absl::Status WithSysexit(absl::Status status, int sysexit) {
  if (!status.ok()) {
    status.SetPayload(kSysexitPayload, absl::Cord(std::to_string(sysexit)));
  }
  return status;
}

int SysexitFor(const absl::Status& status) {
  if (status.ok()) return EX_OK;
  auto p = status.GetPayload(kSysexitPayload);
  int code = EX_SOFTWARE;
  if (p.has_value()) {
    std::string text(*p);
    if (!ParseNumber(text, &code)) code = EX_SOFTWARE;
  }
  return code;
}

absl::StatusOr<SubmitContext> LoadContext(const NodeDir& node) {
  if (auto s = RequireNode(node); !s.ok()) return WithSysexit(s, EX_CONFIG);
  auto mc = config::LoadMailConf(node);
  if (!mc.ok()) return WithSysexit(mc.status(), EX_CONFIG);
  auto tag = config::LoadNodeTag(node);
  if (!tag.ok()) return WithSysexit(tag.status(), EX_CONFIG);
  SubmitContext ctx;
  ctx.node = node;
  ctx.hostname = mc->hostname;
  ctx.mydomain = mc->mydomain;
  ctx.node_tag = *tag;
  ctx.uid = ::getuid();
  struct passwd pw;
  struct passwd* found = nullptr;
  char buf[4096];
  if (::getpwuid_r(ctx.uid, &pw, buf, sizeof buf, &found) == 0 &&
      found != nullptr) {
    ctx.login = pw.pw_name;
    // The GECOS field's first comma-separated part is the full name.
    std::string_view gecos = pw.pw_gecos != nullptr ? pw.pw_gecos : "";
    ctx.gecos_name = std::string(Trim(gecos.substr(0, gecos.find(','))));
  } else {
    ctx.login = StrCat("uid", ctx.uid);
  }
  return ctx;
}

absl::StatusOr<std::string> NormalizeNotify(std::string_view value) {
  std::string upper;
  for (char c : value) {
    upper += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  auto parts = Split(upper, ',');
  bool never = false;
  std::string out;
  for (std::string_view p : parts) {
    p = Trim(p);
    if (p == "NEVER") {
      never = true;
    } else if (p != "SUCCESS" && p != "FAILURE" && p != "DELAY") {
      return absl::InvalidArgumentError(
          StrCat("bad DSN notify '", value,
                 "': use never, or a list of success, failure, delay"));
    }
    if (out.find(p) != std::string::npos) continue;
    if (!out.empty()) out += ',';
    out += p;
  }
  if (never && out != "NEVER") {
    return absl::InvalidArgumentError(
        StrCat("bad DSN notify '", value, "': never stands alone"));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseRecipientArgs(
    const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    auto list = ParseAddressList(a);
    if (!list.ok()) {
      return absl::InvalidArgumentError(
          StrCat("bad recipient '", a, "': ", Message(list.status())));
    }
    for (auto& m : *list) out.push_back(std::move(m.address));
  }
  return out;
}

}  // namespace zm::submit
