#include "node/milter/protocol.h"

#include "node/common/strings.h"

namespace zm::milter {
namespace {

void PutU32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>((v >> 24) & 0xff));
  out->push_back(static_cast<char>((v >> 16) & 0xff));
  out->push_back(static_cast<char>((v >> 8) & 0xff));
  out->push_back(static_cast<char>(v & 0xff));
}

uint32_t GetU32(std::string_view s) {
  auto b = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(s[i]));
  };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

void PutString(std::string* out, std::string_view s) {
  out->append(s);
  out->push_back('\0');
}

// Splits `data` into NUL-terminated strings; false if the last one lacks
// its terminator.
bool SplitNul(std::string_view data, std::vector<std::string>* out) {
  while (!data.empty()) {
    size_t nul = data.find('\0');
    if (nul == std::string_view::npos) return false;
    out->emplace_back(data.substr(0, nul));
    data.remove_prefix(nul + 1);
  }
  return true;
}

absl::Status Bad(std::string_view what) {
  return absl::InvalidArgumentError(StrCat("malformed milter reply: ", what));
}

}  // namespace

std::string EncodePacket(char command, std::string_view data) {
  std::string out;
  out.reserve(5 + data.size());
  PutU32(&out, static_cast<uint32_t>(data.size() + 1));
  out.push_back(command);
  out.append(data);
  return out;
}

PacketReader::Result PacketReader::Next(Packet* out) {
  if (buffer_.size() - pos_ < 4) return kNeedMore;
  uint32_t len = GetU32(std::string_view(buffer_).substr(pos_, 4));
  if (len == 0 || len > max_packet_) return kError;
  if (buffer_.size() - pos_ < 4 + size_t{len}) return kNeedMore;
  out->command = buffer_[pos_ + 4];
  out->data.assign(buffer_, pos_ + 5, len - 1);
  pos_ += 4 + size_t{len};
  if (pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  } else if (pos_ > 64 * 1024) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  return kPacket;
}

std::string EncodeOptNeg(uint32_t version, uint32_t actions, uint32_t steps) {
  std::string d;
  PutU32(&d, version);
  PutU32(&d, actions);
  PutU32(&d, steps);
  return EncodePacket(cmd::kOptNeg, d);
}

std::string EncodeConnect(std::string_view hostname, char family, uint16_t port,
                          std::string_view address) {
  std::string d;
  PutString(&d, hostname);
  d.push_back(family);
  if (family != 'U') {
    d.push_back(static_cast<char>((port >> 8) & 0xff));
    d.push_back(static_cast<char>(port & 0xff));
    PutString(&d, address);
  }
  return EncodePacket(cmd::kConnect, d);
}

std::string EncodeHelo(std::string_view name) {
  std::string d;
  PutString(&d, name);
  return EncodePacket(cmd::kHelo, d);
}

namespace {
std::string EncodePath(char command, std::string_view path,
                       const std::vector<std::string>& params) {
  std::string d;
  PutString(&d, path);
  for (const std::string& p : params) PutString(&d, p);
  return EncodePacket(command, d);
}
}  // namespace

std::string EncodeMail(std::string_view path,
                       const std::vector<std::string>& params) {
  return EncodePath(cmd::kMail, path, params);
}

std::string EncodeRcpt(std::string_view path,
                       const std::vector<std::string>& params) {
  return EncodePath(cmd::kRcpt, path, params);
}

std::string EncodeHeader(std::string_view name, std::string_view value) {
  std::string d;
  PutString(&d, name);
  PutString(&d, value);
  return EncodePacket(cmd::kHeader, d);
}

std::string EncodeMacros(
    char for_command,
    const std::vector<std::pair<std::string, std::string>>& macros) {
  std::string d(1, for_command);
  for (const auto& [name, value] : macros) {
    PutString(&d, name);
    PutString(&d, value);
  }
  return EncodePacket(cmd::kMacro, d);
}

std::string EncodeSimple(char command, std::string_view data) {
  return EncodePacket(command, data);
}

absl::StatusOr<Response> ParseReplyCode(std::string_view text) {
  Response r;
  r.kind = Response::Kind::kReplyCode;
  // Lines are separated by CRLF (or LF); each starts "ddd-" or "ddd ".
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  if (text.empty()) return Bad("empty reply code");
  size_t n_lines = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text =
        nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (++n_lines > 100) return Bad("reply code has too many lines");
    int code = 0;
    if (line.size() < 3 || !ParseNumber(line.substr(0, 3), &code)) {
      return Bad("reply code does not start with three digits");
    }
    if (code < 400 || code > 599) {
      return Bad(StrCat("reply code ", code, " is not 4xx or 5xx"));
    }
    if (r.code != 0 && code != r.code) return Bad("mixed reply codes");
    r.code = code;
    std::string_view rest = line.substr(3);
    if (!rest.empty() && rest[0] != ' ' && rest[0] != '-') {
      return Bad("reply code not followed by a space");
    }
    if (!rest.empty()) rest.remove_prefix(1);
    // An enhanced status code "c.s.d" whose class matches the code.
    std::string_view word = rest.substr(0, rest.find(' '));
    auto parts = Split(word, '.');
    bool enhanced = parts.size() == 3 && word.size() <= 11;
    for (auto p : parts) {
      int x = 0;
      enhanced = enhanced && ParseNumber(p, &x) && p.size() <= 3;
    }
    if (enhanced) {
      if (word[0] != static_cast<char>('0' + code / 100)) {
        return Bad("enhanced status code class differs from the reply code");
      }
      if (r.enhanced.empty()) r.enhanced = std::string(word);
      rest.remove_prefix(word.size());
      if (!rest.empty()) rest.remove_prefix(1);
    }
    for (char c : rest) {
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
        return Bad("control character in the reply text");
      }
    }
    r.text.emplace_back(rest);
  }
  return r;
}

