// The local-service client: unary calls with deadlines, streams with
// reconnection.
#include "cluster/client/cluster_client.h"

#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"
#include "cluster/conf/cluster_conf.h"
#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::cluster {
namespace {

bool SocketExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

absl::Status NotRunning(const std::string& path) {
  return absl::UnavailableError(
      StrCat("cluster agent not running (no socket ", path, ")"));
}

// gRPC's codes are absl's, number for number.
absl::Status FromGrpc(const std::string& path, const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  auto code = static_cast<absl::StatusCode>(s.error_code());
  if (code == absl::StatusCode::kUnavailable) {
    return absl::UnavailableError(StrCat("cluster agent at ", path,
                                         " not answering: ",
                                         s.error_message()));
  }
  if (code == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(
        StrCat("cluster agent at ", path, " did not answer in time"));
  }
  return absl::Status(code, s.error_message());
}

// One unary call: Unavailable at once when the socket is missing, else
// the call under a deadline of call_timeout_ms + extra_ms.
template <typename Reply, typename Call>
absl::StatusOr<Reply> Unary(const ClientOptions& opts, int extra_ms,
                            const Call& call) {
  if (opts.socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(
        StrCat("cluster socket path too long: ", opts.socket_path));
  }
  if (!SocketExists(opts.socket_path)) return NotRunning(opts.socket_path);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(opts.call_timeout_ms +
                                             std::max(0, extra_ms)));
  Reply reply;
  grpc::Status s = call(&ctx, &reply);
  if (!s.ok()) return FromGrpc(opts.socket_path, s);
  return reply;
}

// Runs one server stream until it ends; `on_open` after the first message.
template <typename Reply, typename Start>
absl::Status RunStream(const std::string& path, grpc::ClientContext* ctx,
                       const std::function<void()>& on_open, Start start,
                       const std::function<void(const Reply&)>& on_update) {
  if (!SocketExists(path)) return NotRunning(path);
  std::unique_ptr<grpc::ClientReader<Reply>> reader = start(ctx);
  Reply msg;
  bool opened = false;
  while (reader->Read(&msg)) {
    if (!opened) {
      opened = true;
      on_open();
    }
    on_update(msg);
  }
  return FromGrpc(path, reader->Finish());
}

}  // namespace

namespace {

// The first value of a cluster.conf keyword (one of `names`), if any.
std::optional<std::string> ConfValue(const std::string& text,
                                     std::initializer_list<std::string_view> names) {
  for (std::string_view line : Split(text, '\n')) {
    line = line.substr(0, line.find('#'));
    std::vector<std::string_view> words = SplitWhitespace(line);
    if (words.size() < 2) continue;
    for (std::string_view n : names) {
      if (words[0] == n) return std::string(words[1]);
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::string> ReadConf(const NodeDir& node) {
  return fs::ReadFile(node.etc_file("cluster.conf"), 1 << 20);
}

}  // namespace

std::string SocketPath(const NodeDir& node) {
  // As the agent reads it (a broken file: the default; the agent refuses
  // to start on it anyway).
  absl::StatusOr<ClusterConf> conf = LoadClusterConf(node);
  if (conf.ok() && !conf->local_socket.empty()) return conf->local_socket;
  return node.run() + "/cluster.sock";
}

bool HasCluster(const NodeDir& node) {
  // Every node has a cluster.conf (its node-id); only one that gossips
  // (a gossip-listen line, docs/cluster.md) is in a fleet.
  absl::StatusOr<std::string> text = ReadConf(node);
  return text.ok() && ConfValue(*text, {"gossip-listen", "listen"});
}

bool HasAgent(const NodeDir& node) { return fs::Exists(node.etc_file("cluster.conf")); }

// ---- Subscription -------------------------------------------------------

Subscription::Subscription(Opener open, const ClientOptions& opts)
    : open_(std::move(open)),
      backoff_initial_ms_(std::max(1, opts.backoff_initial_ms)),
      backoff_max_ms_(std::max(opts.backoff_initial_ms, opts.backoff_max_ms)) {
  thread_ = std::thread([this] { Loop(); });
}

Subscription::~Subscription() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (ctx_ != nullptr) ctx_->TryCancel();
  }
  thread_.join();
}

void Subscription::Loop() {
  int backoff = backoff_initial_ms_;
  for (;;) {
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      ctx_ = &ctx;
    }
    bool opened = false;
    std::function<void()> on_open = [this, &opened] {
      opened = true;
      connections_.fetch_add(1);
      connected_.store(true);
    };
    (void)open_(&ctx, on_open);
    connected_.store(false);
    absl::MutexLock lock(&mu_);
    ctx_ = nullptr;
    if (opened) backoff = backoff_initial_ms_;
    mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(backoff));
    if (stop_) return;
    backoff = std::min(backoff * 2, backoff_max_ms_);
  }
}

