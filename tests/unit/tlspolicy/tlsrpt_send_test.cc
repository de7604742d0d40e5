// RFC 8460 report sending: the _smtp._tls record, mailto: URIs, and the
// report mail (headers, the gzipped JSON part decoded back).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "node/common/strings.h"
#include "node/tlspolicy/tlsrpt.h"

namespace zm::tlspolicy {
namespace {

TEST(TlsrptRecord, RuaUris) {
  auto u = ParseTlsrptRecords(
      {"v=spf1 -all",
       "v=TLSRPTv1; rua=mailto:a@example.net, https://r.example.net/x"});
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(*u, (std::vector<std::string>{"mailto:a@example.net",
                                          "https://r.example.net/x"}));
  EXPECT_TRUE(absl::IsNotFound(ParseTlsrptRecords({"v=spf1"}).status()));
  EXPECT_TRUE(absl::IsNotFound(
      ParseTlsrptRecords({"v=TLSRPTv1; rua=mailto:a@b", "v=TLSRPTv1; rua=x"})
          .status()));
  EXPECT_FALSE(ParseTlsrptRecords({"v=TLSRPTv1;"}).ok());
  EXPECT_FALSE(ParseTlsrptRecords({"v=TLSRPTv10; rua=mailto:a@b"}).ok());
}

TEST(TlsrptRecord, MailtoAddresses) {
  EXPECT_EQ(MailtoAddress("mailto:tls%2Breports@example.net?subject=x"),
            "tls+reports@example.net");
  EXPECT_EQ(MailtoAddress("https://example.net/x"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:a@b%0d%0aBcc:c@d"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:a@b,c@d"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:a@b%zz"), std::nullopt);
}

std::string Inflate(const std::string& gz) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(1 << 16, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(out.size() - z.avail_out);
  inflateEnd(&z);
  return out;
}

TEST(TlsrptMail, ReportAsMultipartWithGzippedJson) {
  nlohmann::json report{
      {"organization-name", "mx.example.org"},
      {"date-range",
       {{"start-datetime", "2026-11-20T00:00:00Z"},
        {"end-datetime", "2026-11-20T23:59:59Z"}}},
      {"report-id", "2026-11-20_example.net@mx.example.org"},
      {"policies",
       {{{"policy",
          {{"policy-type", "sts"}, {"policy-domain", "example.net"}}},
         {"summary",
          {{"total-successful-session-count", 5},
           {"total-failure-session-count", 1}}}}}}};
  auto m = ReportMessage(report, {.from = "postmaster@mx.example.org",
                                  .to = "tls@example.net",
                                  .submitter = "mx.example.org",
                                  .now = 1795219200});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NE(m->find("Subject: Report Domain: example.net Submitter: "
                    "mx.example.org Report-ID: "
                    "<2026-11-20_example.net@mx.example.org>\n"),
            std::string::npos)
      << *m;
  EXPECT_NE(m->find("TLS-Report-Domain: example.net\n"), std::string::npos);
  EXPECT_NE(m->find("TLS-Report-Submitter: mx.example.org\n"),
            std::string::npos);
  EXPECT_NE(m->find("Content-Type: multipart/report; report-type=\"tlsrpt\""),
            std::string::npos);
  EXPECT_NE(m->find("filename=\"mx.example.org!example.net!1795132800!"
                    "1795219199.json.gz\""),
            std::string::npos)
      << *m;
  // The attachment: base64 lines up to the closing boundary.
  size_t start = m->find("Content-Type: application/tlsrpt+gzip");
  ASSERT_NE(start, std::string::npos);
  start = m->find("\n\n", start) + 2;
  size_t end = m->find("\n--", start);
  std::string b64;
  for (std::string_view line :
       Split(std::string_view(*m).substr(start, end - start), '\n')) {
    EXPECT_LE(line.size(), 76u);  // RFC 2045 section 6.8
    b64 += line;
  }
  std::string gz(b64.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(gz.data()),
                          reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  ASSERT_GT(n, 0);
  // EVP_DecodeBlock counts the padding's zero bytes.
  size_t pad = b64.ends_with("==") ? 2 : b64.ends_with("=") ? 1 : 0;
  gz.resize(static_cast<size_t>(n) - pad);
  EXPECT_EQ(nlohmann::json::parse(Inflate(gz)), report);
  // Lines stay short (RFC 5322).
  for (std::string_view line : Split(*m, '\n')) {
    EXPECT_LE(line.size(), 998u);
  }
  EXPECT_FALSE(ReportMessage(nlohmann::json::object(), {}).ok());
}

}  // namespace
}  // namespace zm::tlspolicy
