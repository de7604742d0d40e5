#include "node/admind/admind_server.h"

#include <httplib.h>

#include "node/admind/admind_assets.h"
#include "node/admind/admind_health.h"
#include "node/admind/admind_metrics.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/common/tls_server.h"

namespace zm::admind {
namespace {

constexpr char kJson[] = "application/json";

void SendJson(httplib::Response& res, const ApiReply& r) {
  res.status = r.status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(r.body, kJson);
}

Params ParamsOf(const httplib::Request& req) {
  Params p;
  for (const auto& [k, v] : req.params) p.emplace(k, v);  // first value wins
  return p;
}

// The token a state-changing request needs.
uint32_t NeededToken(const httplib::Request& req) {
  if (req.path.starts_with("/api/v1/etrn")) return admin::kTokenEtrn;
  return admin::kTokenKill;
}

struct SseClient {
  uint64_t seen = 0;
  std::map<std::string, std::string> sent;
};

}  // namespace

AdminServer::AdminServer(NodeDir node, AdminConfig conf, Api* api,
                         EventHub* hub, Logger* log)
    : node_(std::move(node)),
      conf_(std::move(conf)),
      api_(api),
      hub_(hub),
      log_(log),
      auth_(conf_.auth_file) {}

AdminServer::~AdminServer() = default;

absl::Status AdminServer::Init() {
  if (conf_.tls()) {
    for (const std::string& f : {conf_.tls_cert, conf_.tls_key}) {
      if (!fs::Exists(f)) {
        return absl::NotFoundError(StrCat("admin TLS file ", f, " not found"));
      }
    }
    auto ssl = std::make_unique<httplib::SSLServer>(conf_.tls_cert.c_str(),
                                                    conf_.tls_key.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(StrCat(
          "admin TLS: cannot use ", conf_.tls_cert, " and ", conf_.tls_key));
    }
    // httplib's own floor is TLS 1.1 with OpenSSL's default suites.
    if (!tls::ApplyServerFloor(ssl->ssl_context(), conf_.tls_cipher_list)) {
      return absl::InvalidArgumentError(
          StrCat("admin TLS: no usable suite in tls-cipher-list ",
                 conf_.tls_cipher_list));
    }
    server_ = std::move(ssl);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  size_t threads = static_cast<size_t>(conf_.max_events_clients) + 8;
  server_->new_task_queue = [threads] {
    return new httplib::ThreadPool(threads);
  };
  server_->set_payload_max_length(conf_.max_body);
  server_->set_read_timeout(10, 0);
  server_->set_write_timeout(10, 0);
  server_->set_keep_alive_timeout(5);
  server_->set_keep_alive_max_count(100);
  Routes();
  return absl::OkStatus();
}

void AdminServer::Routes() {
  httplib::Server& s = *server_;
  const bool read_auth = conf_.ReadNeedsAuth();
  s.set_pre_routing_handler([this, read_auth](const httplib::Request& req,
                                              httplib::Response& res) {
    if (static_cast<int>(req.headers.size()) > conf_.max_headers) {
      SendJson(res, ErrorReply(431, "too many header lines"));
      return httplib::Server::HandlerResponse::Handled;
    }
    bool writes = req.method != "GET" && req.method != "HEAD";
    bool probe = req.path == "/healthz" || req.path == "/readyz";
    if (!writes && (probe || !read_auth)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    AuthResult r = auth_.Check(req.get_header_value("Authorization"),
                               req.remote_addr, writes ? NeededToken(req) : 0);
    if (r.code == 200) return httplib::Server::HandlerResponse::Unhandled;
    if (r.code == 401) {
      res.set_header("WWW-Authenticate", "Basic realm=\"zmnode admin\"");
    }
    log_->Warning("", StrCat("admin ", req.method, " ", req.path, " from ",
                             req.remote_addr, " refused: ", r.reason));
    // A 401 says the same whatever went wrong (no such user, a user whose
    // masks exclude the client, a wrong password): only the log tells.
    SendJson(res, ErrorReply(r.code, r.code == 401 ? std::string(kAuthRequired)
                                                   : r.reason));
    return httplib::Server::HandlerResponse::Handled;
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string what = res.status == 404 ? StrCat("no such resource ", req.path)
                       : res.status == 413 ? std::string("request too large")
                       : res.status == 405 ? std::string("method not allowed")
                                           : StrCat("HTTP ", res.status);
    res.set_content(ErrorReply(res.status, what).body, kJson);
  });

  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  s.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    Readiness r = CheckReadiness(node_);
    res.set_header("Cache-Control", "no-store");
    if (r.ready) {
      res.set_content("ready\n", "text/plain; charset=utf-8");
      return;
    }
    std::string body;
    for (const auto& f : r.failures) StrAppend(&body, f, "\n");
    res.status = 503;
    res.set_content(body, "text/plain; charset=utf-8");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    auto samples = ReadAllSamples(node_);
    for (auto& x : NodeSamples(node_)) samples.push_back(std::move(x));
    for (auto& x : api_->FleetSamples()) samples.push_back(std::move(x));
    res.set_header("Cache-Control", "no-store");
    res.set_content(RenderPrometheus(samples),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/api/v1/events",
        [this](const httplib::Request&, httplib::Response& res) {
          if (!hub_->Acquire()) {
            SendJson(res, ErrorReply(503, "too many event listeners"));
            return;
          }
          auto client = std::make_shared<SseClient>();
          res.set_header("Cache-Control", "no-store");
          res.set_header("X-Accel-Buffering", "no");
          res.set_chunked_content_provider(
              "text/event-stream",
              [this, client](size_t, httplib::DataSink& sink) {
                EventSnapshot snap = hub_->Wait(client->seen, 2000);
                if (snap.stopped) {
                  sink.done();
                  return true;
                }
                std::string out;
                if (snap.topics && snap.version != client->seen) {
                  for (const auto& [name, data] : *snap.topics) {
                    std::string& last = client->sent[name];
                    if (last == data) continue;
                    out += EventHub::Format(name, data);
                    last = data;
                  }
                }
                client->seen = snap.version;
                if (out.empty()) out = ": keep-alive\n\n";
                return sink.write(out.data(), out.size());
              },
              [this](bool) { hub_->Release(); });
        });
  s.Get(R"(/api/v1/(.+))",
        [this](const httplib::Request& req, httplib::Response& res) {
          SendJson(res, api_->Get(req.matches[1].str(), ParamsOf(req)));
        });
  s.Post(R"(/api/v1/(.+))", [this](const httplib::Request& req,
                                   httplib::Response& res) {
    ApiReply r = api_->Post(req.matches[1].str(), req.body);
    if (r.status == 200) {
      log_->Info("", StrCat("admin POST ", req.path, " from ", req.remote_addr,
                            ": ", req.body.substr(0, 200)));
      hub_->Poke();
    }
    SendJson(res, r);
  });
  s.Delete(R"(/api/v1/(.+))",
           [this](const httplib::Request& req, httplib::Response& res) {
             ApiReply r = api_->Delete(req.matches[1].str(), ParamsOf(req));
             if (r.status == 200) {
               log_->Info("", StrCat("admin DELETE ", req.path, " from ",
                                     req.remote_addr));
               hub_->Poke();
             }
             SendJson(res, r);
           });
  s.Get(R"(/(.*))", [](const httplib::Request& req, httplib::Response& res) {
    std::string path = req.matches[1].str();
    const Asset* a = FindAsset(path);
    res.set_header("Cache-Control", "no-cache");
    if (a != nullptr) {
      res.set_content(std::string(a->contents()),
                      std::string(ContentType(a->path)));
    } else if (path.empty() || path == "index.html") {
      res.set_content(std::string(FallbackIndex()), "text/html; charset=utf-8");
    } else {
      res.status = 404;
    }
  });
}

void AdminServer::Run() {
  struct Done {
    std::atomic<bool>* f;
    ~Done() { f->store(true); }
  } done{&finished_};
  bool warned = false;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
    }
    if (server_->bind_to_port(conf_.listen_host, conf_.listen_port)) {
      listening_ = true;
      log_->Info("", StrCat("admin listener on ", conf_.Url()));
      {
        absl::MutexLock lock(&mu_);
        if (stop_) return;
      }
      server_->listen_after_bind();
      listening_ = false;
      return;
    }
    if (!warned) {
      log_->Error("", StrCat("admin listener: cannot bind ", conf_.listen_host,
                             ":", conf_.listen_port, ": ", strerror(errno),
                             "; retrying every 5s"));
      warned = true;
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Seconds(5));
  }
}

void AdminServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (server_) server_->stop();
}

}  // namespace zm::admind
