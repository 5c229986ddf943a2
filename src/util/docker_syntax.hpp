// The value syntaxes docker's tools share, parsed once for every user (CLI flags, compose files,
// Dockerfile instructions, log --since/--until), with Go's and docker's error texts. Pure; errors
// are berth::Error, which each caller wraps as it reports them (the CLI as usage errors, compose
// with the key at fault).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace berth {

// Go's strconv.ParseInt(s, 10, 64): an optional sign, then decimal digits only.
std::optional<int64_t> parse_go_int(std::string_view text);

// Go's time.ParseDuration → nanoseconds: "1m30s", "1.5h", "300ms", "-2ns", "0". A fraction is
// truncated to the nanosecond, as Go does. Throws Error `time: invalid duration "x"` / `time:
// missing unit in duration "5"` / `time: unknown unit "x" in duration "3x"`; beyond int64 is invalid.
int64_t parse_go_duration(std::string_view text);
// The same, nullopt instead of an error.
std::optional<int64_t> try_parse_go_duration(std::string_view text);

// docker's --cpus (opts.NanoCPUs): a decimal ("1.5", "1e-3") or a fraction ("3/2"), as Go's
// big.Rat reads it, → nanoCPUs; negative values are returned (the callers range-check). Throws
// Error "failed to parse x as a rational number" / "value is too precise" (below 1e-9).
int64_t parse_nano_cpus(std::string_view text);

// docker's --restart: no | always | unless-stopped | on-failure[:N] → {"Name", "MaximumRetryCount"}
// ("" → Name ""), validated as dockerd's ValidateRestartPolicy does. Throws Error "invalid restart
// policy: …" / "invalid restart policy format: …".
nlohmann::json parse_restart_policy(std::string_view text);

}  // namespace berth
