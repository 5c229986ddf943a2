#include "util/humanize.hpp"

#include <cstdio>
#include <ctime>

namespace berth {

std::string human_size(double size, int precision) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  size_t i = 0;
  while (size >= 1000.0 && i + 1 < sizeof kUnits / sizeof kUnits[0]) {
    size /= 1000.0;
    i++;
  }
  char buf[64];
  snprintf(buf, sizeof buf, "%.*g%s", precision, size, kUnits[i]);
  return buf;
}

std::string human_duration(int64_t seconds) {
  auto fmt = [](int64_t n, const char* unit) { return std::to_string(n) + " " + unit; };
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return fmt(seconds, "seconds");
  int64_t minutes = seconds / 60;
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return fmt(minutes, "minutes");
  int64_t hours = static_cast<int64_t>(static_cast<double>(seconds) / 3600.0 + 0.5);
  if (hours == 1) return "About an hour";
  if (hours < 48) return fmt(hours, "hours");
  if (hours < 24 * 7 * 2) return fmt(hours / 24, "days");
  if (hours < 24 * 30 * 2) return fmt(hours / 24 / 7, "weeks");
  if (hours < 24 * 365 * 2) return fmt(hours / 24 / 30, "months");
  return fmt(seconds / 3600 / 24 / 365, "years");
}

std::string time_ago(int64_t unix_seconds) {
  if (unix_seconds <= 0) return "N/A";
  return human_duration(static_cast<int64_t>(::time(nullptr)) - unix_seconds) + " ago";
}

std::string created_at(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  localtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %z %Z", &tm);
  return buf;
}

std::string rfc3339_local(int64_t ns, bool nanos) {
  time_t secs = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  localtime_r(&secs, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (nanos) {
    snprintf(buf, sizeof buf, ".%09lld", static_cast<long long>(ns % 1000000000));
    out += buf;
  }
  long off = tm.tm_gmtoff;
  if (off == 0) return out + "Z";
  char sign = off < 0 ? '-' : '+';
  off = off < 0 ? -off : off;
  snprintf(buf, sizeof buf, "%c%02ld:%02ld", sign, off / 3600, (off % 3600) / 60);
  return out + buf;
}

std::string rfc3339_nano_local(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1000000000);
  int64_t frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    secs -= 1;
  }
  struct tm tm {};
  ::localtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[96];
  long off = tm.tm_gmtoff;
  if (off == 0) {
    std::snprintf(out, sizeof out, "%s.%09lldZ", buf, static_cast<long long>(frac));
  } else {
    char sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    std::snprintf(out, sizeof out, "%s.%09lld%c%02ld:%02ld", buf, static_cast<long long>(frac), sign, off / 3600,
                  (off % 3600) / 60);
  }
  return out;
}

}  // namespace berth
