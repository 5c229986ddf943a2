// A port of the parts of Go's text/template, fmt, encoding/json and text/tabwriter that docker's --format
// reaches, so that templates written for docker print the same bytes. Error messages follow Go's wording.
#include "cli/format.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <utility>

namespace berth::cli {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------------------
// UTF-8 and quoting.

constexpr char32_t kBadRune = 0x110000;  // an invalid UTF-8 byte, which Go decodes as U+FFFD of width 1

char32_t decode_rune(std::string_view s, size_t i, size_t& len) {
  auto c = static_cast<unsigned char>(s[i]);
  len = 1;
  if (c < 0x80) return c;
  size_t n;
  char32_t r, min;
  if ((c & 0xE0) == 0xC0) {
    n = 2, r = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, r = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, r = c & 0x07, min = 0x10000;
  } else {
    return kBadRune;
  }
  if (i + n > s.size()) return kBadRune;
  for (size_t k = 1; k < n; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return kBadRune;
    r = (r << 6) | (cc & 0x3F);
  }
  if (r < min || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) return kBadRune;
  len = n;
  return r;
}

void append_utf8(std::string& out, char32_t r) {
  if (r >= kBadRune || (r >= 0xD800 && r <= 0xDFFF)) r = 0xFFFD;
  if (r < 0x80) {
    out += static_cast<char>(r);
  } else if (r < 0x800) {
    out += static_cast<char>(0xC0 | (r >> 6));
    out += static_cast<char>(0x80 | (r & 0x3F));
  } else if (r < 0x10000) {
    out += static_cast<char>(0xE0 | (r >> 12));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (r & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (r >> 18));
    out += static_cast<char>(0x80 | ((r >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (r & 0x3F));
  }
}

size_t rune_count(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0, len; i < s.size(); i += len, ++n) decode_rune(s, i, len);
  return n;
}

// The first n runes of s.
std::string_view rune_prefix(std::string_view s, size_t n) {
  size_t i = 0, len;
  for (; i < s.size() && n > 0; i += len, --n) decode_rune(s, i, len);
  return s.substr(0, i);
}

std::string hex(uint64_t v, int digits, bool upper = false) {
  const char* d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string s;
  do {
    s.insert(s.begin(), d[v & 15]);
    v >>= 4;
  } while (v);
  while (static_cast<int>(s.size()) < digits) s.insert(s.begin(), '0');
  return s;
}

// Approximates unicode.IsPrint: C0/C1 controls, DEL and the non-ASCII spaces are not printable.
bool is_print(char32_t r) {
  if (r < 0x20 || r == 0x7F || (r >= 0x80 && r <= 0xA0) || r == 0xAD) return false;
  if (r == 0x2028 || r == 0x2029 || r == 0xFEFF || (r >= 0x2000 && r <= 0x200F)) return false;
  return true;
}

// The two-character escapes of Go string literals (go: \a and \v too) and of JSON; nullptr if none.
const char* short_escape(char32_t r, bool go) {
  switch (r) {
    case '\a':
      return go ? "\\a" : nullptr;
    case '\b':
      return "\\b";
    case '\f':
      return "\\f";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    case '\v':
      return go ? "\\v" : nullptr;
    default:
      return nullptr;
  }
}

// strconv.Quote (quote '"') and strconv.QuoteRune's body (quote '\'').
std::string go_quote(std::string_view s, char quote = '"') {
  std::string out(1, quote);
  for (size_t i = 0, len; i < s.size(); i += len) {
    char32_t r = decode_rune(s, i, len);
    if (r == kBadRune) {
      out += "\\x" + hex(static_cast<unsigned char>(s[i]), 2);
      continue;
    }
    if (r == static_cast<char32_t>(quote) || r == '\\') {
      out += '\\';
      out += static_cast<char>(r);
      continue;
    }
    if (is_print(r)) {
      out.append(s.substr(i, len));
      continue;
    }
    if (const char* e = short_escape(r, true))
      out += e;
    else if (r < 0x20 || r == 0x7F)
      out += "\\x" + hex(r, 2);
    else if (r < 0x10000)
      out += "\\u" + hex(r, 4);
    else
      out += "\\U" + hex(r, 8);
  }
  out += quote;
  return out;
}

// Terminal columns of a rune, like go-runewidth (which docker's tabwriter uses): wide East Asian
// characters take two, combining marks and controls none.
int rune_width(char32_t r) {
  if (r == kBadRune) return 1;
  if (r < 0x20 || (r >= 0x7F && r < 0xA0)) return 0;
  if ((r >= 0x300 && r <= 0x36F) || (r >= 0x1AB0 && r <= 0x1AFF) || (r >= 0x1DC0 && r <= 0x1DFF) ||
      (r >= 0x20D0 && r <= 0x20FF) || (r >= 0xFE20 && r <= 0xFE2F) || (r >= 0x200B && r <= 0x200F) ||
      (r >= 0xFE00 && r <= 0xFE0F))
    return 0;
  if ((r >= 0x1100 && r <= 0x115F) || (r >= 0x2E80 && r <= 0x303E) || (r >= 0x3041 && r <= 0x33FF) ||
      (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0xA000 && r <= 0xA4CF) ||
      (r >= 0xAC00 && r <= 0xD7A3) || (r >= 0xF900 && r <= 0xFAFF) || (r >= 0xFE30 && r <= 0xFE4F) ||
      (r >= 0xFF00 && r <= 0xFF60) || (r >= 0xFFE0 && r <= 0xFFE6) || (r >= 0x1F300 && r <= 0x1F64F) ||
      (r >= 0x1F900 && r <= 0x1F9FF) || (r >= 0x20000 && r <= 0x3FFFD))
    return 2;
  return 1;
}

int display_width(std::string_view s) {
  int w = 0;
  for (size_t i = 0, len; i < s.size(); i += len) w += rune_width(decode_rune(s, i, len));
  return w;
}

// ---------------------------------------------------------------------------------------------------------
// Go's float formatting.

// Shortest round-trip decimal digits of |d| (d finite, non-zero) and the exponent of the first digit.
void shortest_digits(double d, std::string& digits, int& exp10) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, std::fabs(d), std::chars_format::scientific);
  std::string_view s(buf, res.ptr - buf);  // "d.ddde+XX"
  size_t e = s.find('e');
  digits.assign(1, s[0]);
  if (e > 1) digits.append(s.substr(2, e - 2));
  exp10 = 0;
  std::from_chars(s.data() + e + (s[e + 1] == '+' ? 2 : 1), s.data() + s.size(), exp10);
}

std::string fixed_from_digits(const std::string& digits, int exp10) {
  if (exp10 < 0) return "0." + std::string(-exp10 - 1, '0') + digits;
  auto int_len = static_cast<size_t>(exp10) + 1;
  if (digits.size() <= int_len) return digits + std::string(int_len - digits.size(), '0');
  return digits.substr(0, int_len) + "." + digits.substr(int_len);
}

std::string exp_from_digits(const std::string& digits, int exp10, bool upper = false) {
  std::string s = digits.substr(0, 1);
  if (digits.size() > 1) s += "." + digits.substr(1);
  s += upper ? 'E' : 'e';
  s += exp10 < 0 ? '-' : '+';
  int a = std::abs(exp10);
  if (a < 10) s += '0';
  s += std::to_string(a);
  return s;
}

// strconv.FormatFloat(d, 'g', -1, 64): %v and %g. Exponent form below 1e-4 and from 1e+06 on (Go
// decides with precision 6 when printing the shortest digits).
std::string go_float_g(double d, bool upper = false) {
  if (d == 0) return std::signbit(d) ? "-0" : "0";
  std::string digits;
  int e;
  shortest_digits(d, digits, e);
  std::string s = e < -4 || e >= 6 ? exp_from_digits(digits, e, upper) : fixed_from_digits(digits, e);
  return d < 0 ? "-" + s : s;
}

// The default printing of a JSON number that is a float. Go values behind docker's templates that are
// integral are Go integers, so integral floats (JSON has no other way to say 2) print without a point,
// as far as a double holds integers exactly.
std::string go_float_v(double d) {
  if (std::trunc(d) == d && std::fabs(d) <= 9007199254740992.0) {
    if (d == 0) return "0";
    std::string digits;
    int e;
    shortest_digits(d, digits, e);
    return (d < 0 ? "-" : "") + fixed_from_digits(digits, e);
  }
  return go_float_g(d);
}

// encoding/json's float64: shortest digits, exponent form outside [1e-6, 1e21) with "e-07" → "e-7".
std::string json_float(double d) {
  if (!std::isfinite(d)) return "null";
  if (d == 0) return std::signbit(d) ? "-0" : "0";
  std::string digits;
  int e;
  shortest_digits(d, digits, e);
  double a = std::fabs(d);
  std::string s;
  if (a < 1e-6 || a >= 1e21) {
    s = exp_from_digits(digits, e);
    if (s.size() >= 4 && s[s.size() - 4] == 'e' && s[s.size() - 3] == '-' && s[s.size() - 2] == '0')
      s.erase(s.size() - 2, 1);
  } else {
    s = fixed_from_digits(digits, e);
  }
  return d < 0 ? "-" + s : s;
}

std::string c_format(const char* fmt, int prec, double d) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, fmt, prec, d);
  if (n >= 0 && static_cast<size_t>(n) < sizeof buf) return std::string(buf, n);
  std::string big(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(big.data(), big.size(), fmt, prec, d);
  big.pop_back();
  return big;
}

// ---------------------------------------------------------------------------------------------------------
// encoding/json output.

void json_quote(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0, len; i < s.size(); i += len) {
    char32_t r = decode_rune(s, i, len);
    if (r == kBadRune) {
      out += "\\ufffd";
    } else if (r == '"' || r == '\\') {
      out += '\\';
      out += static_cast<char>(r);
    } else if (r < 0x20) {
      const char* e = short_escape(r, false);
      out += e ? std::string(e) : "\\u00" + hex(r, 2);
    } else if (r == 0x2028 || r == 0x2029) {
      // Escaped even without HTML escaping: JavaScript treats them as line terminators.
      out += r == 0x2028 ? "\\u2028" : "\\u2029";
    } else {
      out.append(s.substr(i, len));
    }
  }
  out += '"';
}