// ---- ClusterClient ------------------------------------------------------

absl::StatusOr<std::unique_ptr<ClusterClient>> ClusterClient::ForNode(
    const NodeDir& node, ClientOptions opts) {
  if (!HasAgent(node)) {
    return absl::FailedPreconditionError(
        StrCat("this node has no cluster agent (no ",
               node.etc_file("cluster.conf"), ")"));
  }
  if (opts.socket_path.empty()) opts.socket_path = SocketPath(node);
  return Connect(std::move(opts));
}

std::unique_ptr<ClusterClient> ClusterClient::Connect(ClientOptions opts) {
  return std::unique_ptr<ClusterClient>(new ClusterClient(std::move(opts)));
}

ClusterClient::ClusterClient(ClientOptions opts) : opts_(std::move(opts)) {
  grpc::ChannelArguments args;
  // The channel's own reconnect backoff must not outlast ours (gRPC's
  // default grows to two minutes).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              std::max(1, opts_.backoff_initial_ms));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              std::max(1, opts_.backoff_initial_ms));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              std::max(opts_.backoff_initial_ms, opts_.backoff_max_ms));
  // Local traffic, but still bounded.
  args.SetMaxReceiveMessageSize(64 << 20);
  channel_ = grpc::CreateCustomChannel(StrCat("unix:", opts_.socket_path),
                                       grpc::InsecureChannelCredentials(),
                                       args);
  stub_ = v1::Local::NewStub(channel_);
}

ClusterClient::~ClusterClient() = default;

absl::Status ClusterClient::ReportRates(const v1::ReportRatesRequest& req) {
  absl::StatusOr<v1::ReportRatesReply> r = Unary<v1::ReportRatesReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::ReportRatesReply* out) {
        return stub_->ReportRates(c, req, out);
      });
  return r.status();
}

absl::StatusOr<v1::FleetRatesReply> ClusterClient::FleetRates(
    const v1::FleetRatesRequest& req) {
  return Unary<v1::FleetRatesReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::FleetRatesReply* out) {
        return stub_->FleetRates(c, req, out);
      });
}

absl::StatusOr<v1::PolicyReply> ClusterClient::PolicyAdd(
    const v1::PolicyAddRequest& req) {
  return Unary<v1::PolicyReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::PolicyReply* out) {
        return stub_->PolicyAdd(c, req, out);
      });
}

absl::StatusOr<v1::PolicyReply> ClusterClient::PolicyDelete(
    const v1::PolicyDeleteRequest& req) {
  return Unary<v1::PolicyReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::PolicyReply* out) {
        return stub_->PolicyDelete(c, req, out);
      });
}

absl::StatusOr<v1::PolicyReply> ClusterClient::PolicyList(
    const v1::PolicyListRequest& req) {
  return Unary<v1::PolicyReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::PolicyReply* out) {
        return stub_->PolicyList(c, req, out);
      });
}

absl::StatusOr<v1::StartEtrnReply> ClusterClient::StartEtrn(
    const v1::StartEtrnRequest& req) {
  return Unary<v1::StartEtrnReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::StartEtrnReply* out) {
        return stub_->StartEtrn(c, req, out);
      });
}

