// DKIM verification and signing through libopendkim; keys from
// zm::dns::Resolver through the library's key lookup callback.
#include <string.h>

// dkim.h uses C99's _Bool, which C++ spells bool (the same ABI).
#define _Bool bool
extern "C" {
#include <opendkim/dkim.h>
}
#undef _Bool

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "absl/status/status.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/dns/resolver.h"
#include "node/mailauth/mailauth.h"
#include "node/mailauth/message.h"
#include "node/smtp/sasl.h"

namespace zm::mailauth {
namespace {

constexpr size_t kBodyChunk = 64 * 1024;

std::string Str(const unsigned char* s) {
  return s ? std::string(reinterpret_cast<const char*>(s)) : std::string();
}

// The key record of a signature: selector._domainkey.domain TXT.
DKIM_CBSTAT KeyLookup(DKIM* dkim, DKIM_SIGINFO* sig, u_char* buf,
                      size_t buflen) {
  auto* dns = static_cast<dns::Resolver*>(dkim_get_user_context(dkim));
  if (dns == nullptr || buflen == 0) return DKIM_CBSTAT_ERROR;
  std::string name = StrCat(Str(dkim_sig_getselector(sig)), "._domainkey.",
                            Str(dkim_sig_getdomain(sig)));
  auto txt = dns->LookupTxt(name);
  if (!txt.ok()) {
    // TRYAGAIN would ask the caller to repeat the whole call later (an
    // asynchronous resolver's answer); ERROR records a key failure
    // (DKIM_SIGERROR_KEYFAIL: temperror) and goes on.
    return absl::IsUnavailable(txt.status()) ? DKIM_CBSTAT_ERROR
                                             : DKIM_CBSTAT_NOTFOUND;
  }
  for (const std::string& t : *txt) {
    if (t.find("p=") == std::string::npos) continue;
    size_t n = std::min(t.size(), buflen - 1);
    ::memcpy(buf, t.data(), n);
    buf[n] = '\0';
    return DKIM_CBSTAT_CONTINUE;
  }
  return DKIM_CBSTAT_NOTFOUND;
}

// Feeds the message to a signing or verifying handle; the status of the
// last call that did not succeed, or of dkim_eom.
DKIM_STAT Feed(DKIM* d, std::string_view message) {
  internal::ParsedMessage m = internal::ParseMessage(message);
  for (const internal::HeaderField& f : m.headers) {
    std::string h = internal::ToCrlf(f.raw);
    DKIM_STAT st =
        dkim_header(d, reinterpret_cast<u_char*>(h.data()), h.size());
    if (st != DKIM_STAT_OK) return st;
  }
  DKIM_STAT st = dkim_eoh(d);
  if (st != DKIM_STAT_OK) return st;
  for (size_t pos = 0; pos < m.body.size(); pos += kBodyChunk) {
    std::string chunk = internal::ToCrlf(m.body.substr(pos, kBodyChunk));
    // A chunk ending in CR (split CRLF of the input) cannot happen: the
    // spool has LF endings, and ToCrlf keeps an existing CR before LF.
    st = dkim_body(d, reinterpret_cast<u_char*>(chunk.data()), chunk.size());
    if (st != DKIM_STAT_OK) return st;
  }
  return dkim_eom(d, nullptr);
}

std::string AlgorithmName(DKIM_SIGINFO* sig) {
  dkim_alg_t alg = 0;
  if (dkim_sig_getsignalg(sig, &alg) != DKIM_STAT_OK) return "";
  switch (alg) {
    case DKIM_SIGN_RSASHA1:
      return "rsa-sha1";
    case DKIM_SIGN_RSASHA256:
      return "rsa-sha256";
    case DKIM_SIGN_ED25519SHA256:
      return "ed25519-sha256";
    default:
      return "";
  }
}

struct SignatureTags {
  std::string d, s, a, b;
};

// The d=, s=, a= and b= tags of every DKIM-Signature header, in order.
std::vector<SignatureTags> SignatureHeaders(std::string_view message) {
  std::vector<SignatureTags> out;
  internal::ParsedMessage m = internal::ParseMessage(message);
  for (const internal::HeaderField& f : m.headers) {
    if (!EqualsIgnoreCase(f.name, "DKIM-Signature")) continue;
    std::string v = internal::FieldValue(f);
    SignatureTags t;
    for (std::string_view tag : Split(v, ';')) {
      tag = Trim(tag);
      auto eq = tag.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view name = Trim(tag.substr(0, eq));
      std::string value;
      for (char c : tag.substr(eq + 1)) {
        if (c != ' ' && c != '\t') value += c;
      }
      if (name == "d") t.d = ToLower(value);
      if (name == "s") t.s = value;
      if (name == "a") t.a = ToLower(value);
      if (name == "b") t.b = value;
    }
    out.push_back(std::move(t));
  }
  return out;
}

// The first 8 characters of the b= tag of the signature by (domain,
// selector), for RFC 8601's header.b.
std::string BPrefix(std::string_view message, const std::string& domain,
                    const std::string& selector) {
  for (const SignatureTags& t : SignatureHeaders(message)) {
    if (t.d == ToLower(domain) && t.s == selector) return t.b.substr(0, 8);
  }
  return "";
}

class DkimImpl : public Dkim {
 public:
  DkimImpl(DKIM_LIB* lib, dns::Resolver* dns) : lib_(lib), dns_(dns) {}
  ~DkimImpl() override { dkim_close(lib_); }