void go_json_to(std::string& out, const json& j, int indent, int level) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent) * lvl, ' ');
  };
  switch (j.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      out += "null";
      break;
    case json::value_t::boolean:
      out += j.get<bool>() ? "true" : "false";
      break;
    case json::value_t::number_integer:
      out += std::to_string(j.get<int64_t>());
      break;
    case json::value_t::number_unsigned:
      out += std::to_string(j.get<uint64_t>());
      break;
    case json::value_t::number_float:
      out += json_float(j.get<double>());
      break;
    case json::value_t::string:
      json_quote(out, j.get_ref<const std::string&>());
      break;
    case json::value_t::binary:
      out += "null";
      break;  // berth's data never hold binary
    case json::value_t::array: {
      if (j.empty()) {
        out += "[]";
        break;
      }
      out += '[';
      bool first = true;
      for (const auto& e : j) {
        if (!first) out += ',';
        first = false;
        newline(level + 1);
        go_json_to(out, e, indent, level + 1);
      }
      newline(level);
      out += ']';
      break;
    }
    case json::value_t::object: {
      if (j.empty()) {
        out += "{}";
        break;
      }
      out += '{';
      bool first = true;
      for (const auto& [k, v] : j.items()) {
        if (!first) out += ',';
        first = false;
        newline(level + 1);
        json_quote(out, k);
        out += indent < 0 ? ":" : ": ";
        go_json_to(out, v, indent, level + 1);
      }
      newline(level);
      out += '}';
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Go's fmt, for printing values, print/println and printf.

struct Spec {
  bool minus = false, plus = false, sharp = false, space = false, zero = false;
  int width = -1, prec = -1;
  char32_t verb = 'v';
};

// reflect's type names as docker users see them in Go's messages.
std::string go_type(const json& j) {
  switch (j.type()) {
    case json::value_t::string:
      return "string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "int";
    case json::value_t::number_float:
      return "float64";
    case json::value_t::boolean:
      return "bool";
    case json::value_t::array:
      return "[]interface {}";
    case json::value_t::object:
      return "map[string]interface {}";
    default:
      return "interface {}";
  }
}

void pad(std::string& out, std::string_view s, const Spec& sp) {
  int n = sp.width - static_cast<int>(rune_count(s));
  if (n <= 0) {
    out += s;
  } else if (sp.minus) {
    out += s;
    out.append(n, ' ');
  } else {
    out.append(n, sp.zero ? '0' : ' ');
    out += s;
  }
}

void fmt_arg(std::string& out, const json* v, const Spec& sp);

void bad_verb(std::string& out, const json* v, const Spec& sp) {
  out += "%!";
  append_utf8(out, sp.verb);
  out += '(';
  if (!v || v->is_null()) {
    out += "<nil>";
  } else {
    out += go_type(*v) + "=";
    Spec vs = sp;
    vs.verb = 'v';
    fmt_arg(out, v, vs);
  }
  out += ')';
}

// Pads a number: zeros go between the sign and the digits.
void pad_number(std::string& out, std::string s, const Spec& sp) {
  if (sp.zero && !sp.minus && sp.width > static_cast<int>(s.size())) {
    size_t at = !s.empty() && (s[0] == '-' || s[0] == '+' || s[0] == ' ') ? 1 : 0;
    s.insert(at, sp.width - s.size(), '0');
  }
  Spec nz = sp;
  nz.zero = false;
  pad(out, s, nz);
}

void fmt_integer(std::string& out, const json& v, const Spec& sp) {
  bool neg = false;
  uint64_t mag;
  if (v.is_number_unsigned()) {
    mag = v.get<uint64_t>();
  } else {
    auto i = v.get<int64_t>();
    neg = i < 0;
    mag = neg ? 0 - static_cast<uint64_t>(i) : static_cast<uint64_t>(i);
  }
  unsigned base = 10;
  bool upper = false;
  switch (sp.verb) {
    case 'v':
    case 'd':
      break;
    case 'b':
      base = 2;
      break;
    case 'o':
    case 'O':
      base = 8;
      break;
    case 'x':
      base = 16;
      break;
    case 'X':
      base = 16, upper = true;
      break;
    case 'c': {
      std::string s;
      append_utf8(s, neg || mag > 0x10FFFF ? 0xFFFD : static_cast<char32_t>(mag));
      pad(out, s, sp);
      return;
    }
    case 'q': {
      std::string s;
      append_utf8(s, neg || mag > 0x10FFFF ? 0xFFFD : static_cast<char32_t>(mag));
      pad(out, go_quote(s, '\''), sp);
      return;
    }
    case 'U':
      pad(out, "U+" + hex(mag, 4, true), sp);
      return;
    default:
      bad_verb(out, &v, sp);
      return;
  }
  const char* d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string digits;
  for (uint64_t m = mag; m; m /= base) digits.insert(digits.begin(), d[m % base]);
  if (digits.empty() && sp.prec != 0) digits = "0";
  if (sp.prec > 0 && static_cast<int>(digits.size()) < sp.prec) digits.insert(0, sp.prec - digits.size(), '0');
  std::string prefix;
  if (sp.sharp) {
    if (sp.verb == 'x') prefix = "0x";
    if (sp.verb == 'X') prefix = "0X";
    if (sp.verb == 'b') prefix = "0b";
    if (sp.verb == 'o' && (digits.empty() || digits[0] != '0')) prefix = "0";
  }
  if (sp.verb == 'O') prefix = "0o";
  std::string sign = neg ? "-" : sp.plus ? "+" : sp.space ? " " : "";
  Spec s2 = sp;
  if (sp.prec >= 0) s2.zero = false;  // Go ignores the 0 flag when a precision is given
  if (s2.zero && !s2.minus && s2.width > 0) {
    int room = s2.width - static_cast<int>(sign.size() + prefix.size() + digits.size());
    if (room > 0) digits.insert(0, room, '0');
    s2.zero = false;
  }
  pad(out, sign + prefix + digits, s2);
}

void fmt_float(std::string& out, const json& v, const Spec& sp) {
  double d = v.get<double>();
  std::string s;
  switch (sp.verb) {
    case 'v':
      s = sp.prec < 0 ? go_float_v(d) : c_format("%.*g", sp.prec, d);
      break;
    case 'g':
    case 'G':
      s = sp.prec < 0 ? go_float_g(d, sp.verb == 'G') : c_format(sp.verb == 'G' ? "%.*G" : "%.*g", sp.prec, d);
      break;
    case 'e':
      s = c_format("%.*e", sp.prec < 0 ? 6 : sp.prec, d);
      break;
    case 'E':
      s = c_format("%.*E", sp.prec < 0 ? 6 : sp.prec, d);
      break;
    case 'f':
    case 'F':
      s = c_format("%.*f", sp.prec < 0 ? 6 : sp.prec, d);
      break;
    default:
      bad_verb(out, &v, sp);
      return;
  }
  if (s[0] != '-') {
    if (sp.plus)
      s.insert(0, 1, '+');
    else if (sp.space)
      s.insert(0, 1, ' ');
  }
  pad_number(out, s, sp);
}

void fmt_string(std::string& out, const std::string& s, const json* v, const Spec& sp) {
  switch (sp.verb) {
    case 'v':
    case 's':
      pad(out, sp.prec >= 0 ? rune_prefix(s, sp.prec) : std::string_view(s), sp);
      return;
    case 'q':
      pad(out, go_quote(sp.prec >= 0 ? rune_prefix(s, sp.prec) : std::string_view(s)), sp);
      return;
    case 'x':
    case 'X': {
      std::string h;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i > 0 && sp.space) h += ' ';
        if (sp.sharp && (i == 0 || sp.space)) h += sp.verb == 'X' ? "0X" : "0x";
        h += hex(static_cast<unsigned char>(s[i]), 2, sp.verb == 'X');
      }
      pad(out, h, sp);
      return;
    }
    default: {
      json tmp;
      if (!v) tmp = s;
      bad_verb(out, v ? v : &tmp, sp);
    }
  }
}

void fmt_arg(std::string& out, const json* v, const Spec& sp) {
  if (!v || v->is_null() || v->is_discarded()) {
    if (sp.verb == 'v')
      pad(out, "<nil>", sp);
    else
      bad_verb(out, nullptr, sp);
    return;
  }
  switch (v->type()) {
    case json::value_t::boolean:
      if (sp.verb == 'v' || sp.verb == 't')
        pad(out, v->get<bool>() ? "true" : "false", sp);
      else
        bad_verb(out, v, sp);
      return;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      fmt_integer(out, *v, sp);
      return;
    case json::value_t::number_float:
      fmt_float(out, *v, sp);
      return;
    case json::value_t::string:
      fmt_string(out, v->get_ref<const std::string&>(), v, sp);
      return;
    case json::value_t::array: {
      out += '[';
      for (size_t i = 0; i < v->size(); ++i) {
        if (i) out += ' ';
        fmt_arg(out, &(*v)[i], sp);
      }
      out += ']';
      return;
    }
    case json::value_t::object: {
      out += "map[";
      bool first = true;
      for (const auto& [k, e] : v->items()) {
        if (!first) out += ' ';
        first = false;
        fmt_string(out, k, nullptr, sp);
        out += ':';
        fmt_arg(out, &e, sp);
      }
      out += ']';
      return;
    }
    default:
      pad(out, "<nil>", sp);
      return;
  }
}

std::string fmt_v(const json* v) {
  std::string s;
  fmt_arg(s, v, Spec{});
  return s;
}