absl::StatusOr<v1::EtrnStatusReply> ClusterClient::EtrnStatus(
    const v1::EtrnStatusRequest& req) {
  int wait = static_cast<int>(std::min<uint32_t>(req.wait_ms(), 600000));
  return Unary<v1::EtrnStatusReply>(
      opts_, wait, [&](grpc::ClientContext* c, v1::EtrnStatusReply* out) {
        return stub_->EtrnStatus(c, req, out);
      });
}

absl::StatusOr<v1::MembersReply> ClusterClient::Members() {
  v1::MembersRequest req;
  return Unary<v1::MembersReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::MembersReply* out) {
        return stub_->Members(c, req, out);
      });
}

absl::StatusOr<v1::TopSourcesReply> ClusterClient::TopSources(
    const v1::TopSourcesRequest& req) {
  return Unary<v1::TopSourcesReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::TopSourcesReply* out) {
        return stub_->TopSources(c, req, out);
      });
}

absl::StatusOr<v1::PublishNodeStatusReply> ClusterClient::PublishNodeStatus(
    const v1::NodeStatus& status) {
  v1::PublishNodeStatusRequest req;
  *req.mutable_status() = status;
  return Unary<v1::PublishNodeStatusReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::PublishNodeStatusReply* out) {
        return stub_->PublishNodeStatus(c, req, out);
      });
}

absl::StatusOr<v1::FleetStatusReply> ClusterClient::FleetStatus() {
  v1::FleetStatusRequest req;
  return Unary<v1::FleetStatusReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::FleetStatusReply* out) {
        return stub_->FleetStatus(c, req, out);
      });
}

absl::StatusOr<v1::AgentStatsReply> ClusterClient::AgentStats() {
  v1::AgentStatsRequest req;
  return Unary<v1::AgentStatsReply>(
      opts_, 0, [&](grpc::ClientContext* c, v1::AgentStatsReply* out) {
        return stub_->AgentStats(c, req, out);
      });
}

std::unique_ptr<Subscription> ClusterClient::WatchRates(
    std::function<v1::WatchRatesRequest()> request,
    std::function<void(const v1::RateUpdate&)> on_update,
    std::function<void()> on_reconnect) {
  // The stream keeps the stub alive, not the client.
  std::shared_ptr<grpc::Channel> channel = channel_;
  std::string path = opts_.socket_path;
  auto stub = std::shared_ptr<v1::Local::Stub>(v1::Local::NewStub(channel));
  auto opened_before = std::make_shared<bool>(false);
  Subscription::Opener open =
      [stub, path, request = std::move(request),
       on_update = std::move(on_update), on_reconnect = std::move(on_reconnect),
       opened_before](grpc::ClientContext* ctx,
                      const std::function<void()>& on_open) {
        std::function<void()> first = [&] {
          if (*opened_before && on_reconnect) on_reconnect();
          *opened_before = true;
          on_open();
        };
        v1::WatchRatesRequest req = request();
        return RunStream<v1::RateUpdate>(
            path, ctx, first,
            [&](grpc::ClientContext* c) { return stub->WatchRates(c, req); },
            on_update);
      };
  return std::unique_ptr<Subscription>(new Subscription(std::move(open), opts_));
}

std::unique_ptr<Subscription> ClusterClient::WatchPolicy(
    std::function<void(const v1::PolicyUpdate&)> on_update) {
  std::shared_ptr<grpc::Channel> channel = channel_;
  std::string path = opts_.socket_path;
  auto stub = std::shared_ptr<v1::Local::Stub>(v1::Local::NewStub(channel));
  Subscription::Opener open = [stub, path, on_update = std::move(on_update)](
                                  grpc::ClientContext* ctx,
                                  const std::function<void()>& on_open) {
    v1::WatchPolicyRequest req;
    return RunStream<v1::PolicyUpdate>(
        path, ctx, on_open,
        [&](grpc::ClientContext* c) { return stub->WatchPolicy(c, req); },
        on_update);
  };
  return std::unique_ptr<Subscription>(new Subscription(std::move(open), opts_));
}

}  // namespace zm::cluster
