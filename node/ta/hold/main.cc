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
        zm::hold::Kinds kinds = zm::hold::BuiltinKinds();
#ifdef ZM_HAVE_DNS
        auto opts = zm::dns::OptionsForNode(start.node);
        if (!opts.ok()) return opts.status();
        opts->cache_entries = 0;  // every check asks again
        auto res = zm::dns::Resolver::Create(*opts);
        if (!res.ok()) return res.status();
        std::shared_ptr<zm::dns::Resolver> resolver(std::move(*res));
        kinds["dns"] =
            [resolver](
                std::string_view domain) -> absl::StatusOr<zm::hold::Release> {
          auto mx = resolver->LookupMx(domain);
          if (absl::IsUnavailable(mx.status())) {
            return absl::UnavailableError(zm::StrCat(
                "DNS lookup of ", domain, ": ", zm::Message(mx.status())));
          }
          // Records, NODATA, NXDOMAIN, any permanent answer: the router
          // decides.
          return zm::hold::Release{};
        };
#else
        kinds["dns"] =
            [](std::string_view) -> absl::StatusOr<zm::hold::Release> {
          return absl::FailedPreconditionError(
              "this build has no DNS resolver (zm_dns)");
        };
#endif
        return std::make_unique<zm::hold::HoldAgent>(start.node, *tag,
                                                     std::move(kinds));
      });
}
