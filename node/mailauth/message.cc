#include "node/mailauth/message.h"

#include "node/common/strings.h"
#include "node/mailauth/mailauth.h"

namespace zm::mailauth {
namespace internal {

ParsedMessage ParseMessage(std::string_view message) {
  ParsedMessage m;
  size_t pos = 0;
  while (pos < message.size()) {
    size_t eol = message.find('\n', pos);
    std::string_view line = message.substr(
        pos, eol == std::string_view::npos ? std::string_view::npos
                                           : eol - pos);
    if (line.empty() || line == "\r") {
      pos = eol == std::string_view::npos ? message.size() : eol + 1;
      m.body = message.substr(pos);
      return m;
    }
    bool continuation = line.front() == ' ' || line.front() == '\t';
    if (continuation && !m.headers.empty()) {
      HeaderField& f = m.headers.back();
      size_t start = static_cast<size_t>(f.raw.data() - message.data());
      f.raw = message.substr(start, pos + line.size() - start);
    } else {
      size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        m.body = message.substr(pos);
        return m;
      }
      m.headers.push_back({Trim(line.substr(0, colon)), line});
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return m;
}

std::string ToCrlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    out += text[i];
  }
  return out;
}

std::string FieldValue(const HeaderField& f) {
  std::string_view v = f.raw.substr(f.raw.find(':') + 1);
  std::string out;
  for (char c : v) {
    if (c == '\r' || c == '\n') continue;
    out += c == '\t' ? ' ' : c;
  }
  return std::string(Trim(out));
}

}  // namespace internal

namespace {

// Drops (comments) and "quoted strings" so the '@' and '<' left are the
// address's own.
std::string StripCommentsAndQuotes(std::string_view v) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '\\' && i + 1 < v.size()) {
      if (depth == 0 && !quoted) out += v.substr(i, 2);
      ++i;
      continue;
    }
    if (quoted) {
      if (c == '"') quoted = false;
      continue;
    }
    if (c == '(') {
      ++depth;
    } else if (c == ')' && depth > 0) {
      --depth;
    } else if (depth == 0) {
      if (c == '"') {
        quoted = true;
        out += "\"\"";  // keeps a display name a word
      } else {
        out += c;
      }
    }
  }
  return out;
}

}  // namespace

std::string FromDomain(std::string_view message) {
  internal::ParsedMessage m = internal::ParseMessage(message);
  const internal::HeaderField* from = nullptr;
  for (const internal::HeaderField& f : m.headers) {
    if (!EqualsIgnoreCase(f.name, "From")) continue;
    if (from) return "";  // RFC 7489 6.6.1: more than one From: field
    from = &f;
  }
  if (!from) return "";
  std::string v = StripCommentsAndQuotes(internal::FieldValue(*from));
  std::string_view addr = v;
  auto lt = addr.find('<');
  if (lt != std::string_view::npos) {
    auto gt = addr.find('>', lt);
    if (gt == std::string_view::npos) return "";
    if (addr.find('<', gt) != std::string_view::npos) return "";
    addr = addr.substr(lt + 1, gt - lt - 1);
  } else if (addr.find(',') != std::string_view::npos) {
    return "";  // a list of authors
  }
  addr = Trim(addr);
  auto at = addr.rfind('@');
  if (at == std::string_view::npos) return "";
  std::string_view domain = StripTrailingDots(Trim(addr.substr(at + 1)));
  if (domain.empty() ||
      domain.find_first_of(" \t,;:<>[]") != std::string_view::npos) {
    return "";
  }
  return ToLower(domain);
}

}  // namespace zm::mailauth
