// Pure helpers of berth-shim: attach frames, the little JSON it reads and writes, timestamps and
// the mapping of runtime errors to exit codes. Header-only, no I/O, so tests/unit/shim_test.cpp
// includes it directly. No nlohmann::json and no iostreams: the shim must stay under 1 MiB RSS.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "shim/protocol.hpp"
#include "util/time_text.hpp"

namespace berth::shim {

// Appends one frame (docker's stdcopy header: type, 3 zero bytes, big-endian length) to out.
inline void append_frame(std::string& out, uint8_t type, std::string_view payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  const char header[kFrameHeader] = {static_cast<char>(type),
                                     0,
                                     0,
                                     0,
                                     static_cast<char>(n >> 24),
                                     static_cast<char>(n >> 16),
                                     static_cast<char>(n >> 8),
                                     static_cast<char>(n)};
  out.append(header, kFrameHeader);
  out.append(payload);
}

enum class FrameStatus { Incomplete, Ok, TooBig };

// Decodes the frame at the start of buf. Ok: type, payload and consumed (header + payload) are set.
// Incomplete: more bytes are needed. TooBig: the length exceeds kMaxFrame (the peer is broken).
inline FrameStatus decode_frame(std::string_view buf, uint8_t& type, std::string_view& payload, size_t& consumed) {
  if (buf.size() < kFrameHeader) return FrameStatus::Incomplete;
  const auto* p = reinterpret_cast<const unsigned char*>(buf.data());
  const uint32_t n = (uint32_t{p[4]} << 24) | (uint32_t{p[5]} << 16) | (uint32_t{p[6]} << 8) | uint32_t{p[7]};
  if (n > kMaxFrame) return FrameStatus::TooBig;
  if (buf.size() < kFrameHeader + n) return FrameStatus::Incomplete;
  type = p[0];
  payload = buf.substr(kFrameHeader, n);
  consumed = kFrameHeader + n;
  return FrameStatus::Ok;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not one.
inline size_t utf8_sequence(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

// Appends s as the body of a JSON string (no quotes). Invalid UTF-8 becomes U+FFFD so that strict
// parsers (the engine's nlohmann::json) accept every line the shim writes.
inline void append_json_escaped(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    if (size_t len = utf8_sequence(s, i)) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
}

inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  append_json_escaped(out, s);
  out += '"';
  return out;
}

// Finds the value text following "key": in a flat JSON object (the hello and resize payloads are
// flat, written by the engine). Returns an empty view when the key is missing.
inline std::string_view json_value_of(std::string_view json, std::string_view key) {
  std::string quoted = "\"";
  quoted.append(key);
  quoted += '"';
  size_t pos = 0;
  while ((pos = json.find(quoted, pos)) != std::string_view::npos) {
    size_t i = pos + quoted.size();
    while (i < json.size() && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) ++i;
    if (i < json.size() && json[i] == ':') {
      ++i;
      while (i < json.size() && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) ++i;
      return json.substr(i);
    }
    pos += quoted.size();
  }
  return {};
}

inline bool json_bool(std::string_view json, std::string_view key, bool fallback = false) {
  std::string_view v = json_value_of(json, key);
  if (v.substr(0, 4) == "true") return true;
  if (v.substr(0, 5) == "false") return false;
  return fallback;
}

// A non-negative integer value; -1 when missing or not a number.
inline int64_t json_uint(std::string_view json, std::string_view key) {
  std::string_view v = json_value_of(json, key);
  if (v.empty() || v[0] < '0' || v[0] > '9') return -1;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') break;
    n = n * 10 + (c - '0');
    if (n > (int64_t{1} << 40)) return -1;
  }
  return n;
}

// RFC3339Nano in UTC as docker writes it: trailing zeros of the fraction trimmed, no fraction when
// it is zero. time_ns <= 0 is Go's zero time, which docker shows for "not yet".
inline std::string rfc3339_nano(int64_t time_ns) {
  if (time_ns <= 0) return "0001-01-01T00:00:00Z";
  return rfc3339_utc(time_ns, Fraction::Trimmed);
}

inline bool contains_nocase(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t k = 0;
    while (k < needle.size()) {
      char a = hay[i + k], b = needle[k];
      if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
      if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
      if (a != b) break;
      ++k;
    }
    if (k == needle.size()) return true;
  }
  return false;
}

