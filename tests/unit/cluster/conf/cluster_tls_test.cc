// The fleet's mutual TLS through real gRPC on 127.0.0.1: certificates made
// by the openssl command at test time, a tiny Local service that reports
// who called it.
#include "cluster/conf/cluster_tls.h"

#include <gtest/gtest.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/unit/testing/wait.h"
#include "zmnode/cluster/v1/local.grpc.pb.h"

namespace zm::cluster {
namespace {

namespace pb = zmnode::cluster::v1;

// Runs a shell command; the test fails on a non-zero exit.
void Sh(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  ASSERT_EQ(rc, 0) << cmd;
}

// Answers Members with the caller's verified CN as node_id; with a
// "claim" metadata entry, checks the caller is who it claims to be.
class WhoService final : public pb::Local::Service {
  grpc::Status Members(grpc::ServerContext* ctx, const pb::MembersRequest*,
                       pb::MembersReply* reply) override {
    auto claim = ctx->client_metadata().find("claim");
    if (claim != ctx->client_metadata().end()) {
      std::string id(claim->second.data(), claim->second.size());
      if (auto s = CheckPeerIs(*ctx, id); !s.ok()) {
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                            std::string(s.message()));
      }
    }
    auto peer = VerifiedPeer(*ctx);
    if (!peer.ok()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          std::string(peer.status().message()));
    }
    reply->set_node_id(peer->common_name);
    return grpc::Status::OK;
  }
};

class ClusterTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/zm-cluster-tls-XXXXXX";
    dir_ = new std::string(::mkdtemp(tmpl));
    MakeCa("fleet");
    MakeCa("other");
    MakeCert("fleet", "n1");
    MakeCert("fleet", "n2");
    MakeCert("fleet", "n1b", "n1-renewed");
    MakeCert("other", "evil", "n2");
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::string P(const std::string& name) { return *dir_ + "/" + name; }
  static void MakeCa(const std::string& ca) {
    Sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
       "-nodes -days 2 -subj /CN=" + ca + "-ca -keyout " + P(ca + "-key.pem") +
       " -out " + P(ca + "-cert.pem"));
  }
  // A node certificate `file` for `cn` (default: file), signed by `ca`.
  static void MakeCert(const std::string& ca, const std::string& file,
                       std::string cn = "") {
    if (cn.empty()) cn = file;
    std::string ext = P(file + ".ext");
    std::ofstream(ext) << "subjectAltName=DNS:" << cn << ",IP:127.0.0.1\n"
                       << "extendedKeyUsage=serverAuth,clientAuth\n";
    Sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-subj /CN=" + cn + " -keyout " + P(file + "-key.pem") + " -out " +
       P(file + ".csr"));
    Sh("openssl x509 -req -days 2 -in " + P(file + ".csr") + " -CA " +
       P(ca + "-cert.pem") + " -CAkey " + P(ca + "-key.pem") +
       " -CAcreateserial -extfile " + ext + " -out " + P(file + "-cert.pem"));
  }
  static TlsFiles Files(const std::string& node, const std::string& ca) {
    TlsFiles f;
    f.cert = P(node + "-cert.pem");
    f.key = P(node + "-key.pem");
    f.ca = P(ca + "-cert.pem");
    f.refresh_seconds = 1;
    return f;
  }

  void StartServer(const TlsFiles& files) {
    auto creds = PeerServerCredentials(files);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", *creds, &port_);
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  struct CallResult {
    grpc::Status status;
    std::string server_says;   // the caller's CN, as the server saw it
    std::string server_is;     // the server's CN, as the client saw it
  };
  CallResult Call(std::shared_ptr<grpc::ChannelCredentials> creds,
                  const std::string& target_name, const std::string& claim = "") {
    auto channel = grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(port_), creds,
        PeerChannelArguments(target_name, 1 << 20));
    auto stub = pb::Local::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    if (!claim.empty()) ctx.AddMetadata("claim", claim);
    pb::MembersReply reply;
    CallResult r;
    r.status = stub->Members(&ctx, pb::MembersRequest(), &reply);
    r.server_says = reply.node_id();
    if (r.status.ok()) {
      auto id = VerifiedPeer(*ctx.auth_context());
      if (id.ok()) r.server_is = id->common_name;
    }
    return r;
  }
  std::shared_ptr<grpc::ChannelCredentials> Client(
      const TlsFiles& f, ServerNameCheck check = ServerNameCheck::kHostName) {
    auto c = PeerChannelCredentials(f, check);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : nullptr;
  }

  static std::string* dir_;
  WhoService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

std::string* ClusterTlsTest::dir_ = nullptr;

TEST_F(ClusterTlsTest, FleetCertificatesTalk) {
  StartServer(Files("n1", "fleet"));
  auto r = Call(Client(Files("n2", "fleet")), "n1");
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.server_says, "n2");
  EXPECT_EQ(r.server_is, "n1");
  // A seed known only by its address: the IP SAN is checked.
  r = Call(Client(Files("n2", "fleet")), "");
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.server_is, "n1");
  // The claim matches the certificate.
  r = Call(Client(Files("n2", "fleet")), "n1", "n2");
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
}

