// The ident lookup of a session (smtpserver_ident.h): a connection from
// the address the client reached to its ident port, one query, one reply
// line, all on the session's strand and bounded by ident-timeout.
#include "node/common/strings.h"
#include "node/smtpserver/smtpserver_ident.h"
#include "node/smtpserver/smtpserver_internal.h"

namespace zm::smtpserver::internal {
namespace {

auto Token(std::error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

void Finish(IdentLookup& l, std::string user, std::string outcome) {
  if (l.done) return;
  l.done = true;
  l.user = std::move(user);
  l.outcome = std::move(outcome);
  std::error_code ec;
  l.socket.close(ec);
  l.deadline.cancel();
  l.notify.cancel();
}

asio::awaitable<void> RunIdent(std::shared_ptr<IdentLookup> l, IdentTarget t) {
  std::error_code ec;
  asio::ip::address local = asio::ip::make_address(t.local_addr, ec);
  asio::ip::address client;
  if (!ec) client = asio::ip::make_address(t.client_addr, ec);
  if (ec || local.is_v4() != client.is_v4()) {
    Finish(*l, "", "no local address to ask from");
    co_return;
  }
  tcp::endpoint from(local, 0);
  tcp::endpoint to(client, static_cast<uint16_t>(t.ident_port));
  l->socket.open(to.protocol(), ec);
  if (!ec) l->socket.bind(from, ec);
  if (ec) {
    Finish(*l, "", StrCat("cannot bind to ", t.local_addr, ": ", ec.message()));
    co_return;
  }
  co_await l->socket.async_connect(to, Token(ec));
  if (l->done) co_return;  // the deadline closed the socket
  if (ec) {
    Finish(*l, "", StrCat("no ident service: ", ec.message()));
    co_return;
  }
  std::string query = IdentQuery(t.client_port, t.server_port);
  co_await asio::async_write(l->socket, asio::buffer(query), Token(ec));
  if (l->done) co_return;
  size_t have = 0;
  size_t eol = std::string_view::npos;
  while (!ec && eol == std::string_view::npos && have < l->buf.size()) {
    size_t n = co_await l->socket.async_read_some(
        asio::buffer(l->buf.data() + have, l->buf.size() - have), Token(ec));
    if (l->done) co_return;
    have += n;
    eol = std::string_view(l->buf.data(), have).find('\n');
  }
  if (eol == std::string_view::npos) {
    Finish(*l, "",
           have >= l->buf.size()
               ? std::string("garbled reply: no line end within the limit")
               : StrCat("no reply: ", ec ? ec.message() : "connection closed"));
    co_return;
  }
  std::string_view line(l->buf.data(), eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  IdentReply r = ParseIdentReply(line, t.client_port, t.server_port);
  switch (r.kind) {
    case IdentReply::Kind::kUserId:
      Finish(*l, r.user, StrCat("USERID ", r.opsys));
      break;
    case IdentReply::Kind::kError:
      Finish(*l, "", StrCat("ERROR ", r.error));
      break;
    case IdentReply::Kind::kInvalid:
      Finish(*l, "", StrCat("garbled reply: ", r.error));
      break;
  }
}

}  // namespace

IdentLookup::IdentLookup(const asio::any_io_executor& ex)
    : socket(ex), deadline(ex), notify(ex) {}

std::shared_ptr<IdentLookup> StartIdent(const asio::any_io_executor& ex,
                                        const IdentTarget& target) {
  auto l = std::make_shared<IdentLookup>(ex);
  l->deadline.expires_after(std::chrono::seconds(target.timeout_sec));
  l->deadline.async_wait([l, secs = target.timeout_sec](std::error_code ec) {
    if (ec || l->done) return;
    Finish(*l, "", StrCat("no answer within ", secs, "s"));
  });
  asio::co_spawn(ex, RunIdent(l, target), asio::detached);
  return l;
}

asio::awaitable<void> WaitIdent(IdentLookup& l) {
  if (l.done) co_return;
  l.notify.expires_at(Clock::time_point::max());
  std::error_code ec;
  co_await l.notify.async_wait(Token(ec));
}

}  // namespace zm::smtpserver::internal
