// Reading a PROXY protocol header on a client connection (the parser is
// smtpserver_proxy.cc; the server calls this from its accept path).
#include <algorithm>

#include "node/common/strings.h"
#include "node/smtpserver/smtpserver_internal.h"
#include "node/smtpserver/smtpserver_proxy.h"

namespace zm::smtpserver::internal {

bool ExpectsProxyHeader(const ServerConfig& cfg, smtp::Listener listener,
                        const std::string& ip) {
  if (cfg.proxy_listeners.empty()) return false;
  std::string name = ListenerName(listener);
  return std::find(cfg.proxy_listeners.begin(), cfg.proxy_listeners.end(),
                   name) != cfg.proxy_listeners.end() &&
         cfg.proxy_trusted.Contains(ip);
}

asio::awaitable<std::string> ReadProxyHeader(Conn& c) {
  std::string buf;
  ProxyHeader h;
  for (;;) {
    size_t want = ProxyBytesWanted(buf);
    if (buf.size() + want > kMaxProxyHeader) {
      co_return StrCat("longer than ", kMaxProxyHeader, " bytes");
    }
    size_t old = buf.size();
    buf.resize(old + want);
    std::error_code ec;
    auto space = asio::buffer(buf.data() + old, want);
    co_await asio::async_read(c.socket, space,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      co_return old == 0 ? std::string("the connection ended before it")
                         : StrCat("the connection ended inside it (",
                                  ec.message(), ")");
    }
    auto n = ParseProxyHeader(buf, &h);
    if (!n.ok()) co_return Message(n.status());
    if (*n > 0) break;
  }
  if (h.local) co_return "";  // the proxy's own check: its address counts
  asio::error_code ec;
  asio::ip::address a = asio::ip::make_address(h.src_addr, ec);
  if (ec) co_return StrCat("bad source address ", h.src_addr);
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  }
  c.ip = a.to_string();
  c.label = StrCat("unknown[", c.ip, "]");
  c.proxy_port = StrCat(h.src_port);
  c.proxy_local_addr = h.dst_addr;
  co_return "";
}

}  // namespace zm::smtpserver::internal
