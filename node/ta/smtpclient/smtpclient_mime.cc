// Message helpers: wire forms for DATA and BDAT, 8-bit detection and the
// 8bit -> quoted-printable conversion for peers without 8BITMIME.
#include <string>

#include "node/common/strings.h"
#include "node/ta/smtpclient/smtpclient.h"

namespace zm::smtpclient {
namespace {

// Splits an entity into header and body at the first empty line; the
// header keeps its final '\n', the body starts after the empty line.
void SplitEntity(std::string_view e, std::string_view* header,
                 std::string_view* body, bool* has_blank) {
  size_t pos = 0;
  while (pos < e.size()) {
    size_t nl = e.find('\n', pos);
    std::string_view line =
        e.substr(pos, nl == std::string_view::npos ? e.size() - pos : nl - pos);
    if (line.empty() || line == "\r") {
      *header = e.substr(0, pos);
      *body = nl == std::string_view::npos ? "" : e.substr(nl + 1);
      *has_blank = true;
      return;
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  *header = e;
  *body = "";
  *has_blank = false;
}

// Header fields, each with its continuation lines (each ending in '\n').
std::vector<std::string_view> Fields(std::string_view header) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = pos;
    do {
      size_t nl = header.find('\n', end);
      end = nl == std::string_view::npos ? header.size() : nl + 1;
    } while (end < header.size() &&
             (header[end] == ' ' || header[end] == '\t'));
    out.push_back(header.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

bool FieldIs(std::string_view field, std::string_view name) {
  return field.size() > name.size() && field[name.size()] == ':' &&
         StartsWithIgnoreCase(field, name);
}

std::string FieldValue(std::string_view field) {
  size_t colon = field.find(':');
  std::string v;
  for (char c : field.substr(colon + 1)) {
    if (c == '\r' || c == '\n') c = ' ';
    v += c;
  }
  return std::string(Trim(v));
}

// The boundary parameter of a Content-Type value, "" if none.
std::string Boundary(std::string_view ct) {
  std::string lower = ToLower(ct);
  size_t p = lower.find("boundary=");
  if (p == std::string::npos) return "";
  std::string_view v = ct.substr(p + 9);
  if (!v.empty() && v[0] == '"') {
    size_t q = v.find('"', 1);
    if (q == std::string_view::npos) return "";
    return std::string(v.substr(1, q - 1));
  }
  size_t end = v.find_first_of("; \t\r\n");
  return std::string(v.substr(0, end));
}

std::string ConvertEntity(std::string_view entity, bool top);

std::string ConvertMultipart(std::string_view body, const std::string& b) {
  // Parts are the text between "--b" lines; preamble and epilogue stay.
  std::string out;
  std::string delim = "--" + b;
  size_t pos = 0;
  size_t part_start = std::string_view::npos;
  while (pos <= body.size()) {
    size_t nl = body.find('\n', pos);
    size_t line_end = nl == std::string_view::npos ? body.size() : nl;
    std::string_view line = body.substr(pos, line_end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool is_delim = line.substr(0, delim.size()) == delim &&
                    Trim(line.substr(delim.size())).empty();
    bool is_close = line.substr(0, delim.size()) == delim &&
                    line.substr(delim.size(), 2) == "--";
    if (is_delim || is_close) {
      if (part_start != std::string_view::npos) {
        // The line break before the delimiter belongs to the delimiter.
        std::string_view part = body.substr(part_start, pos - part_start);
        bool nl_before = !part.empty() && part.back() == '\n';
        if (nl_before) part.remove_suffix(1);
        out += ConvertEntity(part, false);
        if (nl_before) out += '\n';
      } else {
        out.append(body.substr(0, pos));
      }
      if (is_close) {
        out.append(body.substr(pos));
        return out;
      }
      out.append(body.substr(
          pos, (nl == std::string_view::npos ? body.size() : nl + 1) - pos));
      part_start = nl == std::string_view::npos ? body.size() : nl + 1;
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  // No closing delimiter: convert what there is.
  if (part_start == std::string_view::npos) return std::string(body);
  out += ConvertEntity(body.substr(part_start), false);
  return out;
}

std::string ConvertEntity(std::string_view entity, bool top) {
  if (!Has8Bit(entity)) return std::string(entity);
  std::string_view header, body;
  bool blank = false;
  SplitEntity(entity, &header, &body, &blank);
  std::string ct;
  bool has_mime_version = false;
  for (std::string_view f : Fields(header)) {
    if (FieldIs(f, "Content-Type")) ct = FieldValue(f);
    if (FieldIs(f, "MIME-Version")) has_mime_version = true;
  }
  std::string lct = ToLower(ct);
  std::string out;
  if (StartsWithIgnoreCase(lct, "multipart/")) {
    std::string b = Boundary(ct);
    if (!b.empty()) {
      out.append(header);
      if (blank) out += '\n';
      out += ConvertMultipart(body, b);
      return out;
    }
  }
  if (!Has8Bit(body)) return std::string(entity);
  for (std::string_view f : Fields(header)) {
    if (FieldIs(f, "Content-Transfer-Encoding")) continue;
    out.append(f);
  }
  if (top && !has_mime_version) out += "MIME-Version: 1.0\n";
  if (ct.empty() && top) {
    out += "Content-Type: text/plain; charset=UTF-8\n";
  }
  out += "Content-Transfer-Encoding: quoted-printable\n\n";
  out += QuotedPrintable(body);
  return out;
}

std::string CrlfWire(std::string_view message, bool stuff) {
  std::string out;
  out.reserve(message.size() + message.size() / 30 + 8);
  bool bol = true;
  for (char c : message) {
    if (bol && stuff && c == '.') out += '.';
    if (c == '\n') {
      if (out.empty() || out.back() != '\r') out += '\r';
      out += '\n';
      bol = true;
      continue;
    }
    out += c;
    bol = false;
  }
  if (!bol) out += "\r\n";
  return out;
}

}  // namespace

bool Has8Bit(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

bool HeaderHas8Bit(std::string_view message) {
  std::string_view header, body;
  bool blank = false;
  SplitEntity(message, &header, &body, &blank);
  return Has8Bit(header);
}

std::string DataWire(std::string_view message) {
  std::string out = CrlfWire(message, true);
  out += ".\r\n";
  return out;
}

std::string BdatWire(std::string_view message) {
  return CrlfWire(message, false);
}

std::string ConvertTo7Bit(std::string_view message) {
  return ConvertEntity(message, true);
}

std::string QuotedPrintable(std::string_view body) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(body.size() * 11 / 10 + 16);
  size_t col = 0;
  auto put = [&](std::string_view piece) {
    if (col + piece.size() > 75) {
      out += "=\n";
      col = 0;
    }
    out.append(piece);
    col += piece.size();
  };
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    size_t end = nl == std::string_view::npos ? body.size() : nl;
    std::string_view line = body.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    for (size_t i = 0; i < line.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(line[i]);
      bool last = i + 1 == line.size();
      bool plain = (c >= 33 && c <= 126 && c != '=') ||
                   ((c == ' ' || c == '\t') && !last);
      // A leading dot or "From " is left alone: dot-stuffing handles dots.
      if (plain) {
        char ch = static_cast<char>(c);
        put(std::string_view(&ch, 1));
      } else {
        char enc[3] = {'=', kHex[c >> 4], kHex[c & 15]};
        put(std::string_view(enc, 3));
      }
    }
    if (nl == std::string_view::npos) break;
    out += '\n';
    col = 0;
    pos = nl + 1;
  }
  return out;
}

}  // namespace zm::smtpclient