  std::vector<DkimSignature> Verify(std::string_view message,
                                    std::string_view job_id) override {
    std::vector<DkimSignature> out;
    std::string id = job_id.empty() ? std::string("-") : std::string(job_id);
    DKIM_STAT st;
    DKIM* d = dkim_verify(lib_, reinterpret_cast<const u_char*>(id.c_str()),
                          nullptr, &st);
    if (d == nullptr) {
      DkimSignature s;
      s.result = "temperror";
      s.reason = StrCat("libopendkim: ", dkim_getresultstr(st));
      out.push_back(std::move(s));
      return out;
    }
    dkim_set_user_context(d, dns_);
    st = Feed(d, message);
    DKIM_SIGINFO** sigs = nullptr;
    int nsigs = 0;
    if (st != DKIM_STAT_NOSIG &&
        dkim_getsiglist(d, &sigs, &nsigs) == DKIM_STAT_OK) {
      for (int i = 0; i < nsigs; ++i) {
        out.push_back(Describe(d, sigs[i], message));
      }
    } else if (st == DKIM_STAT_CBERROR) {
      // A key lookup failed for now: libopendkim stops there, so every
      // signature of the message is a temperror.
      for (const SignatureTags& t : SignatureHeaders(message)) {
        DkimSignature sig;
        sig.domain = t.d;
        sig.selector = t.s;
        sig.algorithm = t.a;
        sig.b_prefix = t.b.substr(0, 8);
        sig.result = "temperror";
        sig.reason = "key lookup failed temporarily";
        out.push_back(std::move(sig));
      }
    }
    dkim_free(d);
    return out;
  }

  absl::StatusOr<std::string> Sign(std::string_view message,
                                   const DkimKey& key,
                                   std::string_view job_id) override {
    dkim_alg_t alg = key.algorithm == "ed25519-sha256" ? DKIM_SIGN_ED25519SHA256
                                                       : DKIM_SIGN_RSASHA256;
    std::string id = job_id.empty() ? std::string("-") : std::string(job_id);
    DKIM_STAT st;
    DKIM* d = dkim_sign(
        lib_, reinterpret_cast<const u_char*>(id.c_str()), nullptr,
        reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(key.key_pem.c_str())),
        reinterpret_cast<const u_char*>(key.selector.c_str()),
        reinterpret_cast<const u_char*>(key.domain.c_str()),
        DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, alg, -1, &st);
    if (d == nullptr) {
      return absl::InternalError(
          StrCat("dkim_sign: ", dkim_getresultstr(st)));
    }
    st = Feed(d, message);
    absl::StatusOr<std::string> out;
    u_char* buf = nullptr;
    size_t len = 0;
    if (st == DKIM_STAT_OK) {
      st = dkim_getsighdr_d(d, sizeof("DKIM-Signature: ") - 1, &buf, &len);
    }
    if (st != DKIM_STAT_OK) {
      const char* err = dkim_geterror(d);
      out = absl::InternalError(StrCat("DKIM signing failed: ",
                                       dkim_getresultstr(st),
                                       err ? StrCat(" (", err, ")") : ""));
    } else {
      std::string h = "DKIM-Signature: ";
      for (size_t i = 0; i < len; ++i) {
        if (buf[i] != '\r') h += static_cast<char>(buf[i]);
      }
      h += '\n';
      out = std::move(h);
    }
    dkim_free(d);
    return out;
  }

