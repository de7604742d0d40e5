// The self-signed certificate `zmailer init` makes, so STARTTLS works from
// the first start. OpenSSL 3 API only (no deprecated RSA_/EC_KEY_ calls).
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <memory>

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

absl::Status AddExtension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
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

}  // namespace

absl::Status WriteSelfSignedCertificate(const CertificateOptions& opts,
                                        const std::string& cert_path,
                                        const std::string& key_path) {
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
      X509_set_issuer_name(cert.get(), name) != 1) {
    return SslError("subject name");
  }

  std::string san;
  for (const auto& d : opts.dns_names) {
    StrAppend(&san, san.empty() ? "" : ",", "DNS:", d);
  }
  for (const auto& ip : opts.ip_addresses) {
    StrAppend(&san, san.empty() ? "" : ",", "IP:", ip);
  }
  if (!san.empty()) {
    if (auto s = AddExtension(cert.get(), NID_subject_alt_name, san); !s.ok()) {
      return s;
    }
  }
  for (auto [nid, value] : {
           std::pair{NID_basic_constraints, "critical,CA:FALSE"},
           std::pair{NID_key_usage, "critical,digitalSignature"},
           std::pair{NID_ext_key_usage, "serverAuth"},
           std::pair{NID_subject_key_identifier, "hash"},
       }) {
    if (auto s = AddExtension(cert.get(), nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
    return SslError("signing");
  }

  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio ||
      PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0,
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

}  // namespace zm::zmailer
