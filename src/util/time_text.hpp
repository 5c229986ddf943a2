// UTC times as RFC 3339 text without libc's time zone code (see time_text.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace berth {

enum class Fraction {
  Trimmed,  // docker's RFC3339Nano: trailing zeros dropped, no fraction when it is zero
  Nine,     // always nine digits
};

// "2026-11-28T05:01:02.123456789Z" for time_ns since the epoch (earlier times too).
void append_rfc3339(std::string& out, int64_t time_ns, Fraction fraction);
std::string rfc3339_utc(int64_t time_ns, Fraction fraction);

}  // namespace berth
