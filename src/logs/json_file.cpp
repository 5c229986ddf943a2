// The json-file writer, format_time and the --log-opt parsers. Linked into the static berth-shim
// (resident memory budget 1 MiB), so: no nlohmann::json, no iostreams, no stdio formatting; the
// per-writer state is a few small strings.
#include "logs/json_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <string>
#include <vector>

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/time_text.hpp"

namespace berth::logs {

namespace {

// Docker's copier buffer: a line that has not ended after this many bytes is logged as a partial
// message (no trailing newline) and the rest continues in the next entry.
constexpr size_t kPartialSize = 16 * 1024;

// Encoded output kept before writing it out within one write() call.
constexpr size_t kMaxBuffered = 64 * 1024;

constexpr char kHex[] = "0123456789abcdef";

void append_unicode_escape(std::string& out, unsigned code) {
  out += "\\u";
  out += kHex[(code >> 12) & 0xF];
  out += kHex[(code >> 8) & 0xF];
  out += kHex[(code >> 4) & 0xF];
  out += kHex[code & 0xF];
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Length of the valid UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0 when it is invalid;
// the same rules as Go's utf8.DecodeRune (no overlongs, no surrogates, nothing above U+10FFFF).
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto at = [&](size_t k) -> unsigned char { return static_cast<unsigned char>(s[k]); };
  const unsigned char b = at(i);
  const size_t left = s.size() - i;
  if (b >= 0xC2 && b <= 0xDF) return left >= 2 && is_continuation(at(i + 1)) ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    if (left < 3) return 0;
    const unsigned char lo = b == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = b == 0xED ? 0x9F : 0xBF;
    return at(i + 1) >= lo && at(i + 1) <= hi && is_continuation(at(i + 2)) ? 3 : 0;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    if (left < 4) return 0;
    const unsigned char lo = b == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = b == 0xF4 ? 0x8F : 0xBF;
    return at(i + 1) >= lo && at(i + 1) <= hi && is_continuation(at(i + 2)) && is_continuation(at(i + 3)) ? 4 : 0;
  }
  return 0;
}

// A JSON string exactly as docker's json-file writes it (jsonlog's ffjson-derived encoder): short
// escapes for quote, backslash, \n and \r; every other control character and < > & as \u00XX (so
// a tab is \u0009, as in docker's files); U+2028/U+2029 escaped; each invalid UTF-8 byte replaced
// by \ufffd.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  size_t start = 0;
  size_t i = 0;
  const auto copy_pending = [&] { out.append(s.data() + start, i - start); };
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if (b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&') {
        ++i;
        continue;
      }
      copy_pending();
      if (b == '"' || b == '\\') {
        out += '\\';
        out += static_cast<char>(b);
      } else if (b == '\n') {
        out += "\\n";
      } else if (b == '\r') {
        out += "\\r";
      } else {
        append_unicode_escape(out, b);
      }
      start = ++i;
      continue;
    }
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      copy_pending();
      out += "\\ufffd";
      start = ++i;
      continue;
    }
    // U+2028 and U+2029 (E2 80 A8/A9) end lines in JavaScript; Go escapes them.
    if (n == 3 && b == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xA8) {
      copy_pending();
      append_unicode_escape(out, 0x2028u | (static_cast<unsigned char>(s[i + 2]) & 1u));
      i += 3;
      start = i;
      continue;
    }
    i += n;
  }
  copy_pending();
  out += '"';
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

std::string format_time(int64_t time_ns) {
  std::string out;
  append_rfc3339(out, time_ns, Fraction::Trimmed);
  return out;
}

// Docker's json-file parses max-size with go-units' FromHumanSize: decimal multiples (k = 1000,
// m = 1000^2, …), an optional "b"/"ib" after the unit ("10MiB" is still 10,000,000), fractions
// allowed ("1.5m"), one optional space before the unit, and the result must be positive.
int64_t parse_max_size(std::string_view text) {
  const auto invalid = [&](std::string_view why) {
    return Error("invalid max-size \"" + std::string(text) + "\": " + std::string(why));
  };
  size_t i = 0;
  long double whole = 0;
  bool digits = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    whole = whole * 10 + (text[i++] - '0');
    digits = true;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    long double scale = 0.1L;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      whole += (text[i++] - '0') * scale;
      scale /= 10;
      digits = true;
    }
  }
  if (!digits) throw invalid("expected a size such as 10m, 1g or 500k");
  if (i < text.size() && text[i] == ' ') ++i;
  std::string suffix;
  for (; i < text.size(); ++i) suffix += ascii_lower(text[i]);
  long double multiplier = 1;
  if (!suffix.empty() && suffix != "b") {
    static constexpr std::string_view kUnits = "kmgtp";
    const size_t unit = kUnits.find(suffix[0]);
    const std::string_view rest = std::string_view(suffix).substr(1);
    if (unit == std::string_view::npos || !(rest.empty() || rest == "b" || rest == "ib"))
      throw invalid("unknown unit \"" + suffix + "\" (use b, k, m, g, t or p)");
    for (size_t k = 0; k <= unit; ++k) multiplier *= 1000;
  }
  const long double bytes = whole * multiplier;
  if (bytes >= static_cast<long double>(INT64_MAX)) throw invalid("too large");
  const auto result = static_cast<int64_t>(bytes);
  if (result <= 0) throw invalid("max-size must be a positive number");
  return result;
}

