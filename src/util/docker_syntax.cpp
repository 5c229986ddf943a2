#include "util/docker_syntax.hpp"

#include <charconv>
#include <limits>
#include <string>

#include "util/error.hpp"

namespace berth {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Go's time.ParseDuration; on failure false, with Go's message in *why when why is given.
bool go_duration(std::string_view text, int64_t& out, std::string* why) {
  struct Unit {
    std::string_view name;
    int64_t ns;
  };
  static constexpr Unit kUnits[] = {{"ns", 1},
                                    {"us", 1'000},
                                    {"\xC2\xB5s", 1'000},  // µs (micro sign)
                                    {"\xCE\xBCs", 1'000},  // μs (Greek mu)
                                    {"ms", 1'000'000},
                                    {"s", 1'000'000'000},
                                    {"m", 60 * int64_t{1'000'000'000}},
                                    {"h", 3600 * int64_t{1'000'000'000}}};
  auto fail = [&](std::string message) {
    if (why) *why = std::move(message);
    return false;
  };
  const std::string quoted = "\"" + std::string(text) + "\"";
  auto invalid = [&] { return fail("time: invalid duration " + quoted); };
  std::string_view s = text;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") {
    out = 0;
    return true;
  }
  if (s.empty()) return invalid();
  __int128 total = 0;
  const __int128 limit = static_cast<__int128>(std::numeric_limits<int64_t>::max()) + (neg ? 1 : 0);
  while (!s.empty()) {
    if (!(s[0] == '.' || is_digit(s[0]))) return invalid();
    __int128 whole = 0;
    size_t i = 0;
    bool digits = false;
    for (; i < s.size() && is_digit(s[i]); ++i, digits = true) {
      whole = whole * 10 + (s[i] - '0');
      if (whole > limit) return invalid();
    }
    __int128 frac = 0, scale = 1;
    if (i < s.size() && s[i] == '.') {
      for (++i; i < s.size() && is_digit(s[i]); ++i, digits = true) {
        if (scale < static_cast<__int128>(1'000'000'000'000'000'000)) {  // further digits cannot matter at 1 ns
          frac = frac * 10 + (s[i] - '0');
          scale *= 10;
        }
      }
    }
    if (!digits) return invalid();
    size_t u = i;
    while (u < s.size() && s[u] != '.' && !is_digit(s[u])) ++u;
    const std::string_view unit = s.substr(i, u - i);
    if (unit.empty()) return fail("time: missing unit in duration " + quoted);
    const Unit* found = nullptr;
    for (const auto& d : kUnits)
      if (d.name == unit) found = &d;
    if (!found) return fail("time: unknown unit \"" + std::string(unit) + "\" in duration " + quoted);
    total += whole * found->ns + frac * found->ns / scale;
    if (total > limit) return invalid();
    s.remove_prefix(u);
  }
  out = static_cast<int64_t>(neg ? -total : total);
  return true;
}

}  // namespace

std::optional<int64_t> parse_go_int(std::string_view s) {
  int64_t v = 0;
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

int64_t parse_go_duration(std::string_view text) {
  int64_t ns = 0;
  std::string why;
  if (!go_duration(text, ns, &why)) throw Error(why);
  return ns;
}

std::optional<int64_t> try_parse_go_duration(std::string_view text) {
  int64_t ns = 0;
  if (!go_duration(text, ns, nullptr)) return std::nullopt;
  return ns;
}

int64_t parse_nano_cpus(std::string_view text) {
  const std::string fail = "failed to parse " + std::string(text) + " as a rational number";
  const auto too_big = static_cast<__int128>(1e30);
  // A fraction "a/b" or a decimal with an optional exponent, as Go's big.Rat.SetString reads them.
  auto decimal = [&](std::string_view s, __int128& num, __int128& den) {
    bool neg = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
      neg = s[0] == '-';
      s.remove_prefix(1);
    }
    num = 0;
    den = 1;
    bool digits = false;
    size_t i = 0;
    for (; i < s.size() && is_digit(s[i]); ++i, digits = true)
      if ((num = num * 10 + (s[i] - '0')) > too_big) throw Error(fail);
    if (i < s.size() && s[i] == '.')
      for (++i; i < s.size() && is_digit(s[i]); ++i, digits = true) {
        num = num * 10 + (s[i] - '0');
        den *= 10;
        if (den > too_big) throw Error("value is too precise");
      }
    if (!digits) throw Error(fail);
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      auto e = parse_go_int(s.substr(i + 1));
      if (!e || *e > 20 || *e < -20) throw Error(fail);
      for (int64_t k = 0; k < *e; ++k) num *= 10;
      for (int64_t k = 0; k < -*e; ++k) den *= 10;
      i = s.size();
    }
    if (i != s.size()) throw Error(fail);
    if (neg) num = -num;
  };
  __int128 num = 0, den = 1;
  size_t slash = text.find('/');
  if (slash != std::string_view::npos) {
    auto a = parse_go_int(text.substr(0, slash));
    auto b = parse_go_int(text.substr(slash + 1));
    if (!a || !b || *b <= 0) throw Error(fail);
    num = *a;
    den = *b;
  } else {
    decimal(text, num, den);
  }
  num *= 1'000'000'000;
  if (num % den != 0) throw Error("value is too precise");
  __int128 nano = num / den;
  if (nano > std::numeric_limits<int64_t>::max() || nano < std::numeric_limits<int64_t>::min()) throw Error(fail);
  return static_cast<int64_t>(nano);
}

nlohmann::json parse_restart_policy(std::string_view text) {
  nlohmann::json p = {{"Name", ""}, {"MaximumRetryCount", 0}};
  if (text.empty()) return p;
  size_t colon = text.find(':');
  std::string name(text.substr(0, colon));
  if (colon != std::string_view::npos && name.empty())
    throw Error("invalid restart policy format: no policy provided before colon");
  int64_t count = 0;
  if (colon != std::string_view::npos && colon + 1 < text.size()) {
    auto n = parse_go_int(text.substr(colon + 1));
    if (!n || *n > std::numeric_limits<int>::max() || *n < std::numeric_limits<int>::min())
      throw Error("invalid restart policy format: maximum retry count must be an integer");
    count = *n;
  }
  // dockerd's ValidateRestartPolicy, checked here so the error comes before anything is created.
  if (name == "no" || name == "always" || name == "unless-stopped") {
    if (count != 0) throw Error("invalid restart policy: maximum retry count can only be used with 'on-failure'");
  } else if (name == "on-failure") {
    if (count < 0) throw Error("invalid restart policy: maximum retry count cannot be negative");
  } else {
    throw Error("invalid restart policy: unknown policy '" + name +
                "'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'");
  }
  p["Name"] = name;
  p["MaximumRetryCount"] = count;
  return p;
}

}  // namespace berth