// docker's exit codes for a container that could not run: 127 when the executable was not found,
// 126 when it could not be invoked, 125 for every other failure. berth-runtime reports both at
// `create` as `exec: "<cmd>": executable file not found in $PATH`, `exec: "/x": No such file or
// directory` or `exec: "/x": Permission denied`; only messages about the exec count, so that a
// missing bind-mount source ("no such file" too) stays 125.
inline int exit_code_for_runtime_error(std::string_view message) {
  if (!contains_nocase(message, "exec")) return 125;
  if (contains_nocase(message, "not found") || contains_nocase(message, "no such file")) return 127;
  if (contains_nocase(message, "permission denied") || contains_nocase(message, "not executable") ||
      contains_nocase(message, "exec format error"))
    return 126;
  return 125;
}

// One line from the runtime's stderr: the last non-empty line, trimmed, without the "berth: "
// prefix the runtime CLI puts on errors (the engine adds its own).
inline std::string runtime_error_line(std::string_view text) {
  std::string_view best;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (!line.empty()) best = line;
    start = end + 1;
  }
  if (best.substr(0, 7) == "berth: ") best.remove_prefix(7);
  return std::string(best);
}

enum class RestartKind { No, Always, UnlessStopped, OnFailure };

struct RestartPolicy {
  RestartKind kind = RestartKind::No;
  int max_retries = 0;  // on-failure:N; 0 = unlimited
};

// Parses docker's --restart value; false when it is not one.
inline bool parse_restart_policy(std::string_view text, RestartPolicy& out) {
  if (text == "no" || text.empty()) {
    out = {RestartKind::No, 0};
  } else if (text == "always") {
    out = {RestartKind::Always, 0};
  } else if (text == "unless-stopped") {
    out = {RestartKind::UnlessStopped, 0};
  } else if (text == "on-failure") {
    out = {RestartKind::OnFailure, 0};
  } else if (text.substr(0, 11) == "on-failure:") {
    std::string_view n = text.substr(11);
    if (n.empty() || n.size() > 9) return false;
    int v = 0;
    for (char c : n) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    out = {RestartKind::OnFailure, v};
  } else {
    return false;
  }
  return true;
}

// Whether an exit with exit_code after restart_count restarts is followed by another run (the
// stop file is checked by the caller).
inline bool should_restart(const RestartPolicy& p, int exit_code, int restart_count) {
  switch (p.kind) {
    case RestartKind::No:
      return false;
    case RestartKind::Always:
    case RestartKind::UnlessStopped:
      return true;
    case RestartKind::OnFailure:
      return exit_code != 0 && (p.max_retries == 0 || restart_count < p.max_retries);
  }
  return false;
}

// docker's restart back-off: 100 ms, doubled for each restart, at most a minute; reset to 100 ms
// when the run before lasted at least 10 s.
inline int64_t next_backoff_ms(int64_t previous_ms, int64_t ran_ms) {
  if (previous_ms <= 0 || ran_ms >= 10000) return 100;
  int64_t next = previous_ms * 2;
  return next > 60000 ? 60000 : next;
}

// Go's time.Duration.String(), which docker uses in "Health check exceeded timeout (30s)":
// "0s", "500ms", "1.5µs", "1m30s", "1h0m0s".
inline std::string go_duration(int64_t ns) {
  if (ns == 0) return "0s";
  std::string sign = ns < 0 ? "-" : "";
  uint64_t u = ns < 0 ? static_cast<uint64_t>(-(ns + 1)) + 1 : static_cast<uint64_t>(ns);
  // whole units plus the fraction (digits of `frac_digits` places, trailing zeros trimmed)
  auto fixed = [](uint64_t v, int frac_digits, const char* unit) {
    uint64_t div = 1;
    for (int i = 0; i < frac_digits; ++i) div *= 10;
    std::string out = std::to_string(v / div);
    uint64_t frac = v % div;
    if (frac != 0) {
      std::string f = std::to_string(frac);
      f.insert(0, static_cast<size_t>(frac_digits) - f.size(), '0');
      while (f.back() == '0') f.pop_back();
      out += '.' + f;
    }
    return out + unit;
  };
  if (u < 1000) return sign + std::to_string(u) + "ns";
  if (u < 1000000) return sign + fixed(u, 3, "\xc2\xb5s");
  if (u < 1000000000) return sign + fixed(u, 6, "ms");
  uint64_t secs = u / 1000000000;
  std::string out = sign;
  if (secs >= 3600) out += std::to_string(secs / 3600) + "h";
  if (secs >= 60) out += std::to_string(secs / 60 % 60) + "m";
  return out + fixed(u % 60000000000, 9, "s");
}