// fmt.Sprintf: flags, width and precision (digits or *), %% and Go's %!verb(…) markers for mistakes.
std::string go_sprintf(std::string_view f, const std::vector<const json*>& args) {
  std::string out;
  size_t arg = 0;
  bool reordered = false, bad_index = false;
  auto int_arg = [&](int& dst) {
    if (arg < args.size() && args[arg] && args[arg]->is_number_integer()) {
      dst = static_cast<int>(args[arg]->get<int64_t>());
      ++arg;
      return true;
    }
    ++arg;
    return false;
  };
  for (size_t i = 0; i < f.size();) {
    size_t pct = f.find('%', i);
    if (pct == std::string_view::npos) pct = f.size();
    out.append(f.substr(i, pct - i));
    if (pct >= f.size()) break;
    i = pct + 1;
    Spec sp;
    // An explicit argument index, "%[2]d": Go reads it before the width, precision or verb.
    auto arg_index = [&]() {
      if (i >= f.size() || f[i] != '[') return;
      size_t close = f.find(']', i);
      int n = 0;
      auto r = close == std::string_view::npos ? std::from_chars_result{nullptr, std::errc::invalid_argument}
                                               : std::from_chars(f.data() + i + 1, f.data() + close, n);
      if (close == std::string_view::npos || r.ptr != f.data() + close || n < 1 ||
          static_cast<size_t>(n) > args.size()) {
        bad_index = true;
        i = close == std::string_view::npos ? f.size() : close + 1;
        return;
      }
      arg = static_cast<size_t>(n) - 1;
      reordered = true;
      i = close + 1;
    };
    bad_index = false;
    for (; i < f.size(); ++i) {
      char c = f[i];
      if (c == '#')
        sp.sharp = true;
      else if (c == '0')
        sp.zero = !sp.minus;
      else if (c == '+')
        sp.plus = true;
      else if (c == '-')
        sp.minus = true, sp.zero = false;
      else if (c == ' ')
        sp.space = true;
      else
        break;
    }
    arg_index();
    if (i < f.size() && f[i] == '*') {
      ++i;
      if (!int_arg(sp.width)) out += "%!(BADWIDTH)";
      if (sp.width < 0) sp.minus = true, sp.zero = false, sp.width = -sp.width;
    } else {
      for (; i < f.size() && f[i] >= '0' && f[i] <= '9'; ++i) sp.width = std::max(sp.width, 0) * 10 + (f[i] - '0');
    }
    if (i < f.size() && f[i] == '.') {
      ++i;
      sp.prec = 0;
      arg_index();
      if (i < f.size() && f[i] == '*') {
        ++i;
        if (!int_arg(sp.prec) || sp.prec < 0) {
          sp.prec = -1;
          out += "%!(BADPREC)";
        }
      } else {
        for (; i < f.size() && f[i] >= '0' && f[i] <= '9'; ++i) sp.prec = sp.prec * 10 + (f[i] - '0');
      }
    }
    arg_index();
    if (i >= f.size()) {
      out += "%!(NOVERB)";
      break;
    }
    size_t len;
    sp.verb = decode_rune(f, i, len);
    if (sp.verb == kBadRune) sp.verb = 0xFFFD;
    i += len;
    if (sp.verb == '%') {
      out += '%';
      continue;
    }
    if (bad_index) {
      out += "%!";
      append_utf8(out, sp.verb);
      out += "(BADINDEX)";
      continue;
    }
    if (sp.verb == 'v') sp.plus = sp.sharp = false;  // %+v and %#v mean struct field names and Go syntax
    if (arg >= args.size()) {
      out += "%!";
      append_utf8(out, sp.verb);
      out += "(MISSING)";
      continue;
    }
    fmt_arg(out, args[arg++], sp);
  }
  if (!reordered && arg < args.size()) {
    out += "%!(EXTRA ";
    for (size_t k = arg; k < args.size(); ++k) {
      if (k > arg) out += ", ";
      if (!args[k] || args[k]->is_null())
        out += "<nil>";
      else
        out += go_type(*args[k]) + "=" + fmt_v(args[k]);
    }
    out += ')';
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Lexer (text/template/parse/lex.go).

enum class Tok {
  Error,
  Bool,
  Char,
  CharConstant,
  Assign,
  Declare,
  Eof,
  Field,
  Identifier,
  LeftDelim,
  LeftParen,
  Number,
  Pipe,
  RawString,
  RightDelim,
  RightParen,
  Space,
  String,
  Text,
  Variable,
  Keyword,  // keywords follow
  Block,
  Break,
  Continue,
  Dot,
  Define,
  Else,
  End,
  If,
  Nil,
  Range,
  Template,
  With,
};

struct Item {
  Tok typ;
  size_t pos;
  std::string val;
  int line;
};

// Go's item.String(), used in "unexpected …" messages.
std::string item_string(const Item& it) {
  if (it.typ == Tok::Eof) return "EOF";
  if (it.typ == Tok::Error) return it.val;
  if (it.typ > Tok::Keyword) return "<" + it.val + ">";
  if (rune_count(it.val) > 10) return go_quote(rune_prefix(it.val, 10)) + "...";
  return go_quote(it.val);
}

bool is_space(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
// Go accepts Unicode letters and digits; every non-ASCII byte is taken as part of one.
bool is_alnum(int c) {
  return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

std::string rune_name(std::string_view s, size_t at) {  // Go's %#U
  size_t len;
  char32_t r = decode_rune(s, at, len);
  if (r == kBadRune) r = 0xFFFD;
  std::string out = "U+" + hex(r, 4, true);
  if (is_print(r)) {
    out += " '";
    append_utf8(out, r);
    out += "'";
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view in) : in_(in) {}

  std::vector<Item> run() {
    enum State { kText, kLeftDelim, kInside, kRightDelim, kComment, kDone } st = kText;
    while (st != kDone) {
      switch (st) {
        case kText:
          st = lex_text() ? kLeftDelim : kDone;
          break;
        case kLeftDelim:
          st = lex_left_delim() ? kComment : kInside;
          break;
        case kComment:
          st = lex_comment() ? kText : kDone;
          break;
        case kRightDelim:
          lex_right_delim(), st = kText;
          break;
        case kInside: {
          int r = lex_inside_action();
          st = r == 0 ? kInside : r == 1 ? kRightDelim : kDone;
          break;
        }
        case kDone:
          break;
      }
    }
    return std::move(items_);
  }

 private:
  static constexpr std::string_view kLeft = "{{", kRight = "}}";
  std::string_view in_;
  size_t pos_ = 0, start_ = 0;
  int paren_depth_ = 0;
  std::vector<Item> items_;

  int line_at(size_t p) const { return 1 + static_cast<int>(std::count(in_.begin(), in_.begin() + p, '\n')); }
  void emit(Tok t) {
    items_.push_back({t, start_, std::string(in_.substr(start_, pos_ - start_)), line_at(start_)});
    start_ = pos_;
  }
  void error(std::string msg) { items_.push_back({Tok::Error, start_, std::move(msg), line_at(start_)}); }
  int peek() const { return pos_ < in_.size() ? static_cast<unsigned char>(in_[pos_]) : -1; }
  std::string_view rest(size_t at) const { return at < in_.size() ? in_.substr(at) : std::string_view(); }
  static bool left_trim_marker(std::string_view s) { return s.size() >= 2 && s[0] == '-' && is_space(s[1]); }
  static bool right_trim_marker(std::string_view s) { return s.size() >= 2 && is_space(s[0]) && s[1] == '-'; }
  std::pair<bool, bool> at_right_delim() const {
    if (rest(pos_).starts_with(kRight)) return {true, false};
    if (right_trim_marker(rest(pos_)) && rest(pos_ + 2).starts_with(kRight)) return {true, true};
    return {false, false};
  }
  bool at_terminator() const {
    int r = peek();
    return r == -1 || is_space(r) || r == '.' || r == ',' || r == '|' || r == ':' || r == ')' || r == '(' ||
           rest(pos_).starts_with(kRight);
  }

  // Returns whether an action starts.
  bool lex_text() {
    size_t x = in_.find(kLeft, pos_);
    if (x == std::string_view::npos) {
      pos_ = in_.size();
      if (pos_ > start_) emit(Tok::Text);
      emit(Tok::Eof);
      return false;
    }
    size_t trim = 0;
    if (left_trim_marker(rest(x + kLeft.size()))) {
      std::string_view text = in_.substr(start_, x - start_);
      while (trim < text.size() && is_space(text[text.size() - 1 - trim])) ++trim;
    }
    pos_ = x - trim;
    if (pos_ > start_) emit(Tok::Text);
    pos_ = start_ = x;
    return true;
  }

  // Returns whether a comment follows.
  bool lex_left_delim() {
    pos_ += kLeft.size();
    size_t after = left_trim_marker(rest(pos_)) ? 2 : 0;
    if (rest(pos_ + after).starts_with("/*")) {
      pos_ += after;
      start_ = pos_;
      return true;
    }
    emit(Tok::LeftDelim);
    pos_ += after;
    start_ = pos_;
    paren_depth_ = 0;
    return false;
  }

  bool lex_comment() {
    pos_ += 2;
    size_t end = in_.find("*/", pos_);
    if (end == std::string_view::npos) {
      error("unclosed comment");
      return false;
    }
    pos_ = end + 2;
    auto [delim, trim] = at_right_delim();
    if (!delim) {
      error("comment ends before closing delimiter");
      return false;
    }
    if (trim) pos_ += 2;
    pos_ += kRight.size();
    if (trim)
      while (is_space(peek())) ++pos_;
    start_ = pos_;
    return true;
  }

  void lex_right_delim() {
    bool trim = right_trim_marker(rest(pos_));
    if (trim) pos_ += 2, start_ = pos_;
    pos_ += kRight.size();
    emit(Tok::RightDelim);
    if (trim) {
      while (is_space(peek())) ++pos_;
      start_ = pos_;
    }
  }

  // 0: continue inside the action, 1: at the right delimiter, 2: stop (error).
  int lex_inside_action() {
    auto [delim, trim] = at_right_delim();
    if (delim) {
      if (paren_depth_ == 0) return 1;
      error("unclosed left paren");
      return 2;
    }
    int r = peek();
    if (r == -1) {
      error("unclosed action");
      return 2;
    }
    if (is_space(r)) return lex_space();
    ++pos_;
    switch (r) {
      case '=':
        emit(Tok::Assign);
        return 0;
      case ':':
        if (peek() != '=') {
          error("expected :=");
          return 2;
        }
        ++pos_;
        emit(Tok::Declare);
        return 0;
      case '|':
        emit(Tok::Pipe);
        return 0;
      case '"':
        return lex_quote('"', Tok::String, "unterminated quoted string");
      case '`': {
        size_t end = in_.find('`', pos_);
        if (end == std::string_view::npos) {
          error("unterminated raw quoted string");
          return 2;
        }
        pos_ = end + 1;
        emit(Tok::RawString);
        return 0;
      }
      case '$':
        if (at_terminator()) {
          emit(Tok::Variable);
          return 0;
        }
        return lex_field_or_variable(Tok::Variable);
      case '\'':
        return lex_quote('\'', Tok::CharConstant, "unterminated character constant");
      case '(':
        emit(Tok::LeftParen);
        ++paren_depth_;
        return 0;
      case ')':
        if (--paren_depth_ < 0) {
          error("unexpected right paren");
          return 2;
        }
        emit(Tok::RightParen);
        return 0;
      default:
        break;
    }
    if (r == '.') {
      int n = peek();
      if (n < '0' || n > '9') return lex_field_or_variable(Tok::Field);
    }
    if (r == '.' || r == '+' || r == '-' || (r >= '0' && r <= '9')) {
      --pos_;
      return lex_number();
    }
    if (is_alnum(r)) {
      --pos_;
      return lex_identifier();
    }
    if (r < 0x80 && r > 0x20 && r != 0x7F) {
      emit(Tok::Char);
      return 0;
    }
    --pos_;
    error("unrecognized character in action: " + rune_name(in_, pos_));
    return 2;
  }

  int lex_space() {
    int n = 0;
    while (is_space(peek())) ++pos_, ++n;
    // " -}}": the space belongs to the trim marker.
    if (right_trim_marker(rest(pos_ - 1)) && rest(pos_ + 1).starts_with(kRight)) {
      --pos_;
      if (n == 1) return 1;
    }
    emit(Tok::Space);
    return 0;
  }

  int lex_quote(char q, Tok t, const char* unterminated) {
    for (;;) {
      int c = peek();
      ++pos_;
      if (c == '\\') {
        c = peek();
        ++pos_;
        if (c != -1 && c != '\n') continue;
      }
      if (c == -1 || c == '\n') {
        pos_ = std::min(pos_, in_.size());
        error(unterminated);
        return 2;
      }
      if (c == q) break;
    }
    emit(t);
    return 0;
  }

  int lex_identifier() {
    while (is_alnum(peek())) ++pos_;
    if (!at_terminator()) {
      error("bad character " + rune_name(in_, pos_));
      return 2;
    }
    static const std::map<std::string_view, Tok> kKeywords = {{"block", Tok::Block},
                                                              {"break", Tok::Break},
                                                              {"continue", Tok::Continue},
                                                              {"define", Tok::Define},
                                                              {"else", Tok::Else},
                                                              {"end", Tok::End},
                                                              {"if", Tok::If},
                                                              {"range", Tok::Range},
                                                              {"nil", Tok::Nil},
                                                              {"template", Tok::Template},
                                                              {"with", Tok::With}};
    std::string_view word = in_.substr(start_, pos_ - start_);
    if (auto it = kKeywords.find(word); it != kKeywords.end())
      emit(it->second);
    else if (word == "true" || word == "false")
      emit(Tok::Bool);
    else
      emit(Tok::Identifier);
    return 0;
  }

  // After the '.' or '$'.
  int lex_field_or_variable(Tok t) {
    if (at_terminator()) {
      emit(t == Tok::Variable ? Tok::Variable : Tok::Dot);
      return 0;
    }
    while (is_alnum(peek())) ++pos_;
    if (!at_terminator()) {
      error("bad character " + rune_name(in_, pos_));
      return 2;
    }
    emit(t);
    return 0;
  }

  bool accept(std::string_view valid) {
    int c = peek();
    if (c != -1 && valid.find(static_cast<char>(c)) != std::string_view::npos) {
      ++pos_;
      return true;
    }
    return false;
  }
  void accept_run(std::string_view valid) {
    while (accept(valid)) {
    }
  }

  int lex_number() {
    accept("+-");
    std::string_view digits = "0123456789_";
    if (accept("0")) {
      if (accept("xX"))
        digits = "0123456789abcdefABCDEF_";
      else if (accept("oO"))
        digits = "01234567_";
      else if (accept("bB"))
        digits = "01_";
    }
    accept_run(digits);
    if (accept(".")) accept_run(digits);
    if (digits.size() == 11 && accept("eE")) {
      accept("+-");
      accept_run("0123456789_");
    }
    if (digits.size() == 23 && accept("pP")) {
      accept("+-");
      accept_run("0123456789_");
    }
    accept("i");
    if (is_alnum(peek())) {
      ++pos_;
      error("bad number syntax: " + go_quote(in_.substr(start_, pos_ - start_)));
      return 2;
    }
    emit(Tok::Number);
    return 0;
  }
};

// strconv.Unquote for "…", `…` and '…' literals. Returns false on a malformed escape.
bool go_unquote(std::string_view q, std::string& out) {
  out.clear();
  if (q.size() < 2) return false;
  char quote = q[0];
  std::string_view body = q.substr(1, q.size() - 2);
  if (quote == '`') {
    for (char c : body)
      if (c != '\r') out += c;
    return true;
  }
  for (size_t i = 0; i < body.size();) {
    char c = body[i];
    if (c == quote) return false;
    if (c != '\\') {
      out += c;
      ++i;
      continue;
    }
    if (++i >= body.size()) return false;
    char e = body[i++];
    auto hex_digits = [&](size_t n, uint32_t& v) {
      if (i + n > body.size()) return false;
      v = 0;
      for (size_t k = 0; k < n; ++k) {
        char h = body[i + k];
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0) return false;
        v = v * 16 + d;
      }
      i += n;
      return true;
    };
    uint32_t v;
    switch (e) {
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case '\\':
        out += '\\';
        break;
      case '"':
      case '\'':
        if (e != quote) return false;
        out += e;
        break;
      case 'x':
        if (!hex_digits(2, v)) return false;
        out += static_cast<char>(v);
        break;
      case 'u':
      case 'U':
        if (!hex_digits(e == 'u' ? 4 : 8, v) || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return false;
        append_utf8(out, v);
        break;
      default:
        if (e < '0' || e > '7' || i + 2 > body.size()) return false;
        v = e - '0';
        for (int k = 0; k < 2; ++k) {
          char o = body[i++];
          if (o < '0' || o > '7') return false;
          v = v * 8 + (o - '0');
        }
        if (v > 255) return false;
        out += static_cast<char>(v);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Parse tree (text/template/parse/node.go), one struct for every kind.

enum class NK {
  List,
  Text,
  Action,
  If,
  Range,
  With,
  Break,
  Continue,
  End,
  Else,
  Pipe,
  Command,
  Field,
  Variable,
  Chain,
  Identifier,
  Dot,
  Nil,
  Bool,
  Number,
  String,
};

struct Node;
using NodePtr = std::unique_ptr<Node>;

struct Node {
  NK kind;
  size_t pos = 0;
  std::string text;                                        // Text: the text; String: unquoted; Identifier: the name
  std::string source;                                      // Number, String: as written
  std::vector<std::string> ident;                          // Field: {"A","B"}; Variable: {"$x","A"}; Chain: the fields
  std::vector<NodePtr> nodes;                              // List: items; Pipe: commands; Command: arguments
  NodePtr pipe;                                            // Action/If/Range/With: the pipeline; Chain: the operand
  NodePtr list, else_list;                                 // If/Range/With
  std::vector<std::string> decl;                           // Pipe: declared variables
  bool is_assign = false;                                  // Pipe: `=` rather than `:=`
  bool boolean = false;                                    // Bool
  bool is_int = false, is_uint = false, is_float = false;  // Number
  int64_t i = 0;
  double f = 0;
};

NodePtr make(NK kind, size_t pos) {
  auto n = std::make_unique<Node>();
  n->kind = kind;
  n->pos = pos;
  return n;
}

std::string str(const Node& n);

std::string str_list(const Node* n) {
  std::string s;
  if (n)
    for (const auto& c : n->nodes) s += str(*c);
  return s;
}

// Go's Node.String(): the context shown in execution errors.
std::string str(const Node& n) {
  switch (n.kind) {
    case NK::List:
      return str_list(&n);
    case NK::Text:
      return n.text;
    case NK::Action:
      return "{{" + str(*n.pipe) + "}}";
    case NK::If:
    case NK::Range:
    case NK::With: {
      std::string s = std::string("{{") +
                      (n.kind == NK::If      ? "if "
                       : n.kind == NK::Range ? "range "
                                             : "with ") +
                      str(*n.pipe) + "}}" + str_list(n.list.get());
      if (n.else_list) s += "{{else}}" + str_list(n.else_list.get());
      return s + "{{end}}";
    }
    case NK::Break:
      return "{{break}}";
    case NK::Continue:
      return "{{continue}}";
    case NK::End:
      return "{{end}}";
    case NK::Else:
      return "{{else}}";
    case NK::Pipe: {
      std::string s;
      for (size_t k = 0; k < n.decl.size(); ++k) s += (k ? ", " : "") + n.decl[k];
      if (!n.decl.empty()) s += n.is_assign ? " = " : " := ";
      for (size_t k = 0; k < n.nodes.size(); ++k) s += (k ? " | " : "") + str(*n.nodes[k]);
      return s;
    }
    case NK::Command: {
      std::string s;
      for (size_t k = 0; k < n.nodes.size(); ++k) {
        if (k) s += ' ';
        s += n.nodes[k]->kind == NK::Pipe ? "(" + str(*n.nodes[k]) + ")" : str(*n.nodes[k]);
      }
      return s;
    }
    case NK::Field: {
      std::string s;
      for (const auto& id : n.ident) s += "." + id;
      return s;
    }
    case NK::Variable: {
      std::string s;
      for (size_t k = 0; k < n.ident.size(); ++k) s += (k ? "." : "") + n.ident[k];
      return s;
    }
    case NK::Chain: {
      std::string s = n.pipe->kind == NK::Pipe ? "(" + str(*n.pipe) + ")" : str(*n.pipe);
      for (const auto& id : n.ident) s += "." + id;
      return s;
    }
    case NK::Identifier:
      return n.text;
    case NK::Dot:
      return ".";
    case NK::Nil:
      return "nil";
    case NK::Bool:
      return n.boolean ? "true" : "false";
    case NK::Number:
    case NK::String:
      return n.source;
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------------
// Functions: Go's builtins and docker's templates.basicFunctions / HeaderFunctions.

// Go stores absent values as an invalid reflect.Value; a Value with no json is that. Values computed by
// functions own their json; values found in the data point into it and keep its owner alive.
struct Value {
  const json* p = nullptr;
  std::shared_ptr<const json> hold;
  bool valid() const { return p != nullptr; }
};

Value own(json j) {
  auto h = std::make_shared<const json>(std::move(j));
  return {h.get(), h};
}
Value child(const Value& parent, const json& c) { return {&c, parent.hold}; }

// How an argument is checked and converted, after the Go parameter types of the real functions.
enum class Arg {
  Value,    // reflect.Value (Go's builtins): absent stays absent
  Any,      // interface{}: absent becomes nil
  String,   // string
  Int,      // int
  Strings,  // []string
};

std::string arg_name(Arg a) {
  switch (a) {
    case Arg::String:
      return "string";
    case Arg::Int:
      return "int";
    case Arg::Strings:
      return "[]string";
    case Arg::Any:
      return "interface {}";
    case Arg::Value:
      return "reflect.Value";
  }
  return "";
}

// A function's failure: execution stops with "error calling NAME: MESSAGE".
struct FuncError {
  std::string message;
};

using Args = std::vector<Value>;

struct Func {
  std::vector<Arg> params;
  bool variadic;
  Value (*fn)(const Args&);
};

// Go's truth: false, 0, nil, and empty strings, arrays and maps are false.
bool is_true(const Value& v) {
  if (!v.valid()) return false;
  const json& j = *v.p;
  switch (j.type()) {
    case json::value_t::boolean:
      return j.get<bool>();
    case json::value_t::number_integer:
      return j.get<int64_t>() != 0;
    case json::value_t::number_unsigned:
      return j.get<uint64_t>() != 0;
    case json::value_t::number_float:
      return j.get<double>() != 0;
    case json::value_t::string:
      return !j.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object:
      return !j.empty();
    default:
      return false;
  }
}

const std::string& s_of(const Value& v) { return v.p->get_ref<const std::string&>(); }
int64_t i_of(const Value& v) { return v.p->get<int64_t>(); }
// len() in Go's sense: nlohmann's size() is 1 for a string.
size_t go_len(const json& j) { return j.is_string() ? j.get_ref<const std::string&>().size() : j.size(); }

enum class Kind { Invalid, Bool, Number, String, Other };

Kind kind_of(const Value& v) {
  if (!v.valid() || v.p->is_null()) return Kind::Invalid;
  if (v.p->is_boolean()) return Kind::Bool;
  if (v.p->is_number()) return Kind::Number;
  if (v.p->is_string()) return Kind::String;
  return Kind::Other;
}

// Numbers compare by value whatever JSON made of them (Go would refuse int against float64, but here the
// data decide the type, not a Go struct).
int num_cmp(const json& a, const json& b) {
  if (a.is_number_integer() && b.is_number_integer()) {
    bool au = a.is_number_unsigned(), bu = b.is_number_unsigned();
    if (au && bu) {
      auto x = a.get<uint64_t>(), y = b.get<uint64_t>();
      return x < y ? -1 : x > y;
    }
    if (!au && !bu) {
      auto x = a.get<int64_t>(), y = b.get<int64_t>();
      return x < y ? -1 : x > y;
    }
    if (au) return -num_cmp(b, a);
    auto x = a.get<int64_t>();
    auto y = b.get<uint64_t>();
    if (x < 0) return -1;
    return static_cast<uint64_t>(x) < y ? -1 : static_cast<uint64_t>(x) > y;
  }
  double x = a.get<double>(), y = b.get<double>();
  return x < y ? -1 : x > y;
}

bool basic_eq(const Value& a, const Value& b) {
  Kind ka = kind_of(a), kb = kind_of(b);
  if (ka != kb) {
    if (ka != Kind::Invalid && kb != Kind::Invalid) throw FuncError{"incompatible types for comparison"};
    return false;
  }
  switch (ka) {
    case Kind::Invalid:
      return true;
    case Kind::Bool:
      return a.p->get<bool>() == b.p->get<bool>();
    case Kind::Number:
      return num_cmp(*a.p, *b.p) == 0;
    case Kind::String:
      return s_of(a) == s_of(b);
    case Kind::Other:
      break;
  }
  std::string shown;
  Spec s;
  s.verb = 's';
  fmt_arg(shown, b.p, s);
  throw FuncError{"non-comparable type " + shown + ": " + go_type(*b.p)};
}

bool basic_lt(const Value& a, const Value& b) {
  Kind ka = kind_of(a), kb = kind_of(b);
  auto basic = [](Kind k) { return k == Kind::Bool || k == Kind::Number || k == Kind::String; };
  if (!basic(ka) || !basic(kb)) throw FuncError{"invalid type for comparison"};
  if (ka != kb) throw FuncError{"incompatible types for comparison"};
  if (ka == Kind::Bool) throw FuncError{"invalid type for comparison"};
  if (ka == Kind::Number) return num_cmp(*a.p, *b.p) < 0;
  return s_of(a) < s_of(b);
}

Value f_eq(const Args& a) {
  if (a.size() < 2) throw FuncError{"missing argument for comparison"};
  for (size_t k = 1; k < a.size(); ++k)
    if (basic_eq(a[0], a[k])) return own(true);
  return own(false);
}
Value f_ne(const Args& a) { return own(!basic_eq(a[0], a[1])); }
Value f_lt(const Args& a) { return own(basic_lt(a[0], a[1])); }
Value f_le(const Args& a) { return own(basic_lt(a[0], a[1]) || basic_eq(a[0], a[1])); }
Value f_gt(const Args& a) { return own(!(basic_lt(a[0], a[1]) || basic_eq(a[0], a[1]))); }
Value f_ge(const Args& a) { return own(!basic_lt(a[0], a[1])); }
Value f_not(const Args& a) { return own(!is_true(a[0])); }
Value f_and_or(const Args& a) { return a.back(); }  // evaluated lazily by the executor

// Absent and null have no length in Go either, but docker's nil slices and maps have length 0.
Value f_len(const Args& a) {
  if (!a[0].valid() || a[0].p->is_null()) return own(0);
  const json& j = *a[0].p;
  if (j.is_string() || j.is_array() || j.is_object()) return own(go_len(j));
  throw FuncError{"len of type " + go_type(j)};
}

// An integer index argument, as Go's indexArg.
int64_t index_arg(const Value& v, int64_t cap) {
  if (!v.valid() || v.p->is_null()) throw FuncError{"cannot index slice/array with nil"};
  if (!v.p->is_number_integer()) throw FuncError{"cannot index slice/array with type " + go_type(*v.p)};
  int64_t x = v.p->is_number_unsigned() && v.p->get<uint64_t>() > INT64_MAX ? -1 : i_of(v);
  if (x < 0 || x > cap) throw FuncError{"index out of range: " + std::to_string(x)};
  return x;
}

Value f_index(const Args& a) {
  Value item = a[0];
  if (!item.valid()) throw FuncError{"index of untyped nil"};
  for (size_t k = 1; k < a.size(); ++k) {
    const Value& ix = a[k];
    const json& j = *item.p;
    if (j.is_null()) {
      // docker's maps are mostly map[string]string, whose nil value indexes to "".
      if (ix.valid() && ix.p->is_string()) {
        item = own("");
        continue;
      }
      throw FuncError{"index of nil pointer"};
    }
    if (j.is_array() || j.is_string()) {
      int64_t x = index_arg(ix, static_cast<int64_t>(go_len(j)));
      if (x == static_cast<int64_t>(go_len(j))) throw FuncError{"index out of range: " + std::to_string(x)};
      item = j.is_array() ? child(item, j[x]) : own(static_cast<unsigned char>(s_of(item)[x]));
    } else if (j.is_object()) {
      if (!ix.valid() || !ix.p->is_string())
        throw FuncError{"value has type " + (ix.valid() ? go_type(*ix.p) : std::string("<nil>")) +
                        "; should be string"};
      auto it = j.find(s_of(ix));
      if (it != j.end()) {
        item = child(item, *it);
      } else {
        // Go yields the map's zero value: "" for docker's map[string]string, nil otherwise.
        bool strings = std::all_of(j.begin(), j.end(), [](const json& e) { return e.is_string(); });
        item = strings ? own("") : own(nullptr);
      }
    } else {
      throw FuncError{"can't index item of type " + go_type(j)};
    }
  }
  return item;
}

Value f_slice(const Args& a) {
  const Value& item = a[0];
  if (!item.valid() || item.p->is_null()) throw FuncError{"slice of untyped nil"};
  if (a.size() > 4) throw FuncError{"too many slice indexes: " + std::to_string(a.size() - 1)};
  const json& j = *item.p;
  if (!j.is_string() && !j.is_array()) throw FuncError{"can't slice item of type " + go_type(j)};
  if (j.is_string() && a.size() == 4) throw FuncError{"cannot 3-index slice a string"};
  auto cap = static_cast<int64_t>(go_len(j));
  int64_t idx[3] = {0, cap, cap};
  for (size_t k = 1; k < a.size(); ++k) idx[k - 1] = index_arg(a[k], cap);
  if (idx[0] > idx[1])
    throw FuncError{"invalid slice index: " + std::to_string(idx[0]) + " > " + std::to_string(idx[1])};
  if (a.size() == 4 && idx[1] > idx[2])
    throw FuncError{"invalid slice index: " + std::to_string(idx[1]) + " > " + std::to_string(idx[2])};
  if (j.is_string()) return own(s_of(item).substr(idx[0], idx[1] - idx[0]));
  return own(json(j.begin() + idx[0], j.begin() + idx[1]));
}

// fmt.Sprint: a space between operands when neither is a string.
std::string go_sprint(const Args& a, bool ln) {
  std::string out;
  bool prev_string = false;
  for (size_t k = 0; k < a.size(); ++k) {
    bool is_string = a[k].valid() && a[k].p->is_string();
    if (k > 0 && (ln || (!is_string && !prev_string))) out += ' ';
    fmt_arg(out, a[k].p, Spec{});
    prev_string = is_string;
  }
  if (ln) out += '\n';
  return out;
}

Value f_print(const Args& a) { return own(go_sprint(a, false)); }
Value f_println(const Args& a) { return own(go_sprint(a, true)); }
Value f_printf(const Args& a) {
  std::vector<const json*> rest;
  for (size_t k = 1; k < a.size(); ++k) rest.push_back(a[k].p);
  return own(go_sprintf(s_of(a[0]), rest));
}

std::string eval_args(const Args& a) {
  if (a.size() == 1 && a[0].valid() && a[0].p->is_string()) return s_of(a[0]);
  return go_sprint(a, false);
}

Value f_html(const Args& a) {
  std::string out;
  for (char c : eval_args(a)) {
    switch (c) {
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\0':
        out += "\xEF\xBF\xBD";
        break;
      default:
        out += c;
    }
  }
  return own(out);
}

Value f_urlquery(const Args& a) {
  std::string out;
  for (char ch : eval_args(a)) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~')
      out += ch;
    else if (c == ' ')
      out += '+';
    else
      out += "%" + hex(c, 2, true);
  }
  return own(out);
}

Value f_json(const Args& a) { return own(go_json(*a[0].p)); }

Value f_split(const Args& a) {
  const std::string& s = s_of(a[0]);
  const std::string& sep = s_of(a[1]);
  json out = json::array();
  if (sep.empty()) {  // one element per UTF-8 sequence
    for (size_t i = 0, len; i < s.size(); i += len) {
      decode_rune(s, i, len);
      out.push_back(s.substr(i, len));
    }
    return own(std::move(out));
  }
  size_t start = 0;
  for (size_t at; (at = s.find(sep, start)) != std::string::npos; start = at + sep.size())
    out.push_back(s.substr(start, at - start));
  out.push_back(s.substr(start));
  return own(std::move(out));
}

Value f_join(const Args& a) {
  std::string out;
  const std::string& sep = s_of(a[1]);
  bool first = true;
  for (const auto& e : *a[0].p) {
    if (!first) out += sep;
    first = false;
    out += e.get_ref<const std::string&>();
  }
  return own(out);
}

// Case mapping for the scripts that names are mostly written in (Go's unicode tables cover all).
char32_t to_upper(char32_t r) {
  if (r >= 'a' && r <= 'z') return r - 32;
  if (r == 0x131) return 'I';
  if (r == 0x3C2) return 0x3A3;
  if (r == 0xB5) return 0x39C;
  if ((r >= 0xE0 && r <= 0xFE && r != 0xF7) || (r >= 0x3B1 && r <= 0x3C9 && r != 0x3C2) || (r >= 0x430 && r <= 0x44F))
    return r - 32;
  if (r == 0xFF) return 0x178;
  if (r >= 0x450 && r <= 0x45F) return r - 80;
  if (((r >= 0x100 && r <= 0x12F) || (r >= 0x132 && r <= 0x137) || (r >= 0x14A && r <= 0x177)) && (r & 1)) return r - 1;
  if (((r >= 0x139 && r <= 0x148) || (r >= 0x179 && r <= 0x17E)) && !(r & 1)) return r - 1;
  return r;
}

char32_t to_lower(char32_t r) {
  if (r >= 'A' && r <= 'Z') return r + 32;
  if (r == 0x130) return 'i';
  if ((r >= 0xC0 && r <= 0xDE && r != 0xD7) || (r >= 0x391 && r <= 0x3A9 && r != 0x3A2) || (r >= 0x410 && r <= 0x42F))
    return r + 32;
  if (r == 0x178) return 0xFF;
  if (r >= 0x400 && r <= 0x40F) return r + 80;
  if (((r >= 0x100 && r <= 0x12F) || (r >= 0x132 && r <= 0x137) || (r >= 0x14A && r <= 0x177)) && !(r & 1))
    return r + 1;
  if (((r >= 0x139 && r <= 0x148) || (r >= 0x179 && r <= 0x17E)) && (r & 1)) return r + 1;
  return r;
}

std::string map_runes(const std::string& s, char32_t (*f)(char32_t)) {
  std::string out;
  for (size_t i = 0, len; i < s.size(); i += len) {
    char32_t r = decode_rune(s, i, len);
    if (r == kBadRune)
      out += s[i];
    else
      append_utf8(out, f(r));
  }
  return out;
}

// strings.Title: upper-cases the first letter of each word; letters, digits and '_' join words.
Value f_title(const Args& a) {
  const std::string& in = s_of(a[0]);
  std::string s;
  bool sep = true;
  for (size_t i = 0, len; i < in.size(); i += len) {
    char32_t r = decode_rune(in, i, len);
    if (r == kBadRune)
      s += in[i];
    else
      append_utf8(s, sep ? to_upper(r) : r);
    if (r < 0x80)
      sep = !is_alnum(static_cast<int>(r));
    else
      sep = r == 0x85 || r == 0xA0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200A) || r == 0x2028 || r == 0x2029 ||
            r == 0x202F || r == 0x205F || r == 0x3000;
  }
  return own(s);
}

Value f_lower(const Args& a) { return own(map_runes(s_of(a[0]), to_lower)); }
Value f_upper(const Args& a) { return own(map_runes(s_of(a[0]), to_upper)); }

// docker's padWithSpace: empty stays empty.
Value f_pad(const Args& a) {
  const std::string& s = s_of(a[0]);
  if (s.empty()) return own("");
  int64_t before = i_of(a[1]), after = i_of(a[2]);
  if (before < 0 || after < 0) throw FuncError{"strings: negative Repeat count"};
  return own(std::string(before, ' ') + s + std::string(after, ' '));
}

// docker's truncateWithLength: a byte count.
Value f_truncate(const Args& a) {
  const std::string& s = s_of(a[0]);
  int64_t n = i_of(a[1]);
  if (static_cast<int64_t>(s.size()) < n) return own(s);
  if (n < 0) throw FuncError{"runtime error: slice bounds out of range [:" + std::to_string(n) + "]"};
  return own(s.substr(0, n));
}

// docker's HeaderFunctions: a header cell shows the column title untouched.
Value f_header_same(const Args& a) { return a[0]; }

const std::map<std::string_view, Func>& functions() {
  using A = Arg;
  static const std::map<std::string_view, Func> kFuncs = {
      {"and", {{A::Value, A::Value}, true, f_and_or}},
      {"or", {{A::Value, A::Value}, true, f_and_or}},
      {"not", {{A::Value}, false, f_not}},
      {"len", {{A::Value}, false, f_len}},
      {"index", {{A::Value, A::Value}, true, f_index}},
      {"slice", {{A::Value, A::Value}, true, f_slice}},
      {"print", {{A::Any}, true, f_print}},
      {"println", {{A::Any}, true, f_println}},
      {"printf", {{A::String, A::Any}, true, f_printf}},
      {"html", {{A::Any}, true, f_html}},
      {"urlquery", {{A::Any}, true, f_urlquery}},
      {"eq", {{A::Value, A::Value}, true, f_eq}},
      {"ne", {{A::Value, A::Value}, false, f_ne}},
      {"lt", {{A::Value, A::Value}, false, f_lt}},
      {"le", {{A::Value, A::Value}, false, f_le}},
      {"gt", {{A::Value, A::Value}, false, f_gt}},
      {"ge", {{A::Value, A::Value}, false, f_ge}},
      {"json", {{A::Any}, false, f_json}},
      {"split", {{A::String, A::String}, false, f_split}},
      {"join", {{A::Strings, A::String}, false, f_join}},
      {"title", {{A::String}, false, f_title}},
      {"lower", {{A::String}, false, f_lower}},
      {"upper", {{A::String}, false, f_upper}},
      {"pad", {{A::String, A::Int, A::Int}, false, f_pad}},
      {"truncate", {{A::String, A::Int}, false, f_truncate}},
  };
  return kFuncs;
}

const std::map<std::string_view, Func>& header_functions() {
  using A = Arg;
  static const std::map<std::string_view, Func> kFuncs = {
      {"json", {{A::String}, false, f_header_same}},
      {"split", {{A::String, A::String}, false, f_header_same}},
      {"join", {{A::String, A::String}, false, f_header_same}},
      {"title", {{A::String}, false, f_header_same}},
      {"lower", {{A::String}, false, f_header_same}},
      {"upper", {{A::String}, false, f_header_same}},
      {"truncate", {{A::String, A::Int}, false, f_header_same}},
  };
  return kFuncs;
}

// ---------------------------------------------------------------------------------------------------------
// Parser (text/template/parse/parse.go).

class Parser {
 public:
  explicit Parser(std::string_view text) : items_(Lexer(text).run()) {}

  NodePtr parse() {
    auto root = make(NK::List, peek().pos);
    while (peek().typ != Tok::Eof) {
      NodePtr n = text_or_action();
      if (n->kind == NK::End || n->kind == NK::Else) errorf("unexpected " + str(*n));
      root->nodes.push_back(std::move(n));
    }
    return root;
  }

 private:
  std::vector<Item> items_;
  size_t idx_ = 0;
  int line_ = 1;  // line of the last token read, where Go reports a parse error
  int action_line_ = 0;
  int range_depth_ = 0;
  std::vector<std::string> vars_{"$"};

  const Item& next() {
    const Item& it = items_[std::min(idx_, items_.size() - 1)];
    ++idx_;
    line_ = it.line;
    return it;
  }
  void backup() { --idx_; }
  const Item& peek() {
    const Item& it = next();
    backup();
    return it;
  }
  const Item& next_non_space() {
    for (;;)
      if (const Item& it = next(); it.typ != Tok::Space) return it;
  }
  const Item& peek_non_space() {
    const Item& it = next_non_space();
    backup();
    return it;
  }

  [[noreturn]] void errorf(const std::string& msg) {
    throw UsageError("template parsing error: template: :" + std::to_string(line_) + ": " + msg);
  }

  [[noreturn]] void unexpected(const Item& it, std::string_view context) {
    if (it.typ == Tok::Error) {
      std::string extra;
      if (action_line_ != 0 && action_line_ != it.line) {
        extra = " in action started at :" + std::to_string(action_line_);
        if (it.val.ends_with(" action")) extra = extra.substr(std::string_view(" in action").size());
      }
      errorf(it.val + extra);
    }
    errorf("unexpected " + item_string(it) + " in " + std::string(context));
  }

  const Item& expect(Tok t, std::string_view context) {
    const Item& it = next_non_space();
    if (it.typ != t) unexpected(it, context);
    return it;
  }

  std::pair<NodePtr, NodePtr> item_list() {
    auto list = make(NK::List, peek_non_space().pos);
    while (peek_non_space().typ != Tok::Eof) {
      NodePtr n = text_or_action();
      if (n->kind == NK::End || n->kind == NK::Else) return {std::move(list), std::move(n)};
      list->nodes.push_back(std::move(n));
    }
    errorf("unexpected EOF");
  }

  NodePtr text_or_action() {
    const Item& it = next_non_space();
    if (it.typ == Tok::Text) {
      auto n = make(NK::Text, it.pos);
      n->text = it.val;
      return n;
    }
    if (it.typ == Tok::LeftDelim) {
      action_line_ = it.line;
      NodePtr n = action();
      action_line_ = 0;
      return n;
    }
    unexpected(it, "input");
  }

  NodePtr action() {
    const Item& it = next_non_space();
    switch (it.typ) {
      case Tok::Block:
      case Tok::Define:
      case Tok::Template:
        errorf("{{" + it.val + "}} is not supported");
      case Tok::Break:
      case Tok::Continue: {
        Item kw = it;
        std::string ctx = "{{" + kw.val + "}}";
        if (const Item& end = next_non_space(); end.typ != Tok::RightDelim) unexpected(end, ctx);
        if (range_depth_ == 0) errorf(ctx + " outside {{range}}");
        return make(kw.typ == Tok::Break ? NK::Break : NK::Continue, kw.pos);
      }
      case Tok::Else: {
        const Item& p = peek_non_space();
        if (p.typ == Tok::If || p.typ == Tok::With) return make(NK::Else, p.pos);
        return make(NK::Else, expect(Tok::RightDelim, "else").pos);
      }
      case Tok::End:
        return make(NK::End, expect(Tok::RightDelim, "end").pos);
      case Tok::If:
        return control(NK::If, "if");
      case Tok::Range:
        return control(NK::Range, "range");
      case Tok::With:
        return control(NK::With, "with");
      default:
        break;
    }
    backup();
    auto n = make(NK::Action, peek().pos);
    n->pipe = pipeline("command", Tok::RightDelim);
    return n;
  }

  NodePtr control(NK kind, const std::string& context) {
    size_t nvars = vars_.size();
    auto n = make(kind, 0);
    n->pipe = pipeline(context, Tok::RightDelim);
    n->pos = n->pipe->pos;
    if (kind == NK::Range) ++range_depth_;
    auto [list, next_node] = item_list();
    if (kind == NK::Range) --range_depth_;
    n->list = std::move(list);
    if (next_node->kind == NK::Else) {
      // "{{else if …}}" is "{{else}}{{if …}}…{{end}}" sharing the outer {{end}}; "else with" likewise.
      if ((kind == NK::If && peek().typ == Tok::If) || (kind == NK::With && peek().typ == Tok::With)) {
        next();
        n->else_list = make(NK::List, next_node->pos);
        n->else_list->nodes.push_back(control(kind, context));
      } else {
        auto [else_list, end] = item_list();
        if (end->kind != NK::End) errorf("expected end; found " + str(*end));
        n->else_list = std::move(else_list);
      }
    }
    vars_.resize(nvars);
    return n;
  }

  NodePtr pipeline(const std::string& context, Tok end) {
    auto pipe = make(NK::Pipe, peek_non_space().pos);
  decls:
    if (peek_non_space().typ == Tok::Variable) {
      size_t save = idx_;
      Item v = next();
      const Item& nx = peek_non_space();
      if (nx.typ == Tok::Assign || nx.typ == Tok::Declare) {
        pipe->is_assign = nx.typ == Tok::Assign;
        next_non_space();
        pipe->decl.push_back(v.val);
        vars_.push_back(v.val);
      } else if (nx.typ == Tok::Char && nx.val == ",") {
        next_non_space();
        pipe->decl.push_back(v.val);
        vars_.push_back(v.val);
        if (context == "range" && pipe->decl.size() < 2) {
          Tok t = peek_non_space().typ;
          if (t == Tok::Variable || t == Tok::RightDelim || t == Tok::RightParen) goto decls;
          errorf("range can only initialize variables");
        }
        errorf("too many declarations in " + context);
      } else {
        idx_ = save;  // the variable is an operand
      }
    }
    for (;;) {
      const Item& it = next_non_space();
      if (it.typ == end) {
        if (pipe->nodes.empty()) errorf("missing value for " + context);
        for (size_t k = 1; k < pipe->nodes.size(); ++k) {
          NK first = pipe->nodes[k]->nodes[0]->kind;
          if (first == NK::Bool || first == NK::Dot || first == NK::Nil || first == NK::Number || first == NK::String)
            errorf("non executable command in pipeline stage " + std::to_string(k + 1));
        }
        return pipe;
      }
      switch (it.typ) {
        case Tok::Bool:
        case Tok::CharConstant:
        case Tok::Dot:
        case Tok::Field:
        case Tok::Identifier:
        case Tok::Number:
        case Tok::Nil:
        case Tok::RawString:
        case Tok::String:
        case Tok::Variable:
        case Tok::LeftParen:
          backup();
          pipe->nodes.push_back(command());
          break;
        default:
          unexpected(it, context);
      }
    }
  }

  NodePtr command() {
    auto cmd = make(NK::Command, peek_non_space().pos);
    for (;;) {
      peek_non_space();
      if (NodePtr op = operand()) cmd->nodes.push_back(std::move(op));
      const Item& it = next();
      if (it.typ == Tok::Space) continue;
      if (it.typ == Tok::RightDelim || it.typ == Tok::RightParen)
        backup();
      else if (it.typ != Tok::Pipe)
        unexpected(it, "operand");
      break;
    }
    if (cmd->nodes.empty()) errorf("empty command");
    return cmd;
  }

  NodePtr operand() {
    NodePtr node = term();
    if (!node || peek().typ != Tok::Field) return node;
    size_t chain_pos = peek().pos;
    std::vector<std::string> fields;
    while (peek().typ == Tok::Field) fields.push_back(next().val.substr(1));
    switch (node->kind) {
      case NK::Field:
      case NK::Variable:
        node->ident.insert(node->ident.end(), fields.begin(), fields.end());
        node->pos = chain_pos;
        return node;
      case NK::Bool:
      case NK::String:
      case NK::Number:
      case NK::Nil:
      case NK::Dot:
        errorf("unexpected . after term " + go_quote(str(*node)));
      default: {
        auto chain = make(NK::Chain, chain_pos);
        chain->pipe = std::move(node);
        chain->ident = std::move(fields);
        return chain;
      }
    }
  }

  NodePtr term() {
    const Item& it = next_non_space();
    switch (it.typ) {
      case Tok::Identifier: {
        if (!functions().count(it.val)) errorf("function " + go_quote(it.val) + " not defined");
        auto n = make(NK::Identifier, it.pos);
        n->text = it.val;
        return n;
      }
      case Tok::Dot:
        return make(NK::Dot, it.pos);
      case Tok::Nil:
        return make(NK::Nil, it.pos);
      case Tok::Variable: {
        if (std::find(vars_.begin(), vars_.end(), it.val) == vars_.end())
          errorf("undefined variable " + go_quote(it.val));
        auto n = make(NK::Variable, it.pos);
        n->ident = {it.val};
        return n;
      }
      case Tok::Field: {
        auto n = make(NK::Field, it.pos);
        n->ident = {it.val.substr(1)};
        return n;
      }
      case Tok::Bool: {
        auto n = make(NK::Bool, it.pos);
        n->boolean = it.val == "true";
        return n;
      }
      case Tok::CharConstant:
      case Tok::Number:
        return number(it);
      case Tok::LeftParen:
        return pipeline("parenthesized pipeline", Tok::RightParen);
      case Tok::String:
      case Tok::RawString: {
        auto n = make(NK::String, it.pos);
        n->source = it.val;
        if (!go_unquote(it.val, n->text)) errorf("invalid syntax");
        return n;
      }
      default:
        backup();
        return nullptr;
    }
  }

  NodePtr number(const Item& it) {
    auto n = make(NK::Number, it.pos);
    n->source = it.val;
    if (it.typ == Tok::CharConstant) {
      std::string s;
      size_t len = 0;
      if (!go_unquote(it.val, s) || s.empty() || decode_rune(s, 0, len) == kBadRune || len != s.size())
        errorf("malformed character constant: " + it.val);
      n->is_int = n->is_uint = n->is_float = true;
      n->i = decode_rune(s, 0, len);
      n->f = static_cast<double>(n->i);
      return n;
    }
    std::string t;
    for (char c : it.val)
      if (c != '_') t += c;
    if (t.ends_with('i')) errorf("complex constants are not supported: " + go_quote(it.val));
    // Integers first, so that 0x1F and 017 take their Go meaning.
    std::string_view d = t;
    bool neg = false;
    if (!d.empty() && (d[0] == '+' || d[0] == '-')) neg = d[0] == '-', d.remove_prefix(1);
    int base = 10;
    if (d.size() > 1 && d[0] == '0') {
      char p = d[1];
      if (p == 'x' || p == 'X')
        base = 16, d.remove_prefix(2);
      else if (p == 'o' || p == 'O')
        base = 8, d.remove_prefix(2);
      else if (p == 'b' || p == 'B')
        base = 2, d.remove_prefix(2);
      else
        base = 8, d.remove_prefix(1);
    }
    uint64_t u = 0;
    auto r = std::from_chars(d.data(), d.data() + d.size(), u, base);
    if (!d.empty() && r.ec == std::errc() && r.ptr == d.data() + d.size()) {
      if (!neg && u <= static_cast<uint64_t>(INT64_MAX)) {
        n->is_int = true, n->i = static_cast<int64_t>(u);
      } else if (neg && u <= static_cast<uint64_t>(INT64_MAX) + 1) {
        n->is_int = true, n->i = static_cast<int64_t>(0 - u);
      } else if (!neg) {
        n->is_uint = true;
      }
      if (n->is_int || n->is_uint) {
        n->is_float = true;
        n->f = n->is_int ? static_cast<double>(n->i) : static_cast<double>(u);
        return n;
      }
    }
    std::string_view fl = t;
    if (!fl.empty() && fl[0] == '+') fl.remove_prefix(1);
    double f = 0;
    auto fr = std::from_chars(fl.data(), fl.data() + fl.size(), f);
    if (fl.empty() || fr.ec != std::errc() || fr.ptr != fl.data() + fl.size())
      errorf("illegal number syntax: " + go_quote(it.val));
    if (t.find_first_of(".eEpP") == std::string::npos) errorf("integer overflow: " + go_quote(it.val));
    n->is_float = true, n->f = f;
    if (std::trunc(f) == f && std::fabs(f) < 9.2e18) n->is_int = true, n->i = static_cast<int64_t>(f);
    return n;
  }
};

// ---------------------------------------------------------------------------------------------------------
// Execution (text/template/exec.go).

enum class Flow { Normal, Break, Continue };

class Exec {
 public:
  Exec(std::string_view text, bool missing_error, bool header)
      : text_(text), missing_error_(missing_error), header_(header) {}

  std::string out;

  void run(const Node& root, const json& data) {
    Value dot{&data, nullptr};
    vars_.push_back({"$", dot});
    walk(dot, root);
  }

 private:
  std::string_view text_;
  bool missing_error_, header_;
  const Node* at_ = nullptr;
  std::vector<std::pair<std::string, Value>> vars_;

  void at(const Node& n) { at_ = &n; }

  [[noreturn]] void fail(const std::string& msg) {
    if (!at_) throw Error("template: : " + msg);
    std::string_view before = text_.substr(0, std::min(at_->pos, text_.size()));
    size_t nl = before.rfind('\n');
    size_t col = nl == std::string_view::npos ? before.size() : before.size() - nl - 1;
    auto line = 1 + std::count(before.begin(), before.end(), '\n');
    throw Error("template: :" + std::to_string(line) + ":" + std::to_string(col) + ": executing \"\" at <" + str(*at_) +
                ">: " + msg);
  }

  Value var_value(const std::string& name) {
    for (auto it = vars_.rbegin(); it != vars_.rend(); ++it)
      if (it->first == name) return it->second;
    fail("undefined variable: " + name);
  }

  void set_var(const std::string& name, Value v) {
    for (auto it = vars_.rbegin(); it != vars_.rend(); ++it)
      if (it->first == name) {
        it->second = std::move(v);
        return;
      }
    fail("undefined variable: " + name);
  }

  Flow walk(const Value& dot, const Node& n) {
    at(n);
    switch (n.kind) {
      case NK::Action: {
        Value v = eval_pipeline(dot, *n.pipe);
        if (n.pipe->decl.empty()) {
          at(n);
          if (v.valid())
            fmt_arg(out, v.p, Spec{});
          else
            out += "<no value>";
        }
        return Flow::Normal;
      }
      case NK::List:
        for (const auto& c : n.nodes)
          if (Flow f = walk(dot, *c); f != Flow::Normal) return f;
        return Flow::Normal;
      case NK::Text:
        out += n.text;
        return Flow::Normal;
      case NK::If:
      case NK::With: {
        size_t mark = vars_.size();
        Value v = eval_pipeline(dot, *n.pipe);
        Flow f = Flow::Normal;
        if (is_true(v))
          f = walk(n.kind == NK::With ? v : dot, *n.list);
        else if (n.else_list)
          f = walk(dot, *n.else_list);
        vars_.resize(mark);
        return f;
      }
      case NK::Range:
        return walk_range(dot, n);
      case NK::Break:
        return Flow::Break;
      case NK::Continue:
        return Flow::Continue;
      default:
        fail("unknown node: " + str(n));
    }
  }

  Flow walk_range(const Value& dot, const Node& r) {
    size_t mark = vars_.size();
    Value val = eval_pipeline(dot, *r.pipe);
    size_t body_mark = vars_.size();
    const auto& decl = r.pipe->decl;
    // Returns whether to stop ({{break}}).
    auto one = [&](const Value& index, const Value& elem) {
      if (!decl.empty()) {
        if (r.pipe->is_assign)
          set_var(decl[0], decl.size() > 1 ? index : elem);
        else
          vars_[vars_.size() - 1].second = elem;
      }
      if (decl.size() > 1) {
        if (r.pipe->is_assign)
          set_var(decl[1], elem);
        else
          vars_[vars_.size() - 2].second = index;
      }
      Flow f = walk(elem, *r.list);
      vars_.resize(body_mark);
      return f == Flow::Break;
    };
    const json* j = val.p;
    bool ran = false;
    if (j && (j->is_array() || j->is_object()) && !j->empty()) {
      ran = true;
      if (j->is_array()) {
        for (size_t k = 0; k < j->size(); ++k)
          if (one(own(k), child(val, (*j)[k]))) break;
      } else {
        for (const auto& [k, v] : j->items())
          if (one(own(k), child(val, v))) break;
      }
    } else if (j && j->is_number_integer()) {  // Go 1.22: range over an int
      if (decl.size() > 1) fail("can't use " + fmt_v(j) + " to iterate over more than one variable");
      int64_t n = j->is_number_unsigned() ? static_cast<int64_t>(j->get<uint64_t>()) : j->get<int64_t>();
      ran = n > 0;
      for (int64_t k = 0; k < n; ++k)
        if (one(own(k), own(k))) break;
    } else if (j && !j->is_null() && !j->is_array() && !j->is_object()) {
      fail("range can't iterate over " + fmt_v(j));
    }
    Flow f = Flow::Normal;
    if (!ran && r.else_list) f = walk(dot, *r.else_list);
    vars_.resize(mark);
    return f;
  }

  Value eval_pipeline(const Value& dot, const Node& pipe) {
    at(pipe);
    std::optional<Value> v;
    for (const auto& cmd : pipe.nodes) v = eval_command(dot, *cmd, v);
    for (const auto& name : pipe.decl) {
      if (pipe.is_assign)
        set_var(name, *v);
      else
        vars_.push_back({name, *v});
    }
    return *v;
  }

  void not_a_function(const std::vector<NodePtr>& args, const std::optional<Value>& final) {
    if (args.size() > 1 || final) fail("can't give argument to non-function " + str(*args[0]));
  }

  using NodeList = std::vector<const Node*>;

  static NodeList rest(const std::vector<NodePtr>& nodes) {
    NodeList out;
    for (size_t k = 1; k < nodes.size(); ++k) out.push_back(nodes[k].get());
    return out;
  }

  Value eval_command(const Value& dot, const Node& cmd, const std::optional<Value>& final) {
    const Node& first = *cmd.nodes[0];
    bool has_args = cmd.nodes.size() > 1 || final;
    switch (first.kind) {
      case NK::Field:
        return eval_field_chain(dot, first.ident, has_args, &first);
      case NK::Chain: {
        at(first);
        Value recv = eval_arg(dot, nullptr, *first.pipe);
        return eval_field_chain(recv, first.ident, has_args, nullptr);
      }
      case NK::Identifier:
        return eval_function(dot, first, cmd, rest(cmd.nodes), final);
      case NK::Pipe:
        not_a_function(cmd.nodes, final);
        return eval_pipeline(dot, first);
      case NK::Variable:
        return eval_variable(first, has_args, cmd.nodes, final);
      default:
        break;
    }
    at(first);
    not_a_function(cmd.nodes, final);
    switch (first.kind) {
      case NK::Bool:
        return own(first.boolean);
      case NK::Dot:
        return dot;
      case NK::Nil:
        fail("nil is not a command");
      case NK::Number:
        return ideal_constant(first);
      case NK::String:
        return own(first.text);
      default:
        fail("can't evaluate command " + go_quote(str(first)));
    }
  }

  Value ideal_constant(const Node& n) {
    at(n);
    bool hex_int = n.source.size() > 2 && n.source[0] == '0' && (n.source[1] == 'x' || n.source[1] == 'X') &&
                   n.source.find_first_of("pP") == std::string::npos;
    if (n.is_float && !hex_int && n.source[0] != '\'' && n.source.find_first_of(".eEpP") != std::string::npos)
      return own(n.f);
    if (n.is_int) return own(n.i);
    if (n.is_uint) fail(n.source + " overflows int");
    return {};
  }

  Value eval_variable(const Node& v, bool has_args, const std::vector<NodePtr>& args,
                      const std::optional<Value>& final) {
    at(v);
    Value value = var_value(v.ident[0]);
    if (v.ident.size() == 1) {
      if (has_args) not_a_function(args, final);
      return value;
    }
    std::vector<std::string> fields(v.ident.begin() + 1, v.ident.end());
    return eval_field_chain(value, fields, has_args, nullptr);
  }

  // .A.B.C from recv; only the last field could take arguments (methods, which JSON has none of).
  // Errors point at node, or (like Go for a chain) at the last node evaluated.
  Value eval_field_chain(Value recv, const std::vector<std::string>& ident, bool has_args, const Node* node) {
    if (node) at(*node);
    for (size_t k = 0; k < ident.size(); ++k) recv = eval_field(ident[k], k + 1 == ident.size() && has_args, recv);
    return recv;
  }

  Value eval_field(const std::string& name, bool has_args, const Value& recv) {
    if (!recv.valid()) {
      if (missing_error_) fail("nil data; no entry for key " + go_quote(name));
      return {};
    }
    const json& r = *recv.p;
    if (r.is_null()) fail("nil pointer evaluating interface {}." + name);
    if (r.is_object()) {
      if (has_args) fail(name + " is not a method but has arguments");
      if (auto it = r.find(name); it != r.end()) return child(recv, *it);
      if (missing_error_) fail("map has no entry for key " + go_quote(name));
      return {};
    }
    fail("can't evaluate field " + name + " in type " + go_type(r));
  }

  const Func& lookup(const std::string& name) {
    if (header_)
      if (auto it = header_functions().find(name); it != header_functions().end()) return it->second;
    auto it = functions().find(name);
    if (it == functions().end()) fail(go_quote(name) + " is not a defined function");
    return it->second;
  }

  Value eval_function(const Value& dot, const Node& ident, const Node& cmd, const NodeList& args,
                      const std::optional<Value>& final) {
    at(ident);
    const std::string& name = ident.text;
    const Func& fn = lookup(name);
    size_t num_in = args.size() + (final ? 1 : 0);
    size_t num_fixed = args.size();
    if (fn.variadic) {
      num_fixed = fn.params.size() - 1;
      if (num_in < num_fixed)
        fail("wrong number of args for " + name + ": want at least " + std::to_string(num_fixed) + " got " +
             std::to_string(args.size()));
    } else if (num_in != fn.params.size()) {
      fail("wrong number of args for " + name + ": want " + std::to_string(fn.params.size()) + " got " +
           std::to_string(num_in));
    }
    if (name == "and" || name == "or") {  // they stop at the first argument that decides
      Value v;
      for (const Node* a : args) {
        v = eval_arg(dot, &fn.params[0], *a);
        if (is_true(v) == (name == "or")) return v;
      }
      if (final) v = *final;
      return v;
    }
    Args argv;
    size_t k = 0;
    for (; k < num_fixed && k < args.size(); ++k) argv.push_back(eval_arg(dot, &fn.params[k], *args[k]));
    if (fn.variadic)
      for (; k < args.size(); ++k) argv.push_back(eval_arg(dot, &fn.params.back(), *args[k]));
    if (final) {
      Arg t = fn.params.back();
      if (fn.variadic && num_in - 1 < num_fixed) t = fn.params[num_in - 1];
      argv.push_back(validate(*final, t));
    }
    try {
      return fn.fn(argv);
    } catch (const FuncError& e) {
      at(cmd);
      fail("error calling " + name + ": " + e.message);
    }
  }

  // Go's evalArg; type nullptr evaluates without conversion (a chain's operand).
  Value eval_arg(const Value& dot, const Arg* type, const Node& n) {
    at(n);
    auto check = [&](Value v) { return type ? validate(std::move(v), *type) : v; };
    switch (n.kind) {
      case NK::Dot:
        return check(dot);
      case NK::Nil:
        if (!type || *type == Arg::Value) return {};
        if (*type == Arg::Any) return own(nullptr);
        if (*type == Arg::Strings) return own(json::array());
        fail("cannot assign nil to " + arg_name(*type));
      case NK::Field:
        return check(eval_field_chain(dot, n.ident, false, &n));
      case NK::Variable:
        return check(eval_variable(n, false, {}, std::nullopt));
      case NK::Pipe:
        return check(eval_pipeline(dot, n));
      case NK::Identifier:
        return check(eval_function(dot, n, n, {}, std::nullopt));
      case NK::Chain: {
        Value recv = eval_arg(dot, nullptr, *n.pipe);
        return check(eval_field_chain(recv, n.ident, false, nullptr));
      }
      default:
        break;
    }
    Arg t = type ? *type : Arg::Value;
    switch (t) {
      case Arg::Int:
        if (n.kind == NK::Number && n.is_int) return own(n.i);
        fail("expected integer; found " + str(n));
      case Arg::String:
        if (n.kind == NK::String) return own(n.text);
        fail("expected string; found " + str(n));
      case Arg::Strings:
        fail("can't handle " + str(n) + " for arg of type []string");
      case Arg::Any:
      case Arg::Value:
        if (n.kind == NK::Bool) return own(n.boolean);
        if (n.kind == NK::Number) return ideal_constant(n);
        if (n.kind == NK::String) return own(n.text);
        break;
    }
    fail("can't handle assignment of " + str(n) + " to empty interface argument");
  }

  // Go's validateType.
  Value validate(Value v, Arg t) {
    if (!v.valid()) {
      switch (t) {
        case Arg::Value:
          return v;
        case Arg::Any:
          return own(nullptr);
        case Arg::Strings:
          return own(json::array());
        default:
          fail("invalid value; expected " + arg_name(t));
      }
    }
    const json& j = *v.p;
    auto wrong = [&]() { fail("wrong type for value; expected " + arg_name(t) + "; got " + go_type(j)); };
    switch (t) {
      case Arg::Value:
      case Arg::Any:
        return v;
      case Arg::String:
        if (!j.is_string()) wrong();
        return v;
      case Arg::Int:
        if (!j.is_number_integer()) wrong();
        return v;
      case Arg::Strings:
        if (j.is_null()) return own(json::array());  // docker's nil []string
        if (!j.is_array() || !std::all_of(j.begin(), j.end(), [](const json& e) { return e.is_string(); })) wrong();
        return v;
    }
    return v;
  }
};

struct Compiled {
  std::string text;
  NodePtr root;
};

Compiled compile(std::string_view text) {
  Compiled c{std::string(text), nullptr};
  c.root = Parser(c.text).parse();
  return c;
}

std::string execute(const Compiled& t, const json& data, bool missing_error) {
  Exec e(t.text, missing_error, false);
  e.run(*t.root, data);
  return std::move(e.out);
}

// docker ignores a failing header and keeps what was written before the failure.
std::string execute_header(const Compiled& t, const json& data) {
  Exec e(t.text, false, true);
  try {
    e.run(*t.root, data);
  } catch (const Error&) {
  }
  return std::move(e.out);
}

}  // namespace

std::string render_template(std::string_view tmpl, const json& data, MissingKey missing) {
  return execute(compile(tmpl), data, missing == MissingKey::Error);
}

std::string format_list(std::string_view format, std::string_view default_table_format, const std::vector<json>& rows,
                        const std::map<std::string, std::string>& headers) {
  std::string f(format);
  if (f.empty() || f == "table") {
    f = default_table_format;
    if (!f.starts_with("table")) f = "table " + f;
  }
  bool table = f.starts_with("table");
  std::string body = table ? f.substr(5) : f == "json" ? "{{json .}}" : f;
  // docker's preFormat: trim spaces, then turn the two characters \t and \n into a tab and a newline.
  size_t b = body.find_first_not_of(' ');
  body = b == std::string::npos ? "" : body.substr(b, body.find_last_not_of(' ') - b + 1);
  std::string tmpl;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\\' && i + 1 < body.size() && (body[i + 1] == 't' || body[i + 1] == 'n')) {
      tmpl += body[++i] == 't' ? '\t' : '\n';
    } else {
      tmpl += body[i];
    }
  }
  Compiled t = compile(tmpl);
  std::string out;
  for (const auto& row : rows) {
    try {
      out += execute(t, row, true);
    } catch (const Error& e) {
      throw Error(std::string("template parsing error: ") + e.what());
    }
    out += '\n';
  }
  if (!table) return out;
  json head = json::object();
  for (const auto& [k, v] : headers) head[k] = v;
  return tabwrite(execute_header(t, head) + "\n" + out);
}

std::string format_inspect(std::string_view format, const std::vector<json>& items) {
  if (format.empty() || format == "json") {
    if (items.empty()) return "[]\n";
    return go_json(json(items), format.empty() ? 4 : -1) + "\n";
  }
  Compiled t = compile(format);
  std::string out;
  for (const auto& item : items) {
    try {
      out += execute(t, item, true);
    } catch (const Error& e) {
      throw Error(std::string("template parsing error: ") + e.what());
    }
    out += '\n';
  }
  return out.empty() ? "\n" : out;
}

std::string tabwrite(std::string_view text) {
  constexpr int kMinWidth = 10, kPadding = 3;
  struct Cell {
    size_t start, size;
    int width;
  };
  std::vector<std::vector<Cell>> lines(1);
  std::string out;
  std::vector<int> widths;
  auto write_lines = [&](size_t line0, size_t line1) {
    for (size_t i = line0; i < line1; ++i) {
      const auto& line = lines[i];
      for (size_t j = 0; j < line.size(); ++j) {
        out.append(text.substr(line[j].start, line[j].size));
        if (j < widths.size()) out.append(widths[j] - line[j].width, ' ');
      }
      if (i + 1 < lines.size()) out += '\n';
    }
  };
  // Elastic tabstops: a column is a run of consecutive lines that have a cell there (the last cell of a
  // line, not ended by a tab, belongs to no column).
  auto format = [&](auto& self, size_t line0, size_t line1) -> void {
    size_t column = widths.size();
    for (size_t t = line0; t < line1; ++t) {
      if (column + 1 >= lines[t].size()) continue;
      write_lines(line0, t);
      line0 = t;
      int width = kMinWidth;
      for (; t < line1 && column + 1 < lines[t].size(); ++t) width = std::max(width, lines[t][column].width + kPadding);
      widths.push_back(width);
      self(self, line0, t);
      widths.pop_back();
      line0 = t;
    }
    write_lines(line0, line1);
  };
  auto flush = [&]() {
    format(format, 0, lines.size());
    lines.assign(1, {});
  };
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '\t' && c != '\v' && c != '\n' && c != '\f') continue;
    lines.back().push_back({start, i - start, display_width(text.substr(start, i - start))});
    start = i + 1;
    if (c == '\n' || c == '\f') {
      size_t cells = lines.back().size();
      lines.emplace_back();
      // A formfeed ends every column (Go flushes there); a one-cell line ends them anyway.
      if (c == '\f' || cells == 1) flush();
    }
  }
  if (start < text.size()) lines.back().push_back({start, text.size() - start, display_width(text.substr(start))});
  flush();
  return out;
}

std::string go_json(const json& value, int indent) {
  std::string out;
  go_json_to(out, value, indent, 0);
  return out;
}

}  // namespace berth::cli