 private:
  DkimSignature Describe(DKIM* d, DKIM_SIGINFO* sig, std::string_view message) {
    DkimSignature s;
    s.domain = ToLower(Str(dkim_sig_getdomain(sig)));
    s.selector = Str(dkim_sig_getselector(sig));
    s.algorithm = AlgorithmName(sig);
    s.b_prefix = BPrefix(message, s.domain, s.selector);
    unsigned int flags = dkim_sig_getflags(sig);
    if ((flags & DKIM_SIGFLAG_PROCESSED) == 0) {
      dkim_sig_process(d, sig);
      flags = dkim_sig_getflags(sig);
    }
    int err = dkim_sig_geterror(sig);
    if ((flags & DKIM_SIGFLAG_PASSED) != 0 &&
        dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH) {
      s.result = "pass";
      return s;
    }
    const char* why = dkim_sig_geterrorstr(err);
    s.reason = why ? why : "signature did not verify";
    if ((flags & DKIM_SIGFLAG_PASSED) != 0) s.reason = "body hash mismatch";
    switch (err) {
      case DKIM_SIGERROR_KEYFAIL:
        s.result = "temperror";
        break;
      case DKIM_SIGERROR_NOKEY:
      case DKIM_SIGERROR_DNSSYNTAX:
      case DKIM_SIGERROR_KEYDECODE:
      case DKIM_SIGERROR_MISSING_D:
      case DKIM_SIGERROR_MISSING_H:
      case DKIM_SIGERROR_MISSING_S:
      case DKIM_SIGERROR_MISSING_B:
      case DKIM_SIGERROR_MISSING_BH:
      case DKIM_SIGERROR_MISSING_A:
      case DKIM_SIGERROR_MISSING_V:
      case DKIM_SIGERROR_VERSION:
      case DKIM_SIGERROR_INVALID_A:
        s.result = "permerror";
        break;
      case DKIM_SIGERROR_EXPIRED:
      case DKIM_SIGERROR_FUTURE:
        s.result = "neutral";
        break;
      default:
        s.result = "fail";
        break;
    }
    return s;
  }

  DKIM_LIB* const lib_;
  dns::Resolver* const dns_;
};

}  // namespace

}  // namespace zm::mailauth

// libopendkim 2.11.0~beta2 (Debian 12) never frees the key it loads for an
// Ed25519 signing handle (the EVP_PKEY and a 64-byte buffer, about 1 KiB
// per signature; docs/authentication.md). Sanitizer builds would report it
// at every exit; the leak is the library's, so LeakSanitizer is told to
// ignore it. The EVP_PKEY's stack ends in libcrypto (no frame pointers
// there), hence the module-wide entry.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:dkim_privkey_load\nleak:libcrypto.so\n";
}
// Quietly: a list of what was suppressed would read as a report.
extern "C" const char* __lsan_default_options() {
  return "print_suppressions=0";
}

namespace zm::mailauth {

absl::StatusOr<std::unique_ptr<Dkim>> Dkim::Create(dns::Resolver* dns) {
  DKIM_LIB* lib = dkim_init(nullptr, nullptr);
  if (lib == nullptr) return absl::InternalError("dkim_init failed");
  if (dkim_set_key_lookup(lib, KeyLookup) != DKIM_STAT_OK) {
    dkim_close(lib);
    return absl::InternalError("libopendkim: cannot set the key lookup");
  }
  // Verify every signature, not only until the first good one.
  unsigned int flags = 0;
  dkim_options(lib, DKIM_OP_GETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
  flags &= ~static_cast<unsigned int>(DKIM_LIBFLAGS_VERIFYONE);
  flags |= DKIM_LIBFLAGS_FIXCRLF;
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
  return std::unique_ptr<Dkim>(new DkimImpl(lib, dns));
}

// ---- keys -----------------------------------------------------------------

namespace {

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

std::string Base64(const unsigned char* data, size_t n) {
  return smtp::Base64Encode(
      std::string_view(reinterpret_cast<const char*>(data), n));
}

PkeyPtr ReadPem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* k = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr)
                    : nullptr;
  if (bio) BIO_free(bio);
  return PkeyPtr(k, EVP_PKEY_free);
}

}  // namespace

