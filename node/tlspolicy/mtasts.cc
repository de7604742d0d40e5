// MTA-STS: record and policy parsing, MX patterns, fetch and cache.
#include "node/tlspolicy/mtasts.h"

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/ta/smtpclient/smtpclient.h"

namespace zm::tlspolicy {
namespace {

// A domain usable as a file name: letters, digits, '-', '.', '_'.
bool SafeName(std::string_view d) {
  if (d.empty() || d[0] == '.' || d.size() > 253) return false;
  for (char c : d) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
          c == '.' || c == '_')) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string_view StsModeName(StsMode m) {
  switch (m) {
    case StsMode::kEnforce:
      return "enforce";
    case StsMode::kTesting:
      return "testing";
    case StsMode::kNone:
      break;
  }
  return "none";
}

std::vector<std::string> StsPolicy::Lines() const {
  std::vector<std::string> out{"version: STSv1",
                               StrCat("mode: ", StsModeName(mode))};
  for (const auto& m : mx) out.push_back(StrCat("mx: ", m));
  out.push_back(StrCat("max_age: ", max_age));
  return out;
}

absl::StatusOr<std::string> ParseStsRecords(
    const std::vector<std::string>& txt) {
  std::string id;
  int found = 0;
  for (const std::string& rec : txt) {
    std::string_view r = Trim(rec);
    // Section 3.1: the record starts with "v=STSv1" (others are ignored).
    if (r.substr(0, 7) != "v=STSv1") continue;
    std::string_view after = r.substr(7);
    if (!after.empty() && after[0] != ';' && after[0] != ' ' &&
        after[0] != '\t') {
      continue;
    }
    ++found;
    for (std::string_view field : Split(r, ';')) {
      field = Trim(field);
      if (ConsumePrefix(&field, "id=")) {
        if (field.empty() || field.size() > 32) {
          return absl::InvalidArgumentError(
              StrCat("bad id in MTA-STS record '", r, "'"));
        }
        for (char c : field) {
          if (!std::isalnum(static_cast<unsigned char>(c))) {
            return absl::InvalidArgumentError(
                StrCat("bad id in MTA-STS record '", r, "'"));
          }
        }
        id = std::string(field);
      }
    }
  }
  if (found == 0) return absl::NotFoundError("no MTA-STS record");
  if (found > 1) return absl::NotFoundError("more than one MTA-STS record");
  if (id.empty()) {
    return absl::InvalidArgumentError("MTA-STS record without an id");
  }
  return id;
}

absl::StatusOr<StsPolicy> ParseStsPolicy(std::string_view text) {
  StsPolicy p;
  bool version = false, mode = false, age = false;
  for (std::string_view line : Split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (Trim(line).empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("MTA-STS policy line without ':': '", line, "'"));
    }
    std::string_view key = Trim(line.substr(0, colon));
    std::string_view value = Trim(line.substr(colon + 1));
    if (key == "version") {
      if (value != "STSv1") {
        return absl::InvalidArgumentError(
            StrCat("MTA-STS policy version '", value, "'"));
      }
      version = true;
    } else if (key == "mode") {
      if (value == "enforce") {
        p.mode = StsMode::kEnforce;
      } else if (value == "testing") {
        p.mode = StsMode::kTesting;
      } else if (value == "none") {
        p.mode = StsMode::kNone;
      } else {
        return absl::InvalidArgumentError(
            StrCat("MTA-STS policy mode '", value, "'"));
      }
      mode = true;
    } else if (key == "max_age") {
      if (!ParseNumber(value, &p.max_age) || p.max_age < 0) {
        return absl::InvalidArgumentError(
            StrCat("MTA-STS policy max_age '", value, "'"));
      }
      p.max_age = std::min(p.max_age, kMaxStsAge);
      age = true;
    } else if (key == "mx") {
      std::string m = ToLower(StripTrailingDots(value));
      if (m.empty()) return absl::InvalidArgumentError("empty mx in policy");
      p.mx.push_back(std::move(m));
    }
  }
  if (!version) return absl::InvalidArgumentError("policy without version");
  if (!mode) return absl::InvalidArgumentError("policy without mode");
  if (!age) return absl::InvalidArgumentError("policy without max_age");
  if (p.mode != StsMode::kNone && p.mx.empty()) {
    return absl::InvalidArgumentError("policy without mx");
  }
  return p;
}

bool StsMxMatches(const std::vector<std::string>& patterns,
                  std::string_view host) {
  std::string h = ToLower(StripTrailingDots(host));
  for (const std::string& p : patterns) {
    if (p.size() > 2 && p[0] == '*' && p[1] == '.') {
      std::string_view suffix = std::string_view(p).substr(1);  // ".x.y"
      if (h.size() > suffix.size() &&
          h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          h.substr(0, h.size() - suffix.size()).find('.') ==
              std::string::npos) {
        return true;
      }
    } else if (p == h) {
      return true;
    }
  }
  return false;
}

