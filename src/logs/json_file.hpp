// Container logs in docker's json-file format: one JSON object a line,
//   {"log":"hello\n","stream":"stdout","time":"2026-11-28T05:01:02.123456789Z"}
// so existing tooling reads them. Rotation: <path>, <path>.1 (newest rotated) … <path>.<max_files-1>.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace berth::logs {

struct Limits {
  int64_t max_size = 10 * 1024 * 1024;  // bytes per file before rotating; <= 0: unbounded
  int max_files = 3;                    // files kept, the live one included (>= 1)
};

// Parses docker's --log-opt max-size and max-file. max-size is read as docker's json-file reads it,
// with go-units' FromHumanSize: decimal units ("500k" = 500,000, "10m" = 10,000,000, "1.5g";
// "10MiB" is also 10,000,000), must be > 0. max-file: an integer >= 1.
// Throws berth::Error naming the value.
int64_t parse_max_size(std::string_view text);
int parse_max_file(std::string_view text);

// Writes entries; not thread-safe (the shim gives it one writer thread). No nlohmann::json and no
// iostreams here: it is linked into the static berth-shim, which must stay small.
class JsonFileWriter {
 public:
  JsonFileWriter(std::string path, Limits limits);
  ~JsonFileWriter();
  JsonFileWriter(const JsonFileWriter&) = delete;
  JsonFileWriter& operator=(const JsonFileWriter&) = delete;

  // Output of one stream ("stdout" or "stderr"): split into lines, each written as one entry with
  // time_ns (unix nanoseconds). An unterminated tail is kept until its newline arrives, or
  // written as its own entry once it reaches 16 KiB (docker's partial-message size), or at flush().
  void write(std::string_view stream, std::string_view data, int64_t time_ns);
  // Writes the kept unterminated tails (at EOF of the streams).
  void flush(int64_t time_ns);

 private:
  struct Impl;
  Impl* impl_;
};

struct Entry {
  std::string stream;  // "stdout" | "stderr"
  std::string log;     // the text, newline included when the line had one
  int64_t time_ns = 0;
  std::string time;  // as written (RFC3339Nano)
};

struct ReadOptions {
  bool stdout_stream = true;
  bool stderr_stream = true;
  int64_t since_ns = 0;  // 0: from the start
  int64_t until_ns = 0;  // 0: no end
  int64_t tail = -1;     // -1: all; else the last N entries (of the selected streams, within since/until)
  bool follow = false;
};

// Reads the rotated files oldest first, then the live one, calling sink for each matching entry.
// With follow, keeps reading new entries (through rotations: when the live file is renamed to
// .1 the rest of it is read, then the new live file from its start) until stopped() returns true
// and everything written before that has been read. stopped() is polled at least every 100 ms.
// A missing log (never written) is empty, not an error.
void read(const std::string& path, const ReadOptions& options, const std::function<void(const Entry&)>& sink,
          const std::function<bool()>& stopped = {});

// RFC3339Nano as docker writes it ("2026-11-28T05:01:02.123456789Z", trailing zeros trimmed).
std::string format_time(int64_t time_ns);
// Parses RFC3339(Nano) times, unix seconds ("1700000000", "1700000000.5") and Go durations
// relative to now ("10m", "1h30m") as docker's --since/--until do. Throws naming the value.
int64_t parse_time_arg(std::string_view text, int64_t now_ns);

}  // namespace berth::logs
