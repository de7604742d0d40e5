// hold: the hold channel's transport agent (docs/transport-agents.md).
#include <memory>

#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/ta/hold/hold.h"
#ifdef ZM_HAVE_DNS
#include "node/dns/resolver.h"
#endif

int main(int argc, char** argv) {
  return zm::ta::AgentMain(
      "hold", argc, argv,
      [](const zm::ta::AgentStart& start,
         zm::Logger&) -> absl::StatusOr<std::unique_ptr<zm::ta::Handler>> {
        if (!start.args.empty()) {
          return absl::InvalidArgumentError("unknown argument '" +
                                            start.args[0] +
                                            "' (usage: hold [-C DIR])");
        }
        auto tag = zm::config::LoadNodeTag(start.node);
        if (!tag.ok()) return tag.status();
        zm::hold::ConditionCheck check;
#ifdef ZM_HAVE_DNS
        auto opts = zm::dns::OptionsForNode(start.node);
        if (!opts.ok()) return opts.status();
        opts->cache_entries = 0;  // every check asks again
        auto res = zm::dns::Resolver::Create(*opts);
        if (!res.ok()) return res.status();
        std::shared_ptr<zm::dns::Resolver> resolver(std::move(*res));
        check = [resolver](std::string_view kind,
                           std::string_view arg) -> absl::Status {
          if (kind != "dns") {
            return absl::InvalidArgumentError(
                zm::StrCat("unknown hold condition kind '", kind, "'"));
          }
          auto mx = resolver->LookupMx(arg);
          if (mx.ok() || absl::IsNotFound(mx.status())) return absl::OkStatus();
          if (absl::IsUnavailable(mx.status())) {
            return absl::UnavailableError(zm::StrCat(
                "DNS lookup of ", arg, ": ", zm::Message(mx.status())));
          }
          return absl::OkStatus();  // a permanent answer: the router decides
        };
#else
        check = [](std::string_view, std::string_view) -> absl::Status {
          return absl::FailedPreconditionError(
              "this build has no DNS resolver (zm_dns)");
        };
#endif
        return std::make_unique<zm::hold::HoldAgent>(start.node, *tag,
                                                     std::move(check));
      });
}
