#include "node/mail/rfc5322.h"

#include <fmt/format.h>

#include <ctime>

namespace zm::mail {

std::string Rfc5322Date(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm;
  ::localtime_r(&t, &tm);
  // Names by hand: strftime's %a/%b follow the locale.
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed",
                                          "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr",
                                            "May", "Jun", "Jul", "Aug",
                                            "Sep", "Oct", "Nov", "Dec"};
  long off = tm.tm_gmtoff / 60;
  char sign = off < 0 ? '-' : '+';
  if (off < 0) off = -off;
  return fmt::format("{}, {} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
                     kDays[tm.tm_wday % 7], tm.tm_mday, kMonths[tm.tm_mon % 12],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
                     off / 60, off % 60);
}

}  // namespace zm::mail
