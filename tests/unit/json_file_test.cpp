#include "logs/json_file.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "util/error.hpp"

namespace logs = berth::logs;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kT0 = 1'795'000'000 * kSec;  // 2026-11-18T11:06:40Z

class JsonFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-logs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/c-json.log";
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static std::vector<std::string> lines_of(const std::string& p) {
    std::vector<std::string> out;
    std::istringstream in(slurp(p));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  std::vector<logs::Entry> read_all(const logs::ReadOptions& options = {}) const {
    std::vector<logs::Entry> out;
    logs::read(path_, options, [&](const logs::Entry& e) { out.push_back(e); });
    return out;
  }
  static std::vector<std::string> texts(const std::vector<logs::Entry>& entries) {
    std::vector<std::string> out;
    for (const auto& e : entries) out.push_back(e.log);
    return out;
  }

  std::string dir_;
  std::string path_;
};

std::string numbered(int i) { return "line " + std::to_string(i) + "\n"; }

// ---- format ----

TEST_F(JsonFileTest, WritesDockerLines) {
  {
    logs::JsonFileWriter w(path_, {});
    w.write("stdout", "hello\n", kT0 + 123'456'789);
    w.write("stderr", "oops\n", kT0);
  }
  const auto lines = lines_of(path_);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], R"({"log":"hello\n","stream":"stdout","time":"2026-11-18T11:06:40.123456789Z"})");
  EXPECT_EQ(lines[1], R"({"log":"oops\n","stream":"stderr","time":"2026-11-18T11:06:40Z"})");
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(JsonFileTest, EscapesLikeDocker) {
  {
    logs::JsonFileWriter w(path_, {});
    w.write("stdout", std::string("q\"b\\s\tt\x01\x1f<a>&\r\x7f\n"), kT0);
    // Valid UTF-8 passes through; U+2028/2029 are escaped.
    w.write("stdout", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xe2\x80\xa8|\xe2\x80\xa9|\xef\xbf\xbd\n", kT0);
    // Invalid: lone continuation, truncated sequence, overlong, surrogate, above U+10FFFF, 0xff.
    w.write("stdout",
            "a\x80"
            "b\xe2\x82"
            "c\xc0\xaf"
            "d\xed\xa0\x80"
            "e\xf4\x90\x80\x80"
            "f\xff\n",
            kT0);
  }
  const auto lines = lines_of(path_);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], R"({"log":"q\"b\\s\u0009t\u0001\u001f\u003ca\u003e\u0026\r)"
                      "\x7f"
                      R"(\n","stream":"stdout","time":"2026-11-18T11:06:40Z"})");
  EXPECT_EQ(lines[1],
            "{\"log\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\u2028|\\u2029|\xef\xbf\xbd\\n\",\"stream\":"
            "\"stdout\",\"time\":\"2026-11-18T11:06:40Z\"}");
  EXPECT_EQ(lines[2],
            R"({"log":"a\ufffdb\ufffd\ufffdc\ufffd\ufffdd\ufffd\ufffd\ufffde\ufffd\ufffd\ufffd\ufffdf\ufffd\n",)"
            R"("stream":"stdout","time":"2026-11-18T11:06:40Z"})");
  // And the reader decodes them back.
  const auto entries = read_all();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].log, std::string("q\"b\\s\tt\x01\x1f<a>&\r\x7f\n"));
  EXPECT_EQ(entries[1].log, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xe2\x80\xa8|\xe2\x80\xa9|\xef\xbf\xbd\n");
  EXPECT_EQ(entries[2].log.substr(0, 5),
            "a\xef\xbf\xbd"
            "b");
}

