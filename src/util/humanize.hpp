// Docker's human-readable sizes and durations (go-units), byte-for-byte.
#pragma once

#include <cstdint>
#include <string>

namespace berth {

// units.HumanSizeWithPrecision: decimal units (kB, MB, …), %.{precision}g.
std::string human_size(double bytes, int precision = 4);
// units.HumanDuration: "Less than a second", "About a minute", "3 weeks", …
std::string human_duration(int64_t seconds);
// "2 weeks ago" from a unix time.
std::string time_ago(int64_t unix_seconds);
// RFC 3339 in local time like docker's CreatedAt: "2024-01-02 15:04:05 +0000 UTC".
std::string created_at(int64_t unix_seconds);
// RFC 3339 in local time ("2026-11-28T05:01:02Z", "…+01:00"); with nanos, docker's
// RFC3339Nano-with-zeros form of network Created ("2026-11-28T05:01:02.000000123Z").
std::string rfc3339_local(int64_t ns, bool nanos);

// RFC3339 with 9 fraction digits in local time (docker's jsonmessage.RFC3339NanoFixed).
std::string rfc3339_nano_local(int64_t ns);

}  // namespace berth
