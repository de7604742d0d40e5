// The PROXY protocol header parser and the trusted-network matcher
// (node/smtpserver/smtpserver_proxy.h).
#include <gtest/gtest.h>

#include <string>

#include "node/smtpserver/smtpserver_proxy.h"

namespace zm::smtpserver {
namespace {

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string V2(unsigned char ver_cmd, unsigned char fam,
               const std::string& body) {
  std::string h = kSig;
  h += static_cast<char>(ver_cmd);
  h += static_cast<char>(fam);
  h += static_cast<char>(body.size() >> 8);
  h += static_cast<char>(body.size() & 0xff);
  return h + body;
}

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

TEST(ProxyHeaderTest, V1Tcp4) {
  std::string line = "PROXY TCP4 192.0.2.7 10.0.0.5 40000 25\r\n";
  ProxyHeader h;
  auto n = ParseProxyHeader(line + "EHLO x\r\n", &h);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, line.size());  // not a byte of what follows
  EXPECT_EQ(h.version, 1);
  EXPECT_FALSE(h.local);
  EXPECT_EQ(h.src_addr, "192.0.2.7");
  EXPECT_EQ(h.dst_addr, "10.0.0.5");
  EXPECT_EQ(h.src_port, 40000);
  EXPECT_EQ(h.dst_port, 25);
}

TEST(ProxyHeaderTest, V1Tcp6AndUnknown) {
  ProxyHeader h;
  auto n = ParseProxyHeader("PROXY TCP6 2001:db8::1 2001:db8::2 1 587\r\n", &h);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(h.src_addr, "2001:db8::1");
  EXPECT_EQ(h.dst_port, 587);
  n = ParseProxyHeader("PROXY UNKNOWN whatever\r\n", &h);
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(h.local);
}

TEST(ProxyHeaderTest, V1NeedsMoreUntilCrlf) {
  ProxyHeader h;
  for (std::string part : {"P", "PROX", "PROXY ", "PROXY TCP4 192.0.2.7 1",
                           "PROXY TCP4 192.0.2.7 10.0.0.5 1 25\r"}) {
    auto n = ParseProxyHeader(part, &h);
    ASSERT_TRUE(n.ok()) << part;
    EXPECT_EQ(*n, 0u) << part;
    EXPECT_EQ(ProxyBytesWanted(part), 1u);
  }
}

TEST(ProxyHeaderTest, V1Malformed) {
  ProxyHeader h;
  for (std::string bad : {
           "PROXY TCP4 192.0.2.7 10.0.0.5 40000\r\n",      // a field short
           "PROXY TCP4 2001:db8::1 10.0.0.5 1 25\r\n",     // wrong family
           "PROXY TCP4 192.0.2.7 10.0.0.5 70000 25\r\n",   // port
           "PROXY TCP4 192.0.2.7 10.0.0.5 025 25\r\n",     // leading zero
           "PROXY UDP4 192.0.2.7 10.0.0.5 1 25\r\n",       // protocol
           "PROXY TCP4 192.0.2.7 10.0.0.5 1 25\n",         // bare LF
           "EHLO client.example\r\n",                       // not a header
       }) {
    auto n = ParseProxyHeader(bad, &h);
    EXPECT_FALSE(n.ok()) << bad;
  }
  std::string longline = "PROXY TCP4 " + std::string(120, '1');
  EXPECT_FALSE(ParseProxyHeader(longline, &h).ok());
}

TEST(ProxyHeaderTest, V2Inet) {
  std::string body = Bytes({192, 0, 2, 7, 10, 0, 0, 5, 0x9c, 0x40, 0, 25});
  body += Bytes({0x04, 0, 1, 0x55});  // a TLV (NOOP), skipped
  std::string hdr = V2(0x21, 0x11, body);
  ProxyHeader h;
  auto n = ParseProxyHeader(hdr + "EHLO", &h);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, hdr.size());
  EXPECT_EQ(h.version, 2);
  EXPECT_EQ(h.src_addr, "192.0.2.7");
  EXPECT_EQ(h.dst_addr, "10.0.0.5");
  EXPECT_EQ(h.src_port, 40000);
  EXPECT_EQ(h.dst_port, 25);
  // Byte by byte it asks for what is missing, never more.
  for (size_t i = 1; i < hdr.size(); ++i) {
    auto part = ParseProxyHeader(hdr.substr(0, i), &h);
    ASSERT_TRUE(part.ok()) << i;
    EXPECT_EQ(*part, 0u) << i;
    size_t want = ProxyBytesWanted(hdr.substr(0, i));
    EXPECT_GE(want, 1u);
    EXPECT_LE(i + want, hdr.size()) << i;
  }
}

TEST(ProxyHeaderTest, V2Inet6LocalAndOthers) {
  std::string a6 = Bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                          0, 0, 1});
  std::string b6 = Bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                          0, 0, 2});
  ProxyHeader h;
  auto n = ParseProxyHeader(V2(0x21, 0x21, a6 + b6 + Bytes({0, 80, 1, 75})),
                            &h);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(h.src_addr, "2001:db8::1");
  EXPECT_EQ(h.dst_port, 331);
  // LOCAL: the proxy's own health check.
  n = ParseProxyHeader(V2(0x20, 0x00, ""), &h);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 16u);
  EXPECT_TRUE(h.local);
  // A UNIX-socket client has no address for us: the peer's counts.
  n = ParseProxyHeader(V2(0x21, 0x31, std::string(216, 'x')), &h);
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(h.local);
}

TEST(ProxyHeaderTest, V2Malformed) {
  ProxyHeader h;
  EXPECT_FALSE(ParseProxyHeader(V2(0x11, 0x11, std::string(12, 0)), &h).ok());
  EXPECT_FALSE(ParseProxyHeader(V2(0x22, 0x11, std::string(12, 0)), &h).ok());
  EXPECT_FALSE(ParseProxyHeader(V2(0x21, 0x11, std::string(8, 0)), &h).ok());
  EXPECT_FALSE(ParseProxyHeader(V2(0x21, 0x21, std::string(12, 0)), &h).ok());
  // Longer than we accept: refused as soon as the length is known.
  std::string big = V2(0x21, 0x11, std::string(600, 0)).substr(0, 16);
  EXPECT_FALSE(ParseProxyHeader(big, &h).ok());
}

TEST(ProxyTrustTest, Networks) {
  ProxyTrust t;
  EXPECT_TRUE(t.empty());
  ASSERT_TRUE(t.Add("10.0.0.0/8").ok());
  ASSERT_TRUE(t.Add("192.0.2.7").ok());
  ASSERT_TRUE(t.Add("fd00::/8").ok());
  ASSERT_TRUE(t.Add("172.16.0.0/12").ok());
  EXPECT_TRUE(t.Contains("10.1.2.3"));
  EXPECT_TRUE(t.Contains("::ffff:10.1.2.3"));
  EXPECT_TRUE(t.Contains("192.0.2.7"));
  EXPECT_FALSE(t.Contains("192.0.2.8"));
  EXPECT_TRUE(t.Contains("172.31.255.1"));
  EXPECT_FALSE(t.Contains("172.32.0.1"));
  EXPECT_TRUE(t.Contains("fd12::1"));
  EXPECT_FALSE(t.Contains("fe80::1"));
  EXPECT_FALSE(t.Contains("not-an-ip"));
  for (const char* bad : {"10.0.0.0/33", "fd00::/129", "10.0.0.0/x",
                          "example.net", ""}) {
    EXPECT_FALSE(t.Add(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace zm::smtpserver