TEST_F(JsonFileTest, SplitsLinesAndKeepsTailsPerStream) {
  {
    logs::JsonFileWriter w(path_, {});
    w.write("stdout", "one\ntwo\nthr", kT0 + 1);
    w.write("stderr", "err", kT0 + 2);
    w.write("stdout", "ee\n\n", kT0 + 3);
    w.write("stderr", "or\nlast", kT0 + 4);
    w.write("stdout", "unterminated", kT0 + 5);
    w.flush(kT0 + 6);
    w.flush(kT0 + 7);  // nothing left: writes nothing
  }
  const auto entries = read_all();
  ASSERT_EQ(entries.size(), 7u);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"stdout", "one\n"},   {"stdout", "two\n"},        {"stdout", "three\n"}, {"stdout", "\n"},
      {"stderr", "error\n"}, {"stdout", "unterminated"}, {"stderr", "last"},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(entries[i].stream, want[i].first) << i;
    EXPECT_EQ(entries[i].log, want[i].second) << i;
  }
  EXPECT_EQ(entries[2].time_ns, kT0 + 3);  // the time the line was completed
  EXPECT_EQ(entries[5].time_ns, kT0 + 6);  // flushed
}

TEST_F(JsonFileTest, PartialMessagesAt16KiB) {
  constexpr size_t k16 = 16 * 1024;
  {
    logs::JsonFileWriter w(path_, {});
    // Unterminated output: a partial entry as soon as 16 KiB are pending, in any write sizes.
    const std::string big(k16 + 100, 'a');
    w.write("stdout", std::string_view(big).substr(0, 10'000), kT0);
    w.write("stdout", std::string_view(big).substr(10'000), kT0);
    w.write("stdout", "\n", kT0);
    // A line of exactly 16 KiB: the 16 KiB, then its newline alone (docker's buffer is full first).
    w.write("stderr", std::string(k16, 'b') + "\n", kT0);
    // 40000 bytes then a newline, written in 1000-byte pieces.
    const std::string long_line = std::string(40'000, 'c') + "\n";
    for (size_t i = 0; i < long_line.size(); i += 1000)
      w.write("stdout", std::string_view(long_line).substr(i, 1000), kT0);
  }
  const auto entries = read_all();
  const std::vector<std::string> want = {
      std::string(k16, 'a'),
      std::string(100, 'a') + "\n",
      std::string(k16, 'b'),
      "\n",
      std::string(k16, 'c'),
      std::string(k16, 'c'),
      std::string(40'000 - 2 * k16, 'c') + "\n",
  };
  EXPECT_EQ(texts(entries), want);
}

// ---- rotation ----

TEST_F(JsonFileTest, RotatesKeepingMaxFiles) {
  // Every entry here is 68 bytes: {"log":"line NN\n","stream":"stdout","time":"2026-11-18T11:06:40Z"}
  const int64_t entry = 68;
  logs::Limits limits{.max_size = entry * 4, .max_files = 3};
  {
    logs::JsonFileWriter w(path_, limits);
    for (int i = 10; i < 40; ++i) w.write("stdout", numbered(i), kT0);
  }
  ASSERT_EQ(lines_of(path_)[0].size() + 1, static_cast<size_t>(entry));
  EXPECT_TRUE(fs::exists(path_ + ".1"));
  EXPECT_TRUE(fs::exists(path_ + ".2"));
  EXPECT_FALSE(fs::exists(path_ + ".3"));
  // 30 entries, 4 a file: the live file has 30 % 4 = 2, the rotated ones 4 each.
  EXPECT_EQ(lines_of(path_).size(), 2u);
  EXPECT_EQ(lines_of(path_ + ".1").size(), 4u);
  EXPECT_EQ(lines_of(path_ + ".2").size(), 4u);
  for (const auto& name : {path_, path_ + ".1", path_ + ".2"}) EXPECT_LE(fs::file_size(name), 4u * entry);
  std::vector<std::string> want;
  for (int i = 40 - 10; i < 40; ++i) want.push_back(numbered(i));
  EXPECT_EQ(texts(read_all()), want);

  // Reopening appends to the live file and keeps counting its size.
  {
    logs::JsonFileWriter w(path_, limits);
    w.write("stdout", numbered(40), kT0);
    w.write("stdout", numbered(41), kT0);
    EXPECT_EQ(lines_of(path_).size(), 4u);
    w.write("stdout", numbered(42), kT0);
    EXPECT_EQ(lines_of(path_).size(), 1u);
  }
}

TEST_F(JsonFileTest, MaxFileOneTruncatesInPlace) {
  {
    logs::JsonFileWriter w(path_, {.max_size = 68 * 3, .max_files = 1});
    for (int i = 10; i < 20; ++i) w.write("stdout", numbered(i), kT0);
  }
  EXPECT_FALSE(fs::exists(path_ + ".1"));
  EXPECT_EQ(texts(read_all()), (std::vector<std::string>{numbered(19)}));
}

TEST_F(JsonFileTest, OversizedEntryIsWrittenWhole) {
  {
    logs::JsonFileWriter w(path_, {.max_size = 100, .max_files = 2});
    w.write("stdout", std::string(500, 'x') + "\n", kT0);  // into the empty file, whole
    w.write("stdout", "small\n", kT0);                     // rotates first
  }
  EXPECT_GT(fs::file_size(path_ + ".1"), 500u);
  EXPECT_EQ(lines_of(path_).size(), 1u);
  EXPECT_EQ(read_all().size(), 2u);
}

// ---- reading ----

class JsonFileReadTest : public JsonFileTest {
 protected:
  // 100 entries over several rotated files: entry i at kT0 + i s, even ones stdout, odd stderr.
  void SetUp() override {
    JsonFileTest::SetUp();
    logs::JsonFileWriter w(path_, {.max_size = 1000, .max_files = 20});
    for (int i = 0; i < 100; ++i) w.write(i % 2 ? "stderr" : "stdout", numbered(i), kT0 + i * kSec);
  }
  static std::vector<std::string> range(int from, int to, int step = 1) {
    std::vector<std::string> out;
    for (int i = from; i < to; i += step) out.push_back(numbered(i));
    return out;
  }
};

TEST_F(JsonFileReadTest, ReadsRotatedFilesOldestFirst) {
  ASSERT_TRUE(fs::exists(path_ + ".5"));
  const auto entries = read_all();
  EXPECT_EQ(texts(entries), range(0, 100));
  EXPECT_EQ(entries[7].stream, "stderr");
  EXPECT_EQ(entries[7].time_ns, kT0 + 7 * kSec);
  EXPECT_EQ(entries[7].time, logs::format_time(kT0 + 7 * kSec));
}

TEST_F(JsonFileReadTest, TailSinceUntilAndStreams) {
  logs::ReadOptions o;
  o.tail = 5;
  EXPECT_EQ(texts(read_all(o)), range(95, 100));
  o.tail = 0;
  EXPECT_TRUE(read_all(o).empty());
  o.tail = 1000;
  EXPECT_EQ(texts(read_all(o)), range(0, 100));
  o.tail = 30;  // crosses several files
  EXPECT_EQ(texts(read_all(o)), range(70, 100));

  o = {};
  o.stdout_stream = false;
  o.tail = 3;
  EXPECT_EQ(texts(read_all(o)), (std::vector<std::string>{numbered(95), numbered(97), numbered(99)}));
  o.tail = -1;
  EXPECT_EQ(texts(read_all(o)), range(1, 100, 2));

  o = {};
  o.since_ns = kT0 + 90 * kSec;
  EXPECT_EQ(texts(read_all(o)), range(90, 100));
  o.until_ns = kT0 + 92 * kSec;
  EXPECT_EQ(texts(read_all(o)), range(90, 93));
  o.since_ns = 0;
  o.until_ns = kT0 + 9 * kSec;
  o.tail = 2;  // the last two up to --until
  EXPECT_EQ(texts(read_all(o)), range(8, 10));
  o.stderr_stream = false;
  EXPECT_EQ(texts(read_all(o)), (std::vector<std::string>{numbered(6), numbered(8)}));
}

TEST_F(JsonFileTest, MissingLogIsEmpty) { EXPECT_TRUE(read_all().empty()); }

TEST_F(JsonFileTest, IgnoresTrailingLineBeingWritten) {
  {
    logs::JsonFileWriter w(path_, {});
    w.write("stdout", "a\n", kT0);
    w.write("stdout", "b\n", kT0);
  }
  const std::string half = R"({"log":"c\n","stream":"stdout","ti)";
  std::ofstream(path_, std::ios::app) << half;
  logs::ReadOptions o;
  EXPECT_EQ(texts(read_all(o)), (std::vector<std::string>{"a\n", "b\n"}));
  o.tail = 1;
  EXPECT_EQ(texts(read_all(o)), (std::vector<std::string>{"b\n"}));

  // Following: the line is delivered once it is complete.
  o = {};
  o.follow = true;
  std::atomic<bool> stop{false};
  std::vector<std::string> got;
  std::thread reader([&] {
    logs::read(
        path_, o, [&](const logs::Entry& e) { got.push_back(e.log); }, [&] { return stop.load(); });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  std::ofstream(path_, std::ios::app) << R"(me":"2026-11-18T11:06:40Z"})"
                                      << "\n";
  stop = true;
  reader.join();
  EXPECT_EQ(got, (std::vector<std::string>{"a\n", "b\n", "c\n"}));
}

TEST_F(JsonFileTest, SkipsMalformedLines) {
  std::ofstream(path_) << "garbage\n\n"
                       << R"({"log":"ok\n","stream":"stdout","time":"2026-11-18T11:06:40Z"})"
                       << "\n"
                       << R"({"log":"no time","stream":"stdout"})"
                       << "\n";
  EXPECT_EQ(texts(read_all()), (std::vector<std::string>{"ok\n"}));
}

// A writer rotates (and, with few files, drops them) while a follower reads; every entry must arrive
// exactly once and in order, and the follower returns soon after stopped() turns true.
void follow_while_writing(const std::string& path, logs::Limits limits, int count, bool pace) {
  std::atomic<bool> stop{false};
  std::vector<std::string> got;
  logs::ReadOptions o;
  o.follow = true;
  std::thread reader([&] {
    logs::read(
        path, o, [&](const logs::Entry& e) { got.push_back(e.log); }, [&] { return stop.load(); });
  });
  {
    logs::JsonFileWriter w(path, limits);
    for (int i = 0; i < count; ++i) {
      w.write(i % 3 ? "stdout" : "stderr", numbered(i), kT0 + i);
      if (pace && i % 5 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  const auto stopped_at = std::chrono::steady_clock::now();
  stop = true;
  reader.join();
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, std::chrono::seconds(1));
  ASSERT_EQ(got.size(), static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) ASSERT_EQ(got[i], numbered(i)) << i;
}

TEST_F(JsonFileTest, FollowAcrossRotations) {
  // Many rotations, files kept long enough that a slow follower still finds them.
  follow_while_writing(path_, {.max_size = 2000, .max_files = 200}, 3000, false);
  EXPECT_TRUE(fs::exists(path_ + ".50"));
}

TEST_F(JsonFileTest, FollowAcrossRotationsWithFewFiles) {
  // Four files of ~29 entries: the follower has to keep up, so the writer pauses now and then.
  follow_while_writing(path_, {.max_size = 2000, .max_files = 4}, 1000, true);
  EXPECT_FALSE(fs::exists(path_ + ".4"));
}

TEST_F(JsonFileTest, FollowFromBeforeTheLogExistsReadsEveryFileWrittenSince) {
  // The follower finds no log, then (held in its first stopped() call) misses the writer's first
  // rotations: it must still start from the oldest file, not from the live one.
  std::atomic<bool> stop{false}, holding{false}, written{false}, first{true};
  std::vector<std::string> got;
  logs::ReadOptions o;
  o.follow = true;
  std::thread reader([&] {
    logs::read(
        path_, o, [&](const logs::Entry& e) { got.push_back(e.log); },
        [&] {
          if (first.exchange(false)) {
            holding = true;
            while (!written) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
          return stop.load();
        });
  });
  while (!holding) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  {
    logs::JsonFileWriter w(path_, {.max_size = 2000, .max_files = 50});
    for (int i = 0; i < 200; ++i) w.write("stdout", numbered(i), kT0 + i);
  }
  ASSERT_TRUE(fs::exists(path_ + ".3"));
  written = true;
  stop = true;
  reader.join();
  ASSERT_EQ(got.size(), 200u);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(got[i], numbered(i)) << i;
}

TEST_F(JsonFileTest, FollowWithTailStartsAtTheEnd) {
  {
    logs::JsonFileWriter w(path_, {});
    for (int i = 0; i < 10; ++i) w.write("stdout", numbered(i), kT0);
  }
  std::atomic<bool> stop{false};
  std::atomic<int> count{0};
  std::vector<std::string> got;
  logs::ReadOptions o;
  o.follow = true;
  o.tail = 2;
  std::thread reader([&] {
    logs::read(
        path_, o,
        [&](const logs::Entry& e) {
          got.push_back(e.log);
          ++count;
        },
        [&] { return stop.load(); });
  });
  // Append only once the tail has been read, else it would be part of the tail.
  for (int i = 0; i < 500 && count < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  {
    logs::JsonFileWriter w(path_, {});
    w.write("stdout", numbered(10), kT0);
  }
  stop = true;
  reader.join();
  EXPECT_EQ(got, (std::vector<std::string>{numbered(8), numbered(9), numbered(10)}));
}

TEST_F(JsonFileTest, FollowWaitsForTheLogToAppear) {
  std::atomic<bool> stop{false};
  std::vector<std::string> got;
  logs::ReadOptions o;
  o.follow = true;
  std::thread reader([&] {
    logs::read(
        path_, o, [&](const logs::Entry& e) { got.push_back(e.log); }, [&] { return stop.load(); });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    logs::JsonFileWriter w(path_, {.max_size = 1, .max_files = 2});  // rotates before every entry
    for (int i = 0; i < 3; ++i) w.write("stdout", numbered(i), kT0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // time to follow, before stopping
  stop = true;
  reader.join();
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), numbered(2));
}

// ---- times and options ----

TEST(JsonFileTime, FormatsRfc3339Nano) {
  EXPECT_EQ(logs::format_time(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(logs::format_time(1'700'000'000'123'000'000), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(logs::format_time(1'700'000'000'000'000'001), "2023-11-14T22:13:20.000000001Z");
  EXPECT_EQ(logs::format_time(1'700'000'000'100'000'000), "2023-11-14T22:13:20.1Z");
  EXPECT_EQ(logs::format_time(-1), "1969-12-31T23:59:59.999999999Z");
  EXPECT_EQ(logs::format_time(951'782'400 * kSec), "2000-02-29T00:00:00Z");
  for (int64_t t : {int64_t{0}, kT0 + 1, kT0 + 123'456'789, int64_t{4'102'444'800} * kSec - 1})
    EXPECT_EQ(logs::parse_time_arg(logs::format_time(t), 0), t) << t;
}

TEST(JsonFileTime, AgreesWithGmtime) {
  for (int64_t secs = -2'000'000'000; secs < 7'000'000'000; secs += 7'777'777) {
    const time_t t = static_cast<time_t>(secs);
    struct tm tm {};
    ASSERT_NE(gmtime_r(&t, &tm), nullptr);
    char want[32];
    strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
    ASSERT_EQ(logs::format_time(secs * kSec), want);
  }
}

TEST(JsonFileTime, ParsesDockerTimeArguments) {
  const char* old_tz = std::getenv("TZ");
  const std::string saved = old_tz ? old_tz : "";
  unsetenv("TZ");  // no zone given and no $TZ: UTC
  const int64_t now = kT0;
  const int64_t day = 1'794'960'000 * kSec;  // 2026-11-18T00:00:00Z
  EXPECT_EQ(logs::parse_time_arg("2026-11-18T11:06:40.123456789Z", now), kT0 + 123'456'789);
  EXPECT_EQ(logs::parse_time_arg("2026-11-18T11:06:40Z", now), kT0);
  EXPECT_EQ(logs::parse_time_arg("2026-11-18T12:06:40+01:00", now), kT0);
  EXPECT_EQ(logs::parse_time_arg("2026-11-18T05:36:40.5-05:30", now), kT0 + kSec / 2);
  EXPECT_EQ(logs::parse_time_arg("2026-11-18T11:06:40", now), kT0);
  EXPECT_EQ(logs::parse_time_arg("2026-11-18T11:06", now), kT0 - 40 * kSec);
  EXPECT_EQ(logs::parse_time_arg("2026-11-18", now), day);
  EXPECT_EQ(logs::parse_time_arg("2026-11-18Z", now), day);
  EXPECT_EQ(logs::parse_time_arg("1700000000", now), 1'700'000'000 * kSec);
  EXPECT_EQ(logs::parse_time_arg("1700000000.5", now), 1'700'000'000 * kSec + kSec / 2);
  EXPECT_EQ(logs::parse_time_arg("1700000000.000000001", now), 1'700'000'000 * kSec + 1);
  EXPECT_EQ(logs::parse_time_arg("0", now), 0);
  EXPECT_EQ(logs::parse_time_arg("10m", now), now - 600 * kSec);
  EXPECT_EQ(logs::parse_time_arg("1h30m", now), now - 5400 * kSec);
  EXPECT_EQ(logs::parse_time_arg("1.5h", now), now - 5400 * kSec);
  EXPECT_EQ(logs::parse_time_arg("300ms", now), now - 300'000'000);
  EXPECT_EQ(logs::parse_time_arg("0.1s", now), now - 100'000'000);
  EXPECT_EQ(logs::parse_time_arg("2us", now), now - 2'000);
  EXPECT_EQ(logs::parse_time_arg("2\xc2\xb5s", now), now - 2'000);
  EXPECT_EQ(logs::parse_time_arg("-1h", now), now + 3600 * kSec);
  setenv("TZ", "UTC-2", 1);  // POSIX: two hours east of UTC; a zone-less time is local
  tzset();
  EXPECT_EQ(logs::parse_time_arg("2026-11-18T13:06:40", now), kT0);
  EXPECT_EQ(logs::parse_time_arg("2026-11-18T11:06:40Z", now), kT0);
  if (old_tz)
    setenv("TZ", saved.c_str(), 1);
  else
    unsetenv("TZ");
  tzset();

  for (const char* bad : {"", "abc", "10x", "1h5", "2026-13-01", "2026-02-30", "2026-11-18T25:00:00Z", "2026-11-18T",
                          "2026-11-18T11:06:40+0100", "1700000000.", "17e8", ".s", "99999999999", "3000-01-01",
                          "-9999999999h", "2026-11-18 11:06:40"}) {
    try {
      logs::parse_time_arg(bad, now);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const berth::Error& e) {
      EXPECT_NE(std::string(e.what()).find("\"" + std::string(bad) + "\""), std::string::npos) << e.what();
    }
  }
}

TEST(JsonFileOptions, ParsesMaxSizeAndMaxFile) {
  EXPECT_EQ(logs::parse_max_size("500"), 500);
  EXPECT_EQ(logs::parse_max_size("500b"), 500);
  EXPECT_EQ(logs::parse_max_size("100k"), 100'000);
  EXPECT_EQ(logs::parse_max_size("2KB"), 2'000);
  EXPECT_EQ(logs::parse_max_size("10m"), 10'000'000);
  EXPECT_EQ(logs::parse_max_size("10MiB"), 10'000'000);
  EXPECT_EQ(logs::parse_max_size("10 mb"), 10'000'000);
  EXPECT_EQ(logs::parse_max_size("1.5m"), 1'500'000);
  EXPECT_EQ(logs::parse_max_size("1g"), 1'000'000'000);
  EXPECT_EQ(logs::parse_max_size("2t"), 2'000'000'000'000);
  for (const char* bad : {"", "m", "10q", "-1", "0", "0k", "10mbb", "10mi", "10  m", "99999999p"}) {
    try {
      logs::parse_max_size(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const berth::Error& e) {
      EXPECT_NE(std::string(e.what()).find("\"" + std::string(bad) + "\""), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(logs::parse_max_file("1"), 1);
  EXPECT_EQ(logs::parse_max_file("3"), 3);
  EXPECT_THROW(logs::parse_max_file("x"), berth::Error);
  EXPECT_THROW(logs::parse_max_file(""), berth::Error);
  EXPECT_THROW(logs::parse_max_file("99999999999"), berth::Error);
  try {
    logs::parse_max_file("0");
    ADD_FAILURE();
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("max-file cannot be less than 1"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("\"0\""), std::string::npos);
  }
  EXPECT_THROW(logs::parse_max_file("-2"), berth::Error);
}

}  // namespace
