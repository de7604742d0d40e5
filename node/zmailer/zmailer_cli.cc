// The command line of zmailer (CLI11), dispatching to one function per
// subcommand.
#include <CLI/CLI.hpp>
#include <iostream>

#include "node/zmailer/commands_internal.h"
#include "node/zmailer/zmailer.h"
#include "node/zmailer/zmailer_dkim.h"
#include "node/zmailer/zmailer_drain.h"
#include "node/zmailer/zmailer_tlsrpt.h"
#include "node/zmailer/zmailer_cluster.h"
#include "node/zmailer/zmailer_policy.h"
#include "node/zmailer/zmailer_queue.h"
#include "node/zmailer/zmailer_rates.h"
#include "node/zmailer/zmailer_route.h"

namespace zm::zmailer {

int Main(int argc, char** argv) {
  CLI::App app{
      "zmailer: create, start, stop and look after a zmnode mail node.\n"
      "The node is -C DIR, else $ZMAILER_HOME. Without a subcommand, "
      "zmailer starts the node (as ZMailer's does).",
      "zmailer"};
  std::string dir;
  app.add_option("-C", dir, "the node directory (default: $ZMAILER_HOME)")
      ->type_name("DIR");
  app.require_subcommand(0, 1);
  // `zmailer start -C DIR` works as well as `zmailer -C DIR start`.
  app.fallthrough();

  InitOptions init_opts;
  auto* init = app.add_subcommand("init", "create a new node in DIR");
  init->add_option("DIR", init_opts.dir, "where the node goes")->required();
  init->add_flag("--force", init_opts.force,
                 "write into a non-empty DIR (rewrites etc/ defaults)");
  init->add_option("--node-id", init_opts.node_id,
                   "node id (default: the short host name)");
  init->add_option("--hostname", init_opts.hostname,
                   "mail host name (default: the system's)");
  init->add_option("--smtp-address", init_opts.smtp_address,
                   "address the smtpserver binds")
      ->capture_default_str();
  init->add_option("--smtp-port", init_opts.smtp_port,
                   "port the smtpserver binds")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  init->add_option("--admin-listen", init_opts.admin_listen,
                   "ADDR:PORT of admind, the admin HTTP listener")
      ->capture_default_str();
  init->add_option("--gossip-listen", init_opts.gossip_listen,
                   "join a fleet: the peer service's ADDR:PORT");
  init->add_option("--advertise", init_opts.advertise,
                   "ADDR:PORT peers dial (default: --gossip-listen)");
  init->add_option("--seed", init_opts.seeds,
                   "a member to join through (repeatable)")
      ->type_name("ADDR:PORT")
      ->expected(1)
      ->take_all();
  init->add_option("--seed-dns", init_opts.seed_dns,
                   "a DNS name whose A/AAAA records are members");
  init->add_option("--seed-srv", init_opts.seed_srv,
                   "a DNS name whose SRV records are members");
  init->add_option("--cluster-ca", init_opts.cluster_ca,
                   "the fleet's CA folder (created if missing); issues this "
                   "node's certificate")
      ->type_name("CADIR");

  bool foreground = false;
  auto* start = app.add_subcommand("start", "start the node's programs");
  start->add_flag("-f,--foreground", foreground,
                  "supervise in the foreground, log to stderr (containers)");
  auto* stop = app.add_subcommand("stop", "stop the node in order");
  auto* kill = app.add_subcommand(
      "kill", "SIGKILL the supervisor and every program at once");
  auto* reload =
      app.add_subcommand("reload", "tell every program to reload (SIGHUP)");
  auto* freeze =
      app.add_subcommand("freeze", "keep the node from starting until 'thaw'");
  auto* thaw = app.add_subcommand(
      "thaw", "undo 'freeze'; with QID: send a frozen message to the router");
  std::string qid, etrn_domain;
  thaw->add_option("QID", qid, "a message in the freezer");
  auto* requeue = app.add_subcommand(
      "requeue", "retry a queued message now, or reroute a postman/ copy");
  requeue->add_option("QID", qid)->required();
  auto* del = app.add_subcommand(
      "delete", "delete a message (queue: no DSN; freezer/, postman/)");
  del->add_option("QID", qid)->required();
  auto* etrn = app.add_subcommand(
      "etrn", "deliver everything queued for DOMAIN now (queueonly too)");
  etrn->add_option("DOMAIN", etrn_domain)->required();
  bool etrn_wait = false;
  etrn->add_flag("--wait", etrn_wait,
                 "in a fleet: wait for (up to 10 s) and print each node's "
                 "answer");
  auto* status =
      app.add_subcommand("status",
                         "what runs and how full the spool is (exit 0 all up, "
                         "3 down, 1 partly up)");
  std::string relation;
  auto* newdb = app.add_subcommand(
      "newdb", "compile the relations of etc/dbases.conf into db/");
  newdb->add_option("RELATION", relation, "only this relation");
  auto* newaliases = app.add_subcommand(
      "newaliases", "compile etc/aliases (as newdb aliases)");

  internal::RouteCommand route(app);
  internal::PolicyCommand policy(app);
  internal::RatesCommand rates;
  internal::AddRatesCommand(app, &rates);
  internal::DkimCommand dkim(app);
  internal::TlsrptCommand tlsrpt(app);
  internal::ClusterCommand cluster;
  internal::AddClusterCommand(app, &cluster);
  internal::DrainCommand drain;
  internal::AddDrainCommand(app, &drain);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::cerr << "zmailer: " << e.what() << " (see 'zmailer --help')\n";
    return kExitUsage;
  }

  if (init->parsed()) return internal::CmdInit(init_opts);
  NodeDir node = LocateNode(dir);
  if (stop->parsed()) return internal::CmdStop(node);
  if (drain.sub->parsed()) return internal::CmdDrain(node, drain);
  if (kill->parsed()) return internal::CmdKill(node);
  if (reload->parsed()) return internal::CmdReload(node);
  if (freeze->parsed()) return internal::CmdFreeze(node);
  if (thaw->parsed() && !qid.empty())
    return internal::CmdThawMessage(node, qid);
  if (thaw->parsed()) return internal::CmdThaw(node);
  if (requeue->parsed()) return internal::CmdRequeue(node, qid);
  if (del->parsed()) return internal::CmdDelete(node, qid);
  if (etrn->parsed())
    return internal::CmdEtrn(node, etrn_domain, etrn_wait);
  if (status->parsed()) return internal::CmdStatus(node);
  if (newdb->parsed()) return internal::CmdNewDb(node, relation);
  if (rates.sub->parsed()) return internal::CmdRates(node, rates);
  if (cluster.sub->parsed()) return internal::CmdCluster(node, cluster);
  if (newaliases->parsed()) return internal::CmdNewDb(node, "aliases");
  if (route.parsed()) return route.Run(node);
  if (dkim.parsed()) return dkim.Run(node);
  if (tlsrpt.parsed()) return tlsrpt.Run(node);
  if (policy.parsed()) return policy.Run(node);
  (void)start;
  return internal::CmdStart(node, foreground);
}

}  // namespace zm::zmailer
