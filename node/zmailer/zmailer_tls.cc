// The certificates `zmailer init` makes: the smtpserver's self-signed one,
// so STARTTLS works from the first start, and a fleet's CA with the node
// certificates it issues for the cluster's mutual TLS. OpenSSL 3 API only
// (no deprecated RSA_/EC_KEY_ calls).
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <vector>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/zmailer/zmailer.h"

namespace zm::zmailer {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION,
                               Deleter<X509_EXTENSION, X509_EXTENSION_free>>;

// The failing step and OpenSSL's most recent reason.
absl::Status SslError(std::string_view what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return absl::InternalError(StrCat("TLS certificate: ", what, ": ", buf));
}

// `issuer` is the certificate that signs `cert` (itself when self-signed).
absl::Status AddExtension(X509* cert, X509* issuer, int nid,
                          const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return SslError(StrCat("extension ", OBJ_nid2sn(nid), "=", value));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ToPem(BIO* bio) {
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  if (mem == nullptr) return SslError("PEM buffer");
  return std::string(mem->data, mem->length);
}

// A key and a certificate for `opts`, signed by `issuer`/`issuer_key`, or
// self-signed when they are null.
absl::Status MakeCertificate(const CertificateOptions& opts, X509* issuer,
                             EVP_PKEY* issuer_key, PkeyPtr* key_out,
                             X509Ptr* cert_out) {
  if (opts.common_name.empty()) {
    return absl::InvalidArgumentError("TLS certificate needs a common name");
  }
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return SslError("P-256 key generation");

  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    return SslError("new certificate");
  }
  // A random 127-bit serial: clients that cached an older certificate of
  // the same name never see the same (issuer, serial) pair twice.
  BnPtr serial(BN_new());
  if (!serial ||
      BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) ==
          nullptr) {
    return SslError("serial number");
  }
  // An hour of slack for clocks that are a little behind ours.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                      static_cast<long>(opts.days) * 86400L) == nullptr) {
    return SslError("validity");
  }
  if (X509_set_pubkey(cert.get(), key.get()) != 1)
    return SslError("public key");
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(
          name, "O", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>("zmnode"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(opts.common_name.c_str()), -1,
          -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer)
                                              : name) != 1) {
    return SslError("subject name");
  }

  X509* signer = issuer ? issuer : cert.get();
  std::string san;
  for (const auto& d : opts.dns_names) {
    StrAppend(&san, san.empty() ? "" : ",", "DNS:", d);
  }
  for (const auto& ip : opts.ip_addresses) {
    StrAppend(&san, san.empty() ? "" : ",", "IP:", ip);
  }
  if (!san.empty()) {
    if (auto s = AddExtension(cert.get(), signer, NID_subject_alt_name, san);
        !s.ok()) {
      return s;
    }
  }
  std::vector<std::pair<int, const char*>> exts;
  if (opts.ca) {
    exts = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
            {NID_key_usage, "critical,keyCertSign,cRLSign"},
            {NID_subject_key_identifier, "hash"}};
  } else {
    exts = {{NID_basic_constraints, "critical,CA:FALSE"},
            {NID_key_usage, "critical,digitalSignature"},
            {NID_ext_key_usage,
             opts.client_auth ? "serverAuth,clientAuth" : "serverAuth"},
            {NID_subject_key_identifier, "hash"}};
  }
  if (issuer) exts.push_back({NID_authority_key_identifier, "keyid:always"});
  for (auto [nid, value] : exts) {
    if (auto s = AddExtension(cert.get(), signer, nid, value); !s.ok()) {
      return s;
    }
  }
  if (X509_sign(cert.get(), issuer_key ? issuer_key : key.get(),
                EVP_sha256()) <= 0) {
    return SslError("signing");
  }
  *key_out = std::move(key);
  *cert_out = std::move(cert);
  return absl::OkStatus();
}

// Writes the key (0600) and then the certificate (0644), each atomically.
absl::Status WritePair(EVP_PKEY* key, X509* cert, const std::string& cert_path,
                       const std::string& key_path) {
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio ||
      PEM_write_bio_X509(cert_bio.get(), cert) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key, nullptr, nullptr, 0,
                               nullptr, nullptr) != 1) {
    return SslError("PEM encoding");
  }
  auto cert_pem = ToPem(cert_bio.get());
  if (!cert_pem.ok()) return cert_pem.status();
  auto key_pem = ToPem(key_bio.get());
  if (!key_pem.ok()) return key_pem.status();

  // The key first: a certificate without its key is the worse half-state.
  std::filesystem::path kp(key_path), cp(cert_path);
  if (auto s = fs::WriteFileAtomically(kp.parent_path().string(),
                                       kp.filename().string(), *key_pem, 0600);
      !s.ok()) {
    return s;
  }
  // open(2) keeps the mode of a leftover temporary file; make sure.
  if (::chmod(key_path.c_str(), 0600) != 0) {
    return fs::ErrnoStatus("chmod", key_path, errno);
  }
  return fs::WriteFileAtomically(cp.parent_path().string(),
                                 cp.filename().string(), *cert_pem, 0644);
}

