// TLS reporting: recording sessions and aggregating a day.
#include "node/tlspolicy/tlsrpt.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <map>
#include <tuple>

#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::tlspolicy {
namespace {

constexpr size_t kMaxDayFile = 256 << 20;

// Tabs, newlines and the list separator would break the line format.
std::string Clean(std::string_view s) {
  std::string out(s.substr(0, 1000));
  for (char& c : out) {
    if (c == '\t' || c == '\n' || c == '\r' || c == '|') c = ' ';
  }
  return out;
}

bool ValidDay(std::string_view d) {
  if (d.size() != 10 || d[4] != '-' || d[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(d[i]))) return false;
  }
  return true;
}

}  // namespace

std::string_view PolicyTypeName(PolicyType t) {
  switch (t) {
    case PolicyType::kSts:
      return "sts";
    case PolicyType::kTlsa:
      return "tlsa";
    case PolicyType::kNoPolicy:
      break;
  }
  return "no-policy-found";
}

std::string Day(int64_t unix_time) {
  time_t t = static_cast<time_t>(unix_time);
  tm u{};
  gmtime_r(&t, &u);
  char buf[16];
  strftime(buf, sizeof buf, "%Y-%m-%d", &u);
  return buf;
}

absl::Status TlsrptLog::Record(const TlsResult& r, int64_t unix_now) {
  if (auto s = fs::MakeDirs(dir_); !s.ok()) return s;
  std::string policy;
  for (const auto& l : r.policy) {
    if (!policy.empty()) policy += '|';
    policy += Clean(l);
  }
  std::string line = StrCat(
      unix_now, "\t", Clean(ToLower(r.policy_domain)), "\t",
      PolicyTypeName(r.type), "\t", r.result.empty() ? "-" : Clean(r.result),
      "\t", Clean(r.mx_host), "\t", Clean(r.ip), "\t", policy, "\t",
      Clean(r.detail), "\n");
  std::string path = StrCat(dir_, "/", Day(unix_now));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                  0644);
  if (fd < 0) return fs::ErrnoStatus("open", path, errno);
  absl::Status s = fs::WriteAll(fd, line, path);
  ::close(fd);
  return s;
}

absl::StatusOr<std::vector<nlohmann::json>> Aggregate(
    const std::string& dir, std::string_view day, std::string_view org,
    std::string_view domain) {
  if (!ValidDay(day)) {
    return absl::InvalidArgumentError(
        StrCat("bad day '", day, "' (YYYY-MM-DD)"));
  }
  std::string path = StrCat(dir, "/", day);
  auto text = fs::ReadFile(path, kMaxDayFile);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(StrCat("no TLS reporting data for ", day));
    }
    return text.status();
  }
  struct Policy {
    std::string type;
    std::vector<std::string> strings;
    std::vector<std::string> mx;
    int64_t ok = 0, failed = 0;
    // (result, mx, ip, detail) -> count
    std::map<std::tuple<std::string, std::string, std::string, std::string>,
             int64_t>
        failures;
  };
  // (domain, type, policy string) -> aggregate.
  std::map<std::tuple<std::string, std::string, std::string>, Policy> all;
  for (std::string_view line : Split(*text, '\n')) {
    std::vector<std::string_view> f = Split(line, '\t');
    if (f.size() != 8) continue;
    if (!domain.empty() && f[1] != ToLower(domain)) continue;
    Policy& p = all[{std::string(f[1]), std::string(f[2]), std::string(f[6])}];
    p.type = std::string(f[2]);
    if (p.strings.empty() && !f[6].empty()) {
      for (auto s : Split(f[6], '|')) p.strings.emplace_back(s);
    }
    std::string mx(f[4]);
    if (!mx.empty() && std::find(p.mx.begin(), p.mx.end(), mx) == p.mx.end()) {
      p.mx.push_back(mx);
    }
    if (f[3] == "-") {
      ++p.ok;
    } else {
      ++p.failed;
      ++p.failures[{std::string(f[3]), mx, std::string(f[5]),
                    std::string(f[7])}];
    }
  }
  if (all.empty()) {
    return absl::NotFoundError(StrCat("no TLS reporting data for ", day,
                                      domain.empty() ? "" : " and ", domain));
  }
  std::vector<nlohmann::json> out;
  std::string current;
  for (const auto& [key, p] : all) {
    const std::string& d = std::get<0>(key);
    if (out.empty() || d != current) {
      current = d;
      out.push_back(nlohmann::json{
          {"organization-name", std::string(org)},
          {"date-range",
           {{"start-datetime", StrCat(day, "T00:00:00Z")},
            {"end-datetime", StrCat(day, "T23:59:59Z")}}},
          {"contact-info", StrCat("postmaster@", org)},
          {"report-id", StrCat(day, "_", d, "@", org)},
          {"policies", nlohmann::json::array()}});
    }
    nlohmann::json policy{{"policy-type", p.type}, {"policy-domain", d}};
    if (!p.strings.empty()) policy["policy-string"] = p.strings;
    if (!p.mx.empty()) policy["mx-host"] = p.mx;
    nlohmann::json entry{{"policy", policy},
                         {"summary",
                          {{"total-successful-session-count", p.ok},
                           {"total-failure-session-count", p.failed}}}};
    if (!p.failures.empty()) {
      nlohmann::json details = nlohmann::json::array();
      for (const auto& [f, n] : p.failures) {
        nlohmann::json one{{"result-type", std::get<0>(f)},
                           {"failed-session-count", n}};
        if (!std::get<1>(f).empty())
          one["receiving-mx-hostname"] = std::get<1>(f);
        if (!std::get<2>(f).empty()) one["receiving-ip"] = std::get<2>(f);
        if (!std::get<3>(f).empty())
          one["additional-information"] = std::get<3>(f);
        details.push_back(std::move(one));
      }
      entry["failure-details"] = std::move(details);
    }
    out.back()["policies"].push_back(std::move(entry));
  }
  return out;
}

}  // namespace zm::tlspolicy