int parse_max_file(std::string_view text) {
  const auto invalid = [&](std::string_view why) {
    return Error("invalid max-file \"" + std::string(text) + "\": " + std::string(why));
  };
  size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
  if (i == text.size()) throw invalid("expected a number");
  int64_t value = 0;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') throw invalid("expected a number");
    value = value * 10 + (text[i] - '0');
    if (value > INT_MAX) throw invalid("too large");
  }
  if (negative) value = -value;
  if (value < 1) throw invalid("max-file cannot be less than 1");
  return static_cast<int>(value);
}

struct JsonFileWriter::Impl {
  struct Partial {
    std::string stream;
    std::string data;  // the unterminated tail, always < kPartialSize bytes between calls
  };

  std::string path;
  Limits limits;
  UniqueFd fd;
  int64_t size = 0;  // of the live file, counting the encoded bytes not yet written out
  std::vector<Partial> partials;
  std::string out;  // entries encoded during one write()/flush() (up to kMaxBuffered), written out before it returns

  void open_live() {
    fd.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd) throw_errno("open " + path);
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) throw_errno("stat " + path);
    size = st.st_size;
  }

  Partial& partial(std::string_view stream) {
    for (auto& p : partials)
      if (p.stream == stream) return p;
    partials.push_back({std::string(stream), {}});
    return partials.back();
  }

  void write_out(size_t n) {
    size_t done = 0;
    while (done < n) {
      const ssize_t w = ::write(fd.get(), out.data() + done, n - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw_errno("write " + path);
      }
      done += static_cast<size_t>(w);
    }
    out.erase(0, n);
  }

  void rotate() {
    if (limits.max_files <= 1) {
      // Nothing is kept: start the live file over (O_APPEND writes then land at offset 0).
      if (ftruncate(fd.get(), 0) != 0) throw_errno("truncate " + path);
      size = 0;
      return;
    }
    // Oldest first, so every rename replaces a file that has already moved on (or is dropped).
    for (int i = limits.max_files - 1; i >= 1; --i) {
      const std::string from = i == 1 ? path : path + "." + std::to_string(i - 1);
      const std::string to = path + "." + std::to_string(i);
      if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) throw_errno("rename " + from + " to " + to);
    }
    open_live();
  }

  void emit(std::string_view stream, std::string_view text, int64_t time_ns) {
    const size_t begin = out.size();
    out += "{\"log\":";
    append_json_string(out, text);
    out += ",\"stream\":";
    append_json_string(out, stream);
    out += ",\"time\":\"";
    append_rfc3339(out, time_ns, Fraction::Trimmed);
    out += "\"}\n";
    const auto length = static_cast<int64_t>(out.size() - begin);
    // Rotate before an entry that would overflow the live file; an empty file takes any entry
    // whole, however large.
    if (limits.max_size > 0 && size > 0 && size + length > limits.max_size) {
      write_out(begin);
      rotate();
    }
    size += length;
    // Bounds the shim's memory when one read brings a lot of output; entries stay whole.
    if (out.size() >= kMaxBuffered) write_out(out.size());
  }

  // Bytes without a newline: kept in the stream's tail, logged in kPartialSize pieces.
  void add_unterminated(Partial& p, std::string_view rest, int64_t time_ns) {
    if (!p.data.empty()) {
      const size_t take = std::min(rest.size(), kPartialSize - p.data.size());
      p.data.append(rest.substr(0, take));
      rest.remove_prefix(take);
      if (p.data.size() < kPartialSize) return;
      emit(p.stream, p.data, time_ns);
      p.data.clear();
    }
    while (rest.size() >= kPartialSize) {
      emit(p.stream, rest.substr(0, kPartialSize), time_ns);
      rest.remove_prefix(kPartialSize);
    }
    p.data.assign(rest);
  }

  // A segment ending with '\n' (the kept tail, if any, comes first).
  void add_line(Partial& p, std::string_view line, int64_t time_ns) {
    if (p.data.empty() && line.size() <= kPartialSize) {
      emit(p.stream, line, time_ns);  // the common case: no copy
      return;
    }
    add_unterminated(p, line.substr(0, line.size() - 1), time_ns);
    p.data += '\n';
    emit(p.stream, p.data, time_ns);
    p.data.clear();
  }
};

JsonFileWriter::JsonFileWriter(std::string path, Limits limits) : impl_(new Impl) {
  impl_->path = std::move(path);
  impl_->limits = limits;
  try {
    impl_->open_live();
  } catch (...) {
    delete impl_;
    throw;
  }
}

JsonFileWriter::~JsonFileWriter() { delete impl_; }

void JsonFileWriter::write(std::string_view stream, std::string_view data, int64_t time_ns) {
  Impl& im = *impl_;
  im.out.clear();  // drops whatever a failed earlier call left behind
  Impl::Partial& p = im.partial(stream);
  while (!data.empty()) {
    const size_t nl = data.find('\n');
    if (nl == std::string_view::npos) {
      im.add_unterminated(p, data, time_ns);
      break;
    }
    im.add_line(p, data.substr(0, nl + 1), time_ns);
    data.remove_prefix(nl + 1);
  }
  // One write(2) per call (plus one per rotation): readers see whole entries, and everything is in
  // the file when this returns, without an fsync.
  im.write_out(im.out.size());
}

void JsonFileWriter::flush(int64_t time_ns) {
  Impl& im = *impl_;
  im.out.clear();
  for (auto& p : im.partials) {
    if (p.data.empty()) continue;
    im.emit(p.stream, p.data, time_ns);
    p.data.clear();
  }
  im.write_out(im.out.size());
}

}  // namespace berth::logs
