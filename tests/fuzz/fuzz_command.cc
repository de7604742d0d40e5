// libFuzzer: the SMTP command grammar and the AUTH decoders on arbitrary
// bytes. The first byte picks the parser options; nothing may crash,
// hang, or return an inconsistent result.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "node/smtp/command.h"
#include "node/smtp/sasl.h"

namespace {

void Expect(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zm::smtp;
  if (size == 0) return 0;
  const uint8_t opts = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  Command c = ParseCommand(in);
  // The verb and argument are views into the line.
  if (!c.name.empty()) {
    Expect(c.name.data() >= in.data() &&
           c.name.data() + c.name.size() <= in.data() + in.size());
  }

  PathOptions o;
  o.ext.esmtp = opts & 1;
  o.ext.size = opts & 2;
  o.ext.dsn = opts & 4;
  o.ext.smtputf8 = opts & 8;
  o.ext.auth = opts & 16;
  o.ext.deliverby = opts & 16;
  o.require_domain = opts & 32;
  o.sloppy = opts & 64;
  for (bool mail : {true, false}) {
    PathResult r = mail ? ParseMailFrom(in, o) : ParseRcptTo(in, o);
    if (r.ok()) {
      Expect(r.address.size() <= in.size());
      // A parsed address parses again, in brackets, as itself.
      std::string again = (mail ? "FROM:<" : "TO:<") + r.address + ">";
      PathOptions plain = o;
      plain.ext.smtputf8 = true;
      plain.require_domain = false;
      std::string_view a = again;
      PathResult r2 = mail ? ParseMailFrom(a, plain) : ParseRcptTo(a, plain);
      if (mail || !r.address.empty()) {
        Expect(r2.ok() || r2.error == ReplyId::kNeedSmtpUtf8);
        if (r2.ok()) Expect(r2.address == r.address);
      }
      (void)AddressDomain(r.address);
    } else {
      Expect(r.error.has_value());
    }
  }
  (void)ValidDomainName(in);

  std::string raw;
  if (Base64Decode(in, &raw)) {
    std::string back;
    Expect(Base64Decode(Base64Encode(raw), &back) && back == raw);
    PlainCredentials pc;
    if (ParsePlain(raw, &pc)) Expect(!pc.user.empty());
  }
  return 0;
}
