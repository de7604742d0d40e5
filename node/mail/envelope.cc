#include "node/mail/envelope.h"

#include <cstdio>
#include <limits>

#include "absl/status/status.h"
#include "node/common/strings.h"
#include "node/mail/xtext.h"

namespace zm::mail {
namespace {

constexpr std::string_view kMagic = "zmnode-message 1";

void Field(std::string* out, std::string_view key, std::string_view value,
           bool keep_empty = false) {
  if (value.empty() && !keep_empty) return;
  StrAppend(out, key);
  if (!value.empty()) StrAppend(out, " ", XtextEncode(value));
  *out += '\n';
}

}  // namespace

std::string FormatSizeField(uint64_t size) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llu", static_cast<int>(kSizeDigits),
                static_cast<unsigned long long>(size));
  return buf;
}

std::string SerializeEnvelope(const Envelope& env, size_t* size_offset) {
  std::string out;
  StrAppend(&out, kMagic, "\n");
  Field(&out, "id", env.queue_id);
  char arrival[48];
  std::snprintf(arrival, sizeof arrival, "%lld.%06lld",
                static_cast<long long>(env.arrival_usec / 1000000),
                static_cast<long long>(env.arrival_usec % 1000000));
  Field(&out, "arrival", arrival);
  Field(&out, "from", env.sender, /*keep_empty=*/true);
  for (const auto& r : env.recipients) {
    StrAppend(&out, "to ", XtextEncode(r.address));
    if (!r.notify.empty()) StrAppend(&out, " notify=", r.notify);
    if (!r.orcpt.empty()) {
      StrAppend(&out, " orcpt=", XtextEncode(r.orcpt));
    }
    out += '\n';
  }
  Field(&out, "envid", env.envid);
  Field(&out, "ret", env.ret);
  Field(&out, "deliverby", env.deliverby);
  Field(&out, "bodytype", env.bodytype);
  if (env.smtputf8) out += "smtputf8\n";
  Field(&out, "protocol", env.protocol);
  Field(&out, "rcvdfrom", env.client_addr);
  Field(&out, "rcvdport", env.client_port);
  Field(&out, "rcvdname", env.client_name);
  Field(&out, "helo", env.helo);
  Field(&out, "authuser", env.auth_user);
  Field(&out, "identinfo", env.ident);
  Field(&out, "tls", env.tls);
  Field(&out, "user", env.local_user);
  out += "size ";
  if (size_offset != nullptr) *size_offset = out.size();
  StrAppend(&out, FormatSizeField(env.size), "\nenv-end\n");
  return out;
}

absl::StatusOr<MessageFile> ParseMessageFile(std::string_view file) {
  MessageFile mf;
  Envelope& env = mf.envelope;
  size_t pos = 0;
  int lineno = 0;
  bool have_size = false;
  bool ended = false;
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(
        StrCat("envelope line ", lineno, ": ", what));
  };
  while (pos < file.size()) {
    size_t nl = file.find('\n', pos);
    if (nl == std::string_view::npos) break;  // no complete line: truncated
    std::string_view line = file.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    if (lineno == 1) {
      if (line != kMagic) return bad("not a zmnode message file");
      continue;
    }
    if (line == "env-end") {
      ended = true;
      break;
    }
    std::vector<std::string_view> tok = Split(line, ' ', true);
    if (tok.empty()) return bad("empty line");
    std::string_view key = tok[0];
    std::string value;
    if (tok.size() >= 2) {
      auto v = XtextDecode(tok[1]);
      if (!v.ok()) return bad(Message(v.status()));
      value = *std::move(v);
    }
    if (key == "to") {
      if (value.empty()) return bad("recipient without an address");
      EnvelopeRecipient r;
      r.address = value;
      for (size_t i = 2; i < tok.size(); ++i) {
        std::string_view t = tok[i];
        if (ConsumePrefix(&t, "notify=")) {
          r.notify = std::string(t);
        } else if (ConsumePrefix(&t, "orcpt=")) {
          auto v = XtextDecode(t);
          if (!v.ok()) return bad(Message(v.status()));
          r.orcpt = *std::move(v);
        } else {
          return bad(StrCat("unknown recipient parameter '", t, "'"));
        }
      }
      env.recipients.push_back(std::move(r));
      continue;
    }
    if (tok.size() > 2) return bad(StrCat("extra tokens after ", key));
    if (key == "id") {
      env.queue_id = value;
    } else if (key == "arrival") {
      auto parts = Split(value, '.');
      int64_t secs = 0, usec = 0;
      if (parts.size() != 2 || !ParseNumber(parts[0], &secs) ||
          !ParseNumber(parts[1], &usec) || secs < 0 ||
          secs >= std::numeric_limits<int64_t>::max() / 1000000 || usec < 0 ||
          usec > 999999) {
        return bad("bad arrival time");
      }
      env.arrival_usec = secs * 1000000 + usec;
    } else if (key == "from") {
      env.sender = value;
    } else if (key == "envid") {
      env.envid = value;
    } else if (key == "ret") {
      env.ret = value;
    } else if (key == "deliverby") {
      env.deliverby = value;
    } else if (key == "bodytype") {
      env.bodytype = value;
    } else if (key == "smtputf8") {
      env.smtputf8 = true;
    } else if (key == "protocol") {
      env.protocol = value;
    } else if (key == "rcvdfrom") {
      env.client_addr = value;
    } else if (key == "rcvdport") {
      env.client_port = value;
    } else if (key == "rcvdname") {
      env.client_name = value;
    } else if (key == "helo") {
      env.helo = value;
    } else if (key == "authuser") {
      env.auth_user = value;
    } else if (key == "identinfo") {
      env.ident = value;
    } else if (key == "tls") {
      env.tls = value;
    } else if (key == "user") {
      env.local_user = value;
    } else if (key == "size") {
      if (!ParseNumber(value, &env.size)) return bad("bad size");
      have_size = true;
    } else {
      return bad(StrCat("unknown keyword '", key, "'"));
    }
  }
  if (!ended || !have_size) {
    return absl::DataLossError("message file truncated inside the envelope");
  }
  mf.body_offset = pos;
  if (file.size() - pos != env.size) {
    return absl::DataLossError(StrCat("message file has ", file.size() - pos,
                                      " message bytes, envelope says ",
                                      env.size));
  }
  if (env.queue_id.empty()) return bad("no id");
  return mf;
}

}  // namespace zm::mail
