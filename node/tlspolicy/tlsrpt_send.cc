// Sending TLS reports: the `_smtp._tls` record, and the report as a mail
// (RFC 8460 section 5.3), gzipped with zlib and base64-encoded.
#include <zlib.h>

#include <time.h>

#include <initializer_list>
#include <random>

#include "node/common/strings.h"
#include "node/mail/rfc5322.h"
#include "node/smtp/sasl.h"
#include "node/tlspolicy/tlsrpt.h"

namespace zm::tlspolicy {
namespace {

absl::StatusOr<std::string> Gzip(std::string_view in) {
  z_stream z{};
  // 15 + 16: a gzip wrapper, not zlib's.
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("deflateInit2 failed");
  }
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  size_t n = out.size() - z.avail_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return absl::InternalError("deflate failed");
  out.resize(n);
  return out;
}

// Base64 in lines of 76 characters (RFC 2045), LF-terminated.
std::string Base64Lines(std::string_view in) {
  const std::string b64 = smtp::Base64Encode(in);
  std::string out;
  out.reserve(b64.size() + b64.size() / 76 + 1);
  for (size_t i = 0; i < b64.size(); i += 76) {
    StrAppend(&out, std::string_view(b64).substr(i, 76), "\n");
  }
  return out;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "2026-11-21T00:00:00Z" -> Unix seconds; -1 if malformed.
int64_t UnixTime(const std::string& t) {
  std::tm tm{};
  if (::strptime(t.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr) return -1;
  return static_cast<int64_t>(::timegm(&tm));
}

// Header-safe: printable ASCII without CR/LF.
bool HeaderSafe(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseTlsrptRecords(
    const std::vector<std::string>& txt) {
  std::string found;
  int count = 0;
  for (const std::string& t : txt) {
    std::string_view v = Trim(t);
    if (!StartsWithIgnoreCase(v, "v=TLSRPTv1")) continue;
    std::string_view rest = Trim(v.substr(10));
    if (!rest.empty() && rest.front() != ';') continue;
    found = std::string(v);
    ++count;
  }
  if (count != 1) {
    return absl::NotFoundError(count == 0 ? "no v=TLSRPTv1 record"
                                          : "more than one v=TLSRPTv1 record");
  }
  for (std::string_view field : Split(found, ';')) {
    field = Trim(field);
    if (!StartsWithIgnoreCase(field, "rua=")) continue;
    std::vector<std::string> uris;
    for (std::string_view u : Split(field.substr(4), ',', true)) {
      u = Trim(u);
      if (!u.empty()) uris.emplace_back(u);
    }
    if (uris.empty()) break;
    return uris;
  }
  return absl::InvalidArgumentError("TLSRPTv1 record without rua=");
}

std::optional<std::string> MailtoAddress(std::string_view uri) {
  if (!ConsumePrefix(&uri, "mailto:") && !ConsumePrefix(&uri, "MAILTO:")) {
    return std::nullopt;
  }
  uri = uri.substr(0, uri.find('?'));
  std::string out;
  for (size_t i = 0; i < uri.size(); ++i) {
    if (uri[i] != '%') {
      out += uri[i];
      continue;
    }
    if (i + 2 >= uri.size() || Hex(uri[i + 1]) < 0 || Hex(uri[i + 2]) < 0) {
      return std::nullopt;
    }
    out += static_cast<char>(Hex(uri[i + 1]) * 16 + Hex(uri[i + 2]));
    i += 2;
  }
  // One plain address: no lists, no header injection.
  if (out.empty() || out.find('@') == std::string::npos ||
      out.find_first_of(",<> \t\r\n") != std::string::npos ||
      !HeaderSafe(out)) {
    return std::nullopt;
  }
  return out;
}

absl::StatusOr<std::string> ReportMessage(const nlohmann::json& report,
                                          const ReportMail& mail) {
  std::string domain, id, start, end;
  try {
    domain = report.at("policies").at(0).at("policy").at("policy-domain");
    id = report.at("report-id");
    start = report.at("date-range").at("start-datetime");
    end = report.at("date-range").at("end-datetime");
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(StrCat("not a TLS report: ", e.what()));
  }
  int64_t begin_ts = UnixTime(start), end_ts = UnixTime(end);
  if (begin_ts < 0 || end_ts < 0) {
    return absl::InvalidArgumentError("bad date-range in the report");
  }
  for (const std::string* s : std::initializer_list<const std::string*>{
           &domain, &id, &mail.submitter, &mail.from, &mail.to}) {
    if (!HeaderSafe(*s)) return absl::InvalidArgumentError("bad header value");
  }
  auto gz = Gzip(report.dump());
  if (!gz.ok()) return gz.status();
  std::random_device rd;
  std::string boundary = fmt::format("tlsrpt-{:08x}{:08x}", rd(), rd());
  // Section 5.1: sender!policy-domain!begin!end.json.gz
  std::string file = StrCat(mail.submitter, "!", domain, "!", begin_ts, "!",
                            end_ts, ".json.gz");
  std::string m;
  StrAppend(&m, "From: <", mail.from, ">\n", "To: <", mail.to, ">\n",
            "Date: ", mail::Rfc5322Date(mail.now), "\n",
            "Subject: Report Domain: ", domain, " Submitter: ",
            mail.submitter, " Report-ID: <", id, ">\n",
            "TLS-Report-Domain: ", domain, "\n",
            "TLS-Report-Submitter: ", mail.submitter, "\n",
            "MIME-Version: 1.0\n",
            "Content-Type: multipart/report; report-type=\"tlsrpt\";\n",
            "\tboundary=\"", boundary, "\"\n\n",
            "This is a multipart message in MIME format.\n\n");
  StrAppend(&m, "--", boundary, "\n",
            "Content-Type: text/plain; charset=us-ascii\n\n",
            "This is an aggregate TLS report (RFC 8460) from ",
            mail.submitter, " for ", domain, ", ", start, " to ", end,
            ".\n\n");
  StrAppend(&m, "--", boundary, "\n",
            "Content-Type: application/tlsrpt+gzip\n",
            "Content-Transfer-Encoding: base64\n",
            "Content-Disposition: attachment;\n\tfilename=\"", file, "\"\n\n",
            Base64Lines(*gz), "\n--", boundary, "--\n");
  return m;
}

}  // namespace zm::tlspolicy
