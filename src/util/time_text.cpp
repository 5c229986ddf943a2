// UTC times as text, by hand rather than with gmtime_r/strftime: in a static glibc those load the
// time zone machinery (tzfile, sscanf, strtod…), bytes that the static berth-shim would carry in
// every container's resident memory.
#include "util/time_text.hpp"

namespace berth {
namespace {

void append_digits(std::string& out, int64_t value, int width) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0 && n < static_cast<int>(sizeof(buf)));
  for (int k = n; k < width; ++k) out += '0';
  while (n > 0) out += buf[--n];
}

// Calendar date of a day count since 1970-01-01 (the usual era/day-of-era arithmetic).
void civil_from_days(int64_t days, int64_t& year, int& month, int& day) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  year = yoe + era * 400 + (month <= 2 ? 1 : 0);
}

}  // namespace

void append_rfc3339(std::string& out, int64_t time_ns, Fraction fraction) {
  // Floor division so that times before 1970 still get a fraction in [0, 1e9).
  int64_t secs = time_ns / 1'000'000'000;
  int64_t frac = time_ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  int64_t days = secs / 86400;
  int64_t rest = secs % 86400;
  if (rest < 0) {
    rest += 86400;
    --days;
  }
  int64_t year = 0;
  int month = 0, day = 0;
  civil_from_days(days, year, month, day);
  append_digits(out, year, 4);
  out += '-';
  append_digits(out, month, 2);
  out += '-';
  append_digits(out, day, 2);
  out += 'T';
  append_digits(out, rest / 3600, 2);
  out += ':';
  append_digits(out, rest / 60 % 60, 2);
  out += ':';
  append_digits(out, rest % 60, 2);
  if (fraction == Fraction::Nine) {
    out += '.';
    append_digits(out, frac, 9);
  } else if (frac != 0) {
    // RFC3339Nano: nine digits with the trailing zeros trimmed.
    int digits = 9;
    while (frac % 10 == 0) {
      frac /= 10;
      --digits;
    }
    out += '.';
    append_digits(out, frac, digits);
  }
  out += 'Z';
}

std::string rfc3339_utc(int64_t time_ns, Fraction fraction) {
  std::string out;
  append_rfc3339(out, time_ns, fraction);
  return out;
}

}  // namespace berth