absl::StatusOr<std::string> FetchStsPolicy(std::string_view domain,
                                           const std::vector<std::string>& ips,
                                           const FetchOptions& options) {
  std::string host = StrCat("mta-sts.", ToLower(StripTrailingDots(domain)));
  std::string last = StrCat("no address for ", host);
  for (const std::string& ip : ips) {
    auto conn = smtpclient::Connection::ConnectTcp(ip, options.port,
                                                   options.timeout_ms);
    if (!conn.ok()) {
      last = StrCat(host, "[", ip, "]: ", Message(conn.status()));
      continue;
    }
    smtpclient::TlsOptions t;
    t.verify = true;
    t.ca_file = options.ca_file;
    t.verify_name = host;
    t.sni = host;
    if (auto s = (*conn)->StartTls(t, options.timeout_ms); !s.ok()) {
      last = StrCat(host, "[", ip, "]: ", Message(s));
      continue;
    }
    std::string req = StrCat(
        "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: ", host,
        "\r\nUser-Agent: zmnode\r\nConnection: close\r\n\r\n");
    if (auto s = (*conn)->Write(req, options.timeout_ms); !s.ok()) {
      last = StrCat(host, "[", ip, "]: ", Message(s));
      continue;
    }
    auto all = (*conn)->ReadToEnd(kMaxStsPolicy + 8192, options.timeout_ms);
    if (!all.ok()) {
      return absl::UnavailableError(
          StrCat(host, "[", ip, "]: ", Message(all.status())));
    }
    size_t end = all->find("\r\n\r\n");
    size_t skip = 4;
    if (end == std::string::npos) {
      end = all->find("\n\n");
      skip = 2;
    }
    if (end == std::string::npos) {
      return absl::UnavailableError(StrCat(host, ": no complete HTTP answer"));
    }
    std::string_view head = std::string_view(*all).substr(0, end);
    std::string body = all->substr(end + skip);
    std::vector<std::string_view> lines = Split(head, '\n');
    std::string_view status = Trim(lines[0]);
    std::vector<std::string_view> w = SplitWhitespace(status);
    if (w.size() < 2 || w[0].substr(0, 5) != "HTTP/") {
      return absl::UnavailableError(StrCat(host, ": not an HTTP answer"));
    }
    if (w[1] != "200") {
      // Section 3.3: no redirects, only 200.
      return absl::UnavailableError(
          StrCat(host, ": HTTP status '", status, "'"));
    }
    std::optional<size_t> length;
    for (size_t i = 1; i < lines.size(); ++i) {
      std::string_view l = Trim(lines[i]);
      size_t colon = l.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name = ToLower(Trim(l.substr(0, colon)));
      std::string_view value = Trim(l.substr(colon + 1));
      if (name == "content-type" &&
          !StartsWithIgnoreCase(value, "text/plain")) {
        return absl::UnavailableError(
            StrCat(host, ": content type '", value, "', not text/plain"));
      }
      if (name == "content-length") {
        size_t n = 0;
        if (!ParseNumber(value, &n)) {
          return absl::UnavailableError(StrCat(host, ": bad Content-Length"));
        }
        length = n;
      }
    }
    if (body.size() > kMaxStsPolicy) {
      return absl::UnavailableError(StrCat(host, ": policy over 64 KiB"));
    }
    if (length && *length != body.size()) {
      return absl::UnavailableError(
          StrCat(host, ": policy cut short (", body.size(), " of ", *length,
                 " bytes)"));
    }
    return body;
  }
  return absl::UnavailableError(last);
}

std::optional<StsPolicy> StsCache::Get(std::string_view domain) const {
  std::string d = ToLower(StripTrailingDots(domain));
  if (!SafeName(d)) return std::nullopt;
  auto text = fs::ReadFile(StrCat(dir_, "/", d), kMaxStsPolicy + 1024);
  if (!text.ok()) return std::nullopt;
  size_t nl = text->find('\n');
  if (nl == std::string::npos) return std::nullopt;
  std::vector<std::string_view> head =
      SplitWhitespace(std::string_view(*text).substr(0, nl));
  if (head.size() != 2) return std::nullopt;
  auto p = ParseStsPolicy(std::string_view(*text).substr(nl + 1));
  if (!p.ok() || !ParseNumber(head[1], &p->fetched)) return std::nullopt;
  p->id = std::string(head[0]);
  return *p;
}

absl::Status StsCache::Put(std::string_view domain, const StsPolicy& policy) {
  std::string d = ToLower(StripTrailingDots(domain));
  if (!SafeName(d)) {
    return absl::InvalidArgumentError(StrCat("bad domain '", domain, "'"));
  }
  if (auto s = fs::MakeDirs(dir_); !s.ok()) return s;
  std::string text = StrCat(policy.id, " ", policy.fetched, "\n");
  for (const auto& l : policy.Lines()) StrAppend(&text, l, "\n");
  return fs::WriteFileAtomically(dir_, d, text);
}

}  // namespace zm::tlspolicy