TEST_F(ClusterTlsTest, WrongIdentityIsDetected) {
  StartServer(Files("n1", "fleet"));
  // n2 claims to be n3: the server sees through it.
  auto r = Call(Client(Files("n2", "fleet")), "n1", "n3");
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(r.status.error_message(),
            "peer claims to be 'n3' but its certificate is for 'n2'");
  // The client expects n3 and reaches n1: the handshake fails.
  r = Call(Client(Files("n2", "fleet")), "n3");
  EXPECT_FALSE(r.status.ok());
  // Fleet-only checking accepts n1 and lets the caller see who it is.
  r = Call(Client(Files("n2", "fleet"), ServerNameCheck::kFleetOnly), "n3");
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.server_is, "n1");
}

TEST_F(ClusterTlsTest, CertificateFromAnotherCaIsRefused) {
  StartServer(Files("n1", "fleet"));
  // "evil" says it is n2 and trusts our CA, but its certificate is not ours.
  TlsFiles evil = Files("evil", "other");
  evil.ca = P("fleet-cert.pem");
  auto r = Call(Client(evil), "n1");
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << r.status.error_message();
  // A client of the other CA does not trust our server either.
  r = Call(Client(Files("evil", "other")), "n1");
  EXPECT_FALSE(r.status.ok());
}

TEST_F(ClusterTlsTest, NoClientCertificateIsRefused) {
  StartServer(Files("n1", "fleet"));
  std::ifstream in(P("fleet-cert.pem"));
  std::string ca((std::istreambuf_iterator<char>(in)),
                 std::istreambuf_iterator<char>());
  grpc::experimental::TlsChannelCredentialsOptions opts;
  opts.set_certificate_provider(
      std::make_shared<grpc::experimental::StaticDataCertificateProvider>(ca));
  opts.watch_root_certs();
  auto r = Call(grpc::experimental::TlsCredentials(opts), "n1");
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << r.status.error_message();
  // And plaintext gets nowhere.
  r = Call(grpc::InsecureChannelCredentials(), "");
  EXPECT_FALSE(r.status.ok());
}

TEST_F(ClusterTlsTest, MissingFilesAreNamed) {
  TlsFiles f = Files("n1", "fleet");
  f.key = P("nope-key.pem");
  auto s = PeerServerCredentials(f);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(std::string(s.status().message()),
            "tls-key: cannot read " + f.key + ": No such file or directory");
  EXPECT_FALSE(PeerChannelCredentials(f).ok());
}

TEST_F(ClusterTlsTest, ReplacedCertificateIsServedWithoutRestart) {
  std::string live = P("live");
  std::filesystem::create_directories(live);
  auto install = [&](const std::string& node) {
    // Key first, then certificate, each by rename.
    for (const char* part : {"-key.pem", "-cert.pem"}) {
      std::filesystem::copy_file(
          P(node + part), live + "/tmp" + part,
          std::filesystem::copy_options::overwrite_existing);
      std::filesystem::rename(live + "/tmp" + part, live + "/node" + part);
    }
  };
  install("n1");
  TlsFiles served = Files("n1", "fleet");
  served.cert = live + "/node-cert.pem";
  served.key = live + "/node-key.pem";
  StartServer(served);
  auto client = Client(Files("n2", "fleet"), ServerNameCheck::kFleetOnly);
  auto r = Call(client, "");
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.server_is, "n1");

  install("n1b");
  // Each call on a fresh channel is a fresh handshake; the watcher looks
  // every second.
  std::string seen;
  EXPECT_TRUE(testutil::WaitFor(
      [&] {
        seen = Call(client, "").server_is;
        return seen == "n1-renewed";
      },
      20000))
      << "still serving " << seen;
}

// TLS below 1.2 is refused (gRPC's TLS credentials start at 1.2).
TEST_F(ClusterTlsTest, OldTlsVersionsAreRefused) {
  StartServer(Files("n1", "fleet"));
  auto handshake = [&](int max_version) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(ctx, 0);  // let this client offer TLS 1.0/1.1
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL_CTX_use_certificate_chain_file(ctx, P("n2-cert.pem").c_str());
    SSL_CTX_use_PrivateKey_file(ctx, P("n2-key.pem").c_str(), SSL_FILETYPE_PEM);
    static const unsigned char kAlpn[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn);
    BIO* bio = BIO_new_ssl_connect(ctx);
    std::string target = "127.0.0.1:" + std::to_string(port_);
    BIO_set_conn_hostname(bio, target.c_str());
    bool ok = BIO_do_handshake(bio) == 1;
    BIO_free_all(bio);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return ok;
  };
  EXPECT_TRUE(handshake(TLS1_2_VERSION));
  EXPECT_FALSE(handshake(TLS1_1_VERSION));
}

}  // namespace
}  // namespace zm::cluster