// Bounded PEM reads: a CA's files are a few kilobytes.
constexpr size_t kMaxPemBytes = 64 << 10;

absl::StatusOr<X509Ptr> ReadCertificate(const std::string& path) {
  auto pem = fs::ReadFile(path, kMaxPemBytes);
  if (!pem.ok()) return pem.status();
  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)
                   : nullptr);
  if (!cert) return SslError(StrCat("reading ", path));
  return cert;
}

absl::StatusOr<PkeyPtr> ReadPrivateKey(const std::string& path) {
  auto pem = fs::ReadFile(path, kMaxPemBytes);
  if (!pem.ok()) return pem.status();
  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr,
                                            nullptr)
                  : nullptr);
  if (!key) return SslError(StrCat("reading ", path));
  return key;
}

}  // namespace

absl::Status WriteSelfSignedCertificate(const CertificateOptions& opts,
                                        const std::string& cert_path,
                                        const std::string& key_path) {
  PkeyPtr key;
  X509Ptr cert;
  if (auto s = MakeCertificate(opts, nullptr, nullptr, &key, &cert); !s.ok()) {
    return s;
  }
  return WritePair(key.get(), cert.get(), cert_path, key_path);
}

absl::Status WriteIssuedCertificate(const CertificateOptions& opts,
                                    const std::string& ca_cert_path,
                                    const std::string& ca_key_path,
                                    const std::string& cert_path,
                                    const std::string& key_path) {
  auto ca_cert = ReadCertificate(ca_cert_path);
  if (!ca_cert.ok()) return ca_cert.status();
  auto ca_key = ReadPrivateKey(ca_key_path);
  if (!ca_key.ok()) return ca_key.status();
  if (X509_check_private_key(ca_cert->get(), ca_key->get()) != 1) {
    return SslError(StrCat(ca_key_path, " is not the key of ", ca_cert_path));
  }
  PkeyPtr key;
  X509Ptr cert;
  if (auto s = MakeCertificate(opts, ca_cert->get(), ca_key->get(), &key, &cert);
      !s.ok()) {
    return s;
  }
  return WritePair(key.get(), cert.get(), cert_path, key_path);
}

absl::Status IssueFromFleetCa(const std::string& ca_dir,
                              const CertificateOptions& opts,
                              const std::string& cert_path,
                              const std::string& key_path,
                              const std::string& ca_copy_path, bool* created) {
  if (auto s = fs::MakeDirs(ca_dir, 0700); !s.ok()) return s;
  std::string lock_path = ca_dir + "/.lock";
  int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return fs::ErrnoStatus("open", lock_path, errno);
  // Held until return: one init at a time makes or reads the CA.
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock};
  while (::flock(lock, LOCK_EX) != 0) {
    if (errno != EINTR) return fs::ErrnoStatus("flock", lock_path, errno);
  }
  std::string ca_cert = ca_dir + "/ca-cert.pem";
  std::string ca_key = ca_dir + "/ca-key.pem";
  bool have_cert = fs::Exists(ca_cert), have_key = fs::Exists(ca_key);
  if (have_cert != have_key) {
    return absl::FailedPreconditionError(
        StrCat(ca_dir, " holds ", have_cert ? "ca-cert.pem" : "ca-key.pem",
               " without ", have_cert ? "ca-key.pem" : "ca-cert.pem"));
  }
  if (created) *created = !have_cert;
  if (!have_cert) {
    CertificateOptions ca;
    ca.common_name = "zmnode fleet CA";
    ca.ca = true;
    if (auto s = WriteSelfSignedCertificate(ca, ca_cert, ca_key); !s.ok()) {
      return s;
    }
  }
  if (auto s = WriteIssuedCertificate(opts, ca_cert, ca_key, cert_path,
                                      key_path);
      !s.ok()) {
    return s;
  }
  auto pem = fs::ReadFile(ca_cert, kMaxPemBytes);
  if (!pem.ok()) return pem.status();
  std::filesystem::path copy(ca_copy_path);
  return fs::WriteFileAtomically(copy.parent_path().string(),
                                 copy.filename().string(), *pem, 0644);
}

}  // namespace zm::zmailer