absl::StatusOr<Response> DecodeResponse(const Packet& p) {
  Response r;
  std::string_view d = p.data;
  auto no_data = [&](Response::Kind k) -> absl::StatusOr<Response> {
    // libmilter sends none; tolerate nothing else.
    if (!d.empty())
      return Bad(StrCat("data after '", std::string(1, p.command), "'"));
    r.kind = k;
    return r;
  };
  std::vector<std::string> s;
  auto strings = [&](size_t min, size_t max) -> absl::Status {
    if (!SplitNul(d, &s)) return Bad("string without its NUL");
    if (s.size() < min || s.size() > max) {
      return Bad(StrCat("'", std::string(1, p.command), "' with ", s.size(),
                        " strings"));
    }
    return absl::OkStatus();
  };
  Modification& m = r.mod;
  switch (p.command) {
    case 'c':
      return no_data(Response::Kind::kContinue);
    case 'a':
      return no_data(Response::Kind::kAccept);
    case 'r':
      return no_data(Response::Kind::kReject);
    case 't':
      return no_data(Response::Kind::kTempFail);
    case 'd':
      return no_data(Response::Kind::kDiscard);
    case 's':
      return no_data(Response::Kind::kSkip);
    case 'p':
      return no_data(Response::Kind::kProgress);
    case 'f':
      return no_data(Response::Kind::kConnFail);
    case 'y': {
      if (auto st = strings(1, 1); !st.ok()) return st;
      return ParseReplyCode(s[0]);
    }
    case 'O': {
      if (d.size() < 12) return Bad("short option negotiation");
      r.kind = Response::Kind::kOptNeg;
      r.version = GetU32(d.substr(0, 4));
      r.actions = GetU32(d.substr(4, 4));
      r.steps = GetU32(d.substr(8, 4));
      return r;  // a symbol list may follow; we did not offer it
    }
    case 'h':
    case 'i':
    case 'm': {
      if (p.command != 'h') {
        if (d.size() < 4) return Bad("header change without an index");
        m.index = GetU32(d.substr(0, 4));
        d.remove_prefix(4);
      }
      if (auto st = strings(2, 2); !st.ok()) return st;
      if (s[0].empty()) return Bad("empty header name");
      for (char c : s[0]) {
        if (c == ':' || static_cast<unsigned char>(c) <= 0x20 ||
            static_cast<unsigned char>(c) >= 0x7f) {
          return Bad("bad character in a header name");
        }
      }
      m.type = p.command == 'h'   ? Modification::Type::kAddHeader
               : p.command == 'i' ? Modification::Type::kInsertHeader
                                  : Modification::Type::kChangeHeader;
      m.name = std::move(s[0]);
      m.value = std::move(s[1]);
      r.kind = Response::Kind::kModification;
      return r;
    }
    case '+':
    case '-':
    case '2':
    case 'e': {
      bool with_args = p.command == '2' || p.command == 'e';
      if (auto st = strings(1, with_args ? 2 : 1); !st.ok()) return st;
      if (s[0].empty()) return Bad("empty address");
      m.type = p.command == '+'   ? Modification::Type::kAddRcpt
               : p.command == '-' ? Modification::Type::kDelRcpt
               : p.command == '2' ? Modification::Type::kAddRcptPar
                                  : Modification::Type::kChangeFrom;
      m.name = std::move(s[0]);
      if (s.size() > 1) m.args = std::move(s[1]);
      r.kind = Response::Kind::kModification;
      return r;
    }
    case 'b':
      m.type = Modification::Type::kReplaceBody;
      m.value = std::string(d);
      r.kind = Response::Kind::kModification;
      return r;
    case 'q': {
      if (auto st = strings(1, 1); !st.ok()) return st;
      m.type = Modification::Type::kQuarantine;
      m.value = std::move(s[0]);
      r.kind = Response::Kind::kModification;
      return r;
    }
    default:
      return Bad(
          StrCat("unknown reply 0x",
                 fmt::format("{:02x}", static_cast<unsigned char>(p.command))));
  }
}

}  // namespace zm::milter