absl::StatusOr<DkimKeys> DkimKeys::Load(const std::string& path) {
  auto text = fs::ReadFile(path);
  if (!text.ok()) return text.status();
  std::string dir = path.substr(0, path.rfind('/') + 1);
  DkimKeys keys;
  int number = 0;
  for (std::string_view line : Split(*text, '\n')) {
    ++number;
    auto hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    auto w = SplitWhitespace(line);
    if (w.empty()) continue;
    auto err = [&](std::string_view what) {
      return absl::InvalidArgumentError(StrCat(path, ":", number, ": ", what));
    };
    if (w.size() < 3 || w.size() > 4) {
      return err("expected: domain selector keyfile [algorithm]");
    }
    DkimKey k;
    k.domain = ToLower(w[0]);
    k.selector = std::string(w[1]);
    std::string file(w[2]);
    if (file.front() != '/') file = dir + file;
    auto pem = fs::ReadFile(file);
    if (!pem.ok()) return err(StrCat("key ", file, ": ", Message(pem.status())));
    PkeyPtr pkey = ReadPem(*pem);
    if (!pkey) return err(StrCat("key ", file, ": not a PEM private key"));
    int type = EVP_PKEY_base_id(pkey.get());
    std::string kind = type == EVP_PKEY_ED25519 ? "ed25519-sha256"
                       : type == EVP_PKEY_RSA   ? "rsa-sha256"
                                                : "";
    if (kind.empty()) return err(StrCat("key ", file, ": neither RSA nor Ed25519"));
    k.algorithm = w.size() == 4 ? ToLower(w[3]) : kind;
    if (k.algorithm != "rsa-sha256" && k.algorithm != "ed25519-sha256") {
      return err(StrCat("algorithm must be rsa-sha256 or ed25519-sha256, not '",
                        w[3], "'"));
    }
    if (k.algorithm != kind) {
      return err(StrCat("key ", file, " is not a ", k.algorithm, " key"));
    }
    k.key_pem = std::move(*pem);
    if (keys.ForDomain(k.domain)) return err(StrCat(k.domain, " listed twice"));
    keys.keys_.push_back(std::move(k));
  }
  return keys;
}

const DkimKey* DkimKeys::ForDomain(std::string_view domain) const {
  for (const DkimKey& k : keys_) {
    if (EqualsIgnoreCase(k.domain, domain)) return &k;
  }
  return nullptr;
}

absl::StatusOr<GeneratedKey> GenerateKey(bool ed25519, int bits) {
  if (!ed25519 && (bits < 1024 || bits > 8192)) {
    return absl::InvalidArgumentError("RSA keys are 1024 to 8192 bits");
  }
  EVP_PKEY* raw = ed25519 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                          : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA",
                                              static_cast<size_t>(bits));
  if (raw == nullptr) return absl::InternalError("key generation failed");
  PkeyPtr key(raw, EVP_PKEY_free);
  GeneratedKey out;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    if (bio) BIO_free(bio);
    return absl::InternalError("cannot write the private key");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  out.private_pem.assign(data, static_cast<size_t>(n));
  BIO_free(bio);
  std::string p;
  if (ed25519) {
    // RFC 8463: p= is the raw 32-byte public key.
    unsigned char pub[32];
    size_t len = sizeof pub;
    if (EVP_PKEY_get_raw_public_key(key.get(), pub, &len) != 1) {
      return absl::InternalError("cannot read the public key");
    }
    p = Base64(pub, len);
  } else {
    // RFC 6376 3.6.1: p= is the DER SubjectPublicKeyInfo.
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(key.get(), &der);
    if (len <= 0) return absl::InternalError("cannot encode the public key");
    p = Base64(der, static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  out.txt_record = StrCat("v=DKIM1; k=", ed25519 ? "ed25519" : "rsa", "; p=", p);
  return out;
}

}  // namespace zm::mailauth
