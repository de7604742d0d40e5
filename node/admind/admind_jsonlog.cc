#include "node/admind/admind_jsonlog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "nlohmann/json.hpp"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mail/queue_id.h"

namespace zm::admind {
namespace {

constexpr size_t kMaxRead = 4u << 20;

int MonthOf(std::string_view m) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr",
                                                 "May", "Jun", "Jul", "Aug",
                                                 "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (kMonths[i] == m) return i;
  }
  return -1;
}

}  // namespace

std::string MaillogLineToJson(std::string_view line, time_t now) {
  // "Nov 21 08:03:44 mx1 zmnode/scheduler[4712]: [warning: ][QID: ]text"
  if (line.size() < 16) return "";
  int month = MonthOf(line.substr(0, 3));
  int day = 0, hh = 0, mm = 0, ss = 0;
  std::string_view d = Trim(line.substr(4, 2));
  if (month < 0 || !ParseNumber(d, &day) || line[9] != ':' || line[12] != ':' ||
      !ParseNumber(line.substr(7, 2), &hh) ||
      !ParseNumber(line.substr(10, 2), &mm) ||
      !ParseNumber(line.substr(13, 2), &ss)) {
    return "";
  }
  std::string_view rest = line.substr(15);
  auto words =
      SplitWhitespace(rest.substr(0, std::min<size_t>(rest.size(), 300)));
  if (words.size() < 2) return "";
  std::string_view host = words[0];
  std::string_view tag = words[1];  // "zmnode/scheduler[4712]:"
  if (!ConsumePrefix(&tag, "zmnode/") || !tag.ends_with("]:")) return "";
  auto bracket = tag.find('[');
  if (bracket == std::string_view::npos) return "";
  std::string_view program = tag.substr(0, bracket);
  int pid = 0;
  if (!ParseNumber(tag.substr(bracket + 1, tag.size() - bracket - 3), &pid)) {
    return "";
  }
  std::string_view text = rest.substr(rest.find(words[1]) + words[1].size());
  if (!text.empty() && text[0] == ' ') text.remove_prefix(1);
  std::string level = "info";
  if (ConsumePrefix(&text, "warning: ")) {
    level = "warning";
  } else if (ConsumePrefix(&text, "error: ")) {
    level = "error";
  }
  std::string queue_id;
  if (auto colon = text.find(": "); colon != std::string_view::npos &&
                                    mail::IsQueueId(text.substr(0, colon))) {
    queue_id = std::string(text.substr(0, colon));
    text.remove_prefix(colon + 2);
  }
  // The stamp is local time without a year: this year, or the last one
  // for a month later than the current one (December read in January).
  struct tm tm_now;
  localtime_r(&now, &tm_now);
  struct tm t = {};
  t.tm_year = tm_now.tm_year - (month > tm_now.tm_mon ? 1 : 0);
  t.tm_mon = month;
  t.tm_mday = day;
  t.tm_hour = hh;
  t.tm_min = mm;
  t.tm_sec = ss;
  t.tm_isdst = -1;
  time_t when = mktime(&t);
  struct tm utc;
  gmtime_r(&when, &utc);
  char iso[32];
  size_t n = strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &utc);
  nlohmann::json j;
  j["ts"] = std::string(iso, n);
  j["host"] = std::string(host);
  j["program"] = std::string(program);
  j["pid"] = pid;
  j["queue_id"] = queue_id;
  j["level"] = level;
  j["msg"] = std::string(text);
  // Log text may hold bytes that are not UTF-8 (a peer's reply): replace
  // them rather than fail.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

JsonLog::JsonLog(const NodeDir& node)
    : log_path_(node.maillog()),
      json_path_(node.maillog() + ".json"),
      pos_path_(node.run() + "/maillog.json.pos") {
  LoadPosition();
  // The file is there from the start, even before the first event.
  fs::UniqueFd fd(::open(json_path_.c_str(),
                         O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
}

void JsonLog::LoadPosition() {
  auto text = fs::ReadFile(pos_path_, 256);
  if (!text.ok()) {
    // First run: start at the end, JSON lines are for events from now on.
    struct stat st;
    if (stat(log_path_.c_str(), &st) == 0) {
      inode_ = st.st_ino;
      offset_ = static_cast<uint64_t>(st.st_size);
    }
    return;
  }
  auto w = SplitWhitespace(*text);
  uint64_t ino = 0, off = 0;
  if (w.size() == 2 && ParseNumber(w[0], &ino) && ParseNumber(w[1], &off)) {
    inode_ = static_cast<ino_t>(ino);
    offset_ = off;
  }
}

void JsonLog::SavePosition() {
  (void)fs::WriteFileAtomically(
      pos_path_.substr(0, pos_path_.rfind('/')), "maillog.json.pos",
      StrCat(static_cast<uint64_t>(inode_), " ", offset_, "\n"));
}

void JsonLog::Poll(time_t now) {
  fs::UniqueFd fd(::open(log_path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return;
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return;
  if (st.st_ino != inode_ || static_cast<uint64_t>(st.st_size) < offset_) {
    inode_ = st.st_ino;  // rotated: the new file from its start
    offset_ = 0;
  }
  if (static_cast<uint64_t>(st.st_size) == offset_) return;
  size_t want = static_cast<size_t>(std::min<uint64_t>(
      kMaxRead, static_cast<uint64_t>(st.st_size) - offset_));
  std::string buf(want, '\0');
  ssize_t got = pread(fd.get(), buf.data(), want, static_cast<off_t>(offset_));
  if (got <= 0) return;
  buf.resize(static_cast<size_t>(got));
  // Whole lines only; a partial last line waits for the next poll (a line
  // longer than the whole read is skipped).
  size_t end = buf.rfind('\n');
  if (end == std::string::npos) {
    if (buf.size() == kMaxRead) offset_ += buf.size();
    return;
  }
  std::string out;
  for (std::string_view line :
       Split(std::string_view(buf).substr(0, end), '\n')) {
    std::string j = MaillogLineToJson(line, now);
    if (!j.empty()) StrAppend(&out, j, "\n");
  }
  fs::UniqueFd jfd(::open(json_path_.c_str(),
                          O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!jfd.valid()) return;
  if (!out.empty() && !fs::WriteAll(jfd.get(), out, json_path_).ok()) return;
  offset_ += end + 1;
  SavePosition();
}

}  // namespace zm::admind