// Health checks, with docker's rules (daemon/health.go).
inline constexpr size_t kHealthOutputMax = 4096;  // docker keeps this much of a check's output…
inline constexpr size_t kHealthLogEntries = 5;    // …and this many results

// Appends data to out up to kHealthOutputMax bytes; sets truncated when some was left out.
inline void append_health_output(std::string& out, bool& truncated, std::string_view data) {
  size_t room = kHealthOutputMax - std::min(out.size(), kHealthOutputMax);
  if (data.size() > room) truncated = true;
  out.append(data.substr(0, room));
}

struct HealthResult {
  int64_t start_ns = 0, end_ns = 0;
  int exit_code = 0;
  std::string output;
};

struct HealthState {
  std::string status = "starting";  // "starting", "healthy", "unhealthy"
  int failing_streak = 0;
  std::vector<HealthResult> log;  // the last kHealthLogEntries results, oldest first

  // A new run of the container: starting again, the log kept (as docker).
  void reset() {
    status = "starting";
    failing_streak = 0;
  }

  // Folds one result in. A failure while still "starting" and within start_period_ns of the
  // container's start does not count; retries consecutive failures make it unhealthy.
  void record(HealthResult r, int64_t container_started_ns, int64_t start_period_ns, int retries) {
    const bool ok = r.exit_code == 0;
    const int64_t start = r.start_ns;
    log.push_back(std::move(r));
    if (log.size() > kHealthLogEntries) log.erase(log.begin());
    if (ok) {
      failing_streak = 0;
      status = "healthy";
      return;
    }
    if (status == "starting" && start - container_started_ns < start_period_ns) return;
    ++failing_streak;
    if (failing_streak >= retries) status = "unhealthy";
  }

  // Appends docker's State.Health object to out, in place (the outputs make it up to ~25 KiB: no
  // temporaries, so the shim's heap stays small).
  void append_json(std::string& out) const {
    size_t need = 96;
    for (const auto& r : log) need += 128 + r.output.size() + r.output.size() / 8;
    out.reserve(out.size() + need);
    out += "{\"Status\":\"";
    out += status;
    out += "\",\"FailingStreak\":";
    out += std::to_string(failing_streak);
    out += ",\"Log\":[";
    for (size_t i = 0; i < log.size(); ++i) {
      out += i ? ",{\"Start\":\"" : "{\"Start\":\"";
      out += rfc3339_nano(log[i].start_ns);
      out += "\",\"End\":\"";
      out += rfc3339_nano(log[i].end_ns);
      out += "\",\"ExitCode\":";
      out += std::to_string(log[i].exit_code);
      out += ",\"Output\":\"";
      append_json_escaped(out, log[i].output);
      out += "\"}";
    }
    out += "]}";
  }

  std::string json() const {
    std::string out;
    append_json(out);
    return out;
  }
};

// The wait before the next check: start_interval while the container is in its start period
// and not yet healthy, interval otherwise (docker 25's --health-start-interval).
inline int64_t health_interval(const HealthState& h, int64_t now_ns, int64_t container_started_ns,
                               int64_t start_period_ns, int64_t interval_ns, int64_t start_interval_ns) {
  if (now_ns - container_started_ns >= start_period_ns) return interval_ns;
  return h.status == "starting" ? start_interval_ns : interval_ns;
}

}  // namespace berth::shim
