// The json-file reader (engine side: `berth logs`, the logs API) and --since/--until parsing.
// Lines are pre-filtered on their "stream" and "time" fields by plain substring search (safe: a
// quote inside a JSON string value is always escaped, so `"time":"` only matches a real key), and
// only entries that are delivered are parsed as JSON.
#include "logs/json_file.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "util/docker_syntax.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

namespace berth::logs {

namespace {

constexpr int64_t kNsPerSec = 1'000'000'000;
constexpr size_t kReadChunk = 64 * 1024;

// ---- times ----

// Days since 1970-01-01 of a proleptic Gregorian date (the usual era/day-of-era arithmetic).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int64_t y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly n digits at s[pos…]; advances pos.
bool take_digits(std::string_view s, size_t& pos, size_t n, int& value) {
  if (pos + n > s.size()) return false;
  value = 0;
  for (size_t k = 0; k < n; ++k) {
    const char c = s[pos + k];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  pos += n;
  return true;
}

bool take_char(std::string_view s, size_t& pos, char c) {
  if (pos < s.size() && s[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

// The layouts docker's --since/--until accept, RFC3339 included:
//   2006-01-02[T15[:04[:05[.999999999]]]][Z|±07:00]
// strict (the "time" field of an entry) requires the seconds and a zone. Without a zone the time
// is local: TZ's zone when $TZ is set, else UTC (berth runs as a daemon/CLI on servers where UTC
// is the sane default; docker would use /etc/localtime).
bool parse_timestamp(std::string_view s, bool strict, int64_t& out_ns) {
  size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!take_digits(s, pos, 4, year) || !take_char(s, pos, '-') || !take_digits(s, pos, 2, month) ||
      !take_char(s, pos, '-') || !take_digits(s, pos, 2, day))
    return false;
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return false;
  int64_t frac_ns = 0;
  int time_parts = 0;
  if (take_char(s, pos, 'T')) {
    if (!take_digits(s, pos, 2, hour)) return false;
    time_parts = 1;
    if (take_char(s, pos, ':')) {
      if (!take_digits(s, pos, 2, minute)) return false;
      time_parts = 2;
      if (take_char(s, pos, ':')) {
        if (!take_digits(s, pos, 2, second)) return false;
        time_parts = 3;
        if (take_char(s, pos, '.')) {
          int64_t scale = kNsPerSec;
          size_t digits = 0;
          for (; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++digits) {
            scale /= 10;  // digits past nanoseconds are dropped, as Go does
            frac_ns += (s[pos] - '0') * scale;
          }
          if (digits == 0) return false;
        }
      }
    }
    if (hour > 23 || minute > 59 || second > 59) return false;
  }
  if (strict && time_parts < 3) return false;
  bool zoned = false;
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
    zoned = true;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const bool negative = s[pos++] == '-';
    int oh = 0, om = 0;
    if (!take_digits(s, pos, 2, oh) || !take_char(s, pos, ':') || !take_digits(s, pos, 2, om) || oh > 23 || om > 59)
      return false;
    offset_s = (oh * 3600 + om * 60) * (negative ? -1 : 1);
    zoned = true;
  }
  if (pos != s.size() || (strict && !zoned)) return false;
  int64_t secs = 0;
  if (zoned || std::getenv("TZ") == nullptr) {
    secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  } else {
    struct tm tm {};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    tm.tm_isdst = -1;
    const time_t t = mktime(&tm);
    if (t == static_cast<time_t>(-1)) return false;
    secs = t;
  }
  // int64 nanoseconds cover 1677…2262.
  if (secs >= INT64_MAX / kNsPerSec || secs <= INT64_MIN / kNsPerSec) return false;
  out_ns = secs * kNsPerSec + frac_ns;
  return true;
}

// Unix seconds with an optional fraction ("1700000000", "1700000000.5"), as docker passes them.
bool parse_unix_time(std::string_view s, int64_t& out_ns) {
  const size_t dot = s.find('.');
  const std::string_view whole = s.substr(0, dot);
  if (whole.empty() || whole.size() > 11) return false;
  int64_t secs = 0;
  for (const char c : whole) {
    if (c < '0' || c > '9') return false;
    secs = secs * 10 + (c - '0');
  }
  if (secs >= INT64_MAX / kNsPerSec) return false;
  int64_t frac = 0;
  if (dot != std::string_view::npos) {
    const std::string_view digits = s.substr(dot + 1);
    if (digits.empty()) return false;
    int64_t scale = kNsPerSec;
    for (const char c : digits) {
      if (c < '0' || c > '9') return false;
      scale /= 10;
      frac += (c - '0') * scale;
    }
  }
  out_ns = secs * kNsPerSec + frac;
  return true;
}

// ---- files ----

struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};

std::optional<FileId> stat_id(const std::string& name) {
  struct stat st {};
  if (::stat(name.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw_errno("stat " + name);
  }
  return FileId{st.st_dev, st.st_ino};
}

struct LogFile {
  UniqueFd fd;
  FileId id;
  std::string name;     // where it was opened, for messages
  int64_t offset = 0;   // next byte to read
  std::string pending;  // bytes read past the last complete line (a write in progress)
};

std::optional<LogFile> open_log(const std::string& name) {
  UniqueFd fd(::open(name.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw_errno("open " + name);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) throw_errno("stat " + name);
  LogFile f;
  f.fd = std::move(fd);
  f.id = {st.st_dev, st.st_ino};
  f.name = name;
  return f;
}

int64_t file_size(const LogFile& f) {
  struct stat st {};
  if (fstat(f.fd.get(), &st) != 0) throw_errno("stat " + f.name);
  return st.st_size;
}

// Iterates the complete lines of [0, end) of a file from the last one backwards, reading 64 KiB
// blocks, so that --tail costs what it shows rather than the whole file.
class ReverseLines {
 public:
  ReverseLines(const LogFile& f, int64_t end) : f_(f), pos_(end) {}

  // Drops a trailing line without its newline (being written); returns where complete lines end.
  int64_t trim_incomplete() {
    for (;;) {
      const size_t nl = std::string_view(buf_).substr(0, end_).rfind('\n');
      if (nl != std::string_view::npos) {
        end_ = nl + 1;
        return pos_ + static_cast<int64_t>(end_);
      }
      if (pos_ == 0) {
        end_ = 0;
        return 0;
      }
      load_more();
    }
  }

  // The previous line (without its newline) and its offset; valid until the next call.
  bool next(std::string_view& line, int64_t& offset) {
    for (;;) {
      if (end_ == 0) {
        if (pos_ == 0) return false;
        load_more();
        continue;
      }
      const size_t newline = end_ - 1;  // terminates the line we are after
      const size_t prev = newline == 0 ? std::string_view::npos : std::string_view(buf_).rfind('\n', newline - 1);
      if (prev == std::string_view::npos && pos_ > 0) {
        load_more();
        continue;
      }
      const size_t begin = prev == std::string_view::npos ? 0 : prev + 1;
      line = std::string_view(buf_).substr(begin, newline - begin);
      offset = pos_ + static_cast<int64_t>(begin);
      end_ = begin;
      return true;
    }
  }

 private:
  void load_more() {
    const auto n = static_cast<size_t>(std::min<int64_t>(pos_, kReadChunk));
    std::string block(n, '\0');
    size_t done = 0;
    while (done < n) {
      const ssize_t r = pread(f_.fd.get(), block.data() + done, n - done, pos_ - static_cast<int64_t>(n - done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw_errno("read " + f_.name);
      if (r == 0) throw Error("read " + f_.name + ": file shrank while reading");
      done += static_cast<size_t>(r);
    }
    // Only the part before end_ is still wanted.
    buf_.resize(end_);
    buf_.insert(0, block);
    end_ += n;
    pos_ -= static_cast<int64_t>(n);
  }

  const LogFile& f_;
  int64_t pos_;  // file offset of buf_[0]
  std::string buf_;
  size_t end_ = 0;  // buf_[0, end_) is not yet returned
};

// Wakes the follower when something changes in the log's directory (writes, renames, creations),
// or after 100 ms at the latest so stopped() is polled; plain sleeping if inotify is unavailable.
class DirWatcher {
 public:
  explicit DirWatcher(const std::string& path) {
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    fd_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (fd_ && inotify_add_watch(fd_.get(), dir.c_str(),
                                 IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB) < 0)
      fd_.reset();
  }

  void wait() {
    if (!fd_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      return;
    }
    pollfd p{fd_.get(), POLLIN, 0};
    if (poll(&p, 1, 100) > 0) {
      alignas(inotify_event) char events[4096];
      while (::read(fd_.get(), events, sizeof events) > 0) {
      }
    }
  }

 private:
  UniqueFd fd_;
};

// Finds `"key":"value"` in a line; rfind for "time" since docker writes it last, after "attrs"
// (whose labels could be called "time" too).
std::string_view string_field(std::string_view line, std::string_view key, bool last) {
  const size_t at = last ? line.rfind(key) : line.find(key);
  if (at == std::string_view::npos) return {};
  const size_t begin = at + key.size();
  const size_t end = line.find('"', begin);
  if (end == std::string_view::npos) return {};
  return line.substr(begin, end - begin);
}

class Reader {
 public:
  Reader(const std::string& path, const ReadOptions& options, const std::function<void(const Entry&)>& sink,
         const std::function<bool()>& stopped)
      : path_(path), options_(options), sink_(sink), stopped_(stopped) {}

  void run() {
    if (!options_.stdout_stream && !options_.stderr_stream) return;
    // Watch before looking at the files, so nothing written in between goes unnoticed.
    std::optional<DirWatcher> watcher;
    if (options_.follow) watcher.emplace(path_);

    std::vector<LogFile> files = snapshot();
    std::vector<int64_t> starts(files.size(), 0);
    size_t first = 0;
    if (options_.tail >= 0) first = place_tail(files, starts);
    for (size_t i = first; i < files.size(); ++i) {
      files[i].offset = starts[i];
      if (!read_available(files[i])) return;
    }
    if (!options_.follow) return;

    std::optional<LogFile> current;
    if (!files.empty()) current = std::move(files.back());
    files.clear();
    for (;;) {
      // Sampled before draining: everything written before stopped() turned true gets read.
      const bool stop = stopped_ && stopped_();
      if (!drain(current)) return;
      if (stop) return;
      watcher->wait();
    }
  }

 private:
  enum class Verdict { skip, take, stop };

  std::string rotated(int index) const { return path_ + "." + std::to_string(index); }

  // Opens the live file first, then .1, .2, …: a rotation in between moves files towards higher
  // numbers, so going that way sees a file twice (skipped by inode) rather than missing one.
  // The walk stops at the second missing number in a row (a rotation leaves one gap for a moment).
  std::vector<LogFile> snapshot() {
    std::vector<LogFile> files;
    const auto add = [&](const std::string& name) {
      auto f = open_log(name);
      if (!f) return false;
      const bool seen = std::any_of(files.begin(), files.end(), [&](const LogFile& g) { return g.id == f->id; });
      if (!seen) files.push_back(std::move(*f));
      return true;
    };
    add(path_);
    for (int i = 1, missing = 0; missing < 2; ++i) missing = add(rotated(i)) ? 0 : missing + 1;
    std::reverse(files.begin(), files.end());  // oldest first
    return files;
  }

  Verdict classify(std::string_view line, int64_t& time_ns) const {
    const std::string_view stream = string_field(line, "\"stream\":\"", false);
    if (stream == "stdout" ? !options_.stdout_stream : stream == "stderr" ? !options_.stderr_stream : true)
      return Verdict::skip;
    if (!parse_timestamp(string_field(line, "\"time\":\"", true), true, time_ns)) return Verdict::skip;
    if (options_.since_ns != 0 && time_ns < options_.since_ns) return Verdict::skip;
    if (options_.until_ns != 0 && time_ns > options_.until_ns) return Verdict::stop;
    return Verdict::take;
  }

  // Sets starts[] so that exactly the last `tail` matching entries get read; returns the first
  // file to read. Entries after --until don't count (they would not be shown).
  size_t place_tail(const std::vector<LogFile>& files, std::vector<int64_t>& starts) const {
    int64_t remaining = options_.tail;
    size_t first = files.size();
    for (size_t i = files.size(); i-- > 0;) {
      ReverseLines lines(files[i], file_size(files[i]));
      starts[i] = lines.trim_incomplete();
      first = i;
      std::string_view line;
      int64_t offset = 0, time_ns = 0;
      while (remaining > 0 && lines.next(line, offset)) {
        if (classify(line, time_ns) != Verdict::take) continue;
        --remaining;
        starts[i] = offset;
      }
      if (remaining == 0) break;
    }
    return first;
  }

  // Delivers one line; false once past --until.
  bool deliver(std::string_view line) {
    int64_t time_ns = 0;
    const Verdict verdict = classify(line, time_ns);
    if (verdict == Verdict::stop) return false;
    if (verdict == Verdict::skip) return true;
    const auto json = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (json.is_discarded() || !json.is_object()) return true;  // not an entry: skipped, like a blank line
    Entry entry;
    const auto text = json.find("log");
    if (text != json.end() && text->is_string()) entry.log = text->get<std::string>();
    entry.stream = string_field(line, "\"stream\":\"", false);
    entry.time = string_field(line, "\"time\":\"", true);
    entry.time_ns = time_ns;
    sink_(entry);
    return true;
  }

  // Delivers the complete lines from f.offset to the current end; false once past --until.
  bool read_available(LogFile& f) {
    if (file_size(f) < f.offset) {
      // Truncated in place (max-file 1): start over at its beginning.
      f.offset = 0;
      f.pending.clear();
    }
    for (;;) {
      const size_t old = f.pending.size();
      f.pending.resize(old + kReadChunk);
      const ssize_t n = pread(f.fd.get(), f.pending.data() + old, kReadChunk, f.offset);
      f.pending.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("read " + f.name);
      }
      if (n == 0) return true;
      f.offset += n;
      size_t begin = 0;
      // Only new bytes can hold the next newline.
      for (size_t nl = f.pending.find('\n', old); nl != std::string::npos; nl = f.pending.find('\n', begin)) {
        if (!deliver(std::string_view(f.pending).substr(begin, nl - begin))) return false;
        begin = nl + 1;
      }
      f.pending.erase(0, begin);
    }
  }

  // Follow mode: reads what is there, moving on through rotations. False once past --until.
  bool drain(std::optional<LogFile>& current) {
    for (int step = 0; step < 1000; ++step) {
      if (current && !read_available(*current)) return false;
      const auto live = stat_id(path_);
      if (!live) return true;  // between a rename and the new file, or removed: look again later
      if (!current) {
        // Nothing was there when following began, so every file present now was written since:
        // all are read, oldest first (a fast writer may have rotated before this look).
        std::vector<LogFile> files = snapshot();
        if (files.empty()) return true;
        for (size_t i = 0; i + 1 < files.size(); ++i)
          if (!read_available(files[i])) return false;
        current = std::move(files.back());
        continue;
      }
      if (*live == current->id) return true;
      // Rotated away: whatever was written before the rename is in it now, so finish it first.
      if (!read_available(*current)) return false;
      auto next = successor(*current);
      if (!next) return true;
      current = std::move(next);
    }
    return true;
  }

  // The file written after `old` (which is no longer the live one): if old is now .k, that is
  // .k-1 (or the live file for k = 1). Checking that old is still .k after opening the candidate
  // proves no rotation moved the candidate in between (renames go from the oldest file down).
  std::optional<LogFile> successor(const LogFile& old) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      int index = 0;
      int oldest = 0;
      for (int i = 1, missing = 0; missing < 2 && index == 0; ++i) {
        const auto id = stat_id(rotated(i));
        missing = id ? 0 : missing + 1;
        if (id) oldest = i;
        if (id && *id == old.id) index = i;
      }
      if (index == 0) {
        struct stat st {};
        if (fstat(old.fd.get(), &st) != 0) throw_errno("stat " + old.name);
        if (st.st_nlink > 0) return std::nullopt;  // renamed while we looked: try again later
        // Rotated out of existence already: the oldest file left is the first one not yet read.
        return open_log(oldest > 0 ? rotated(oldest) : path_);
      }
      auto next = open_log(index == 1 ? path_ : rotated(index - 1));
      if (!next) return std::nullopt;
      const auto still = stat_id(rotated(index));
      if (still && *still == old.id) return next;
    }
    return std::nullopt;
  }

  const std::string& path_;
  const ReadOptions& options_;
  const std::function<void(const Entry&)>& sink_;
  const std::function<bool()>& stopped_;
};

}  // namespace

void read(const std::string& path, const ReadOptions& options, const std::function<void(const Entry&)>& sink,
          const std::function<bool()>& stopped) {
  Reader(path, options, sink, stopped).run();
}

int64_t parse_time_arg(std::string_view text, int64_t now_ns) {
  // As docker: a duration first (but "0" is the unix time 0), then a date, then unix seconds.
  int64_t value = 0;
  if (auto ago = text == "0" ? std::nullopt : try_parse_go_duration(text);
      ago && !__builtin_sub_overflow(now_ns, *ago, &value))
    return value;
  if (text.find('-') != std::string_view::npos) {
    if (parse_timestamp(text, false, value)) return value;
  } else if (parse_unix_time(text, value)) {
    return value;
  }
  throw Error("invalid time \"" + std::string(text) +
              "\": expected RFC3339 (2006-01-02T15:04:05Z), a date, unix seconds or a duration such as 10m");
}

}  // namespace berth::logs
