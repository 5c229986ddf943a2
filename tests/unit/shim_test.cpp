// berth-shim's pure helpers (src/shim/wire.hpp): attach frames, JSON, times, error mapping,
// restart policy.
#include <gtest/gtest.h>

#include <string>

#include "shim/wire.hpp"

namespace berth::shim {
namespace {

TEST(ShimFrame, EncodesDockerStdcopyHeader) {
  std::string out;
  append_frame(out, kStderr, "hi");
  EXPECT_EQ(out, std::string("\x02\0\0\0\0\0\0\x02hi", 10));
  out.clear();
  append_frame(out, kHello, std::string(0x010203, 'x'));
  EXPECT_EQ(out.substr(0, 8), std::string("\x10\0\0\0\0\x01\x02\x03", 8));
  EXPECT_EQ(out.size(), 8u + 0x010203);
}

TEST(ShimFrame, DecodesWholeFramesOnly) {
  std::string buf;
  append_frame(buf, kStdin, "abc");
  append_frame(buf, kCloseStdin, "");
  uint8_t type = 0xFF;
  std::string_view payload;
  size_t used = 0;
  ASSERT_EQ(decode_frame(std::string_view(buf).substr(0, 5), type, payload, used), FrameStatus::Incomplete);
  ASSERT_EQ(decode_frame(std::string_view(buf).substr(0, 10), type, payload, used), FrameStatus::Incomplete);
  ASSERT_EQ(decode_frame(buf, type, payload, used), FrameStatus::Ok);
  EXPECT_EQ(type, kStdin);
  EXPECT_EQ(payload, "abc");
  EXPECT_EQ(used, 11u);
  ASSERT_EQ(decode_frame(std::string_view(buf).substr(used), type, payload, used), FrameStatus::Ok);
  EXPECT_EQ(type, kCloseStdin);
  EXPECT_EQ(payload, "");
  EXPECT_EQ(used, 8u);
}

TEST(ShimFrame, RejectsOversizedFrames) {
  std::string header("\x00\0\0\0\x00\x10\x00\x01", 8);  // kMaxFrame + 1
  uint8_t type;
  std::string_view payload;
  size_t used;
  EXPECT_EQ(decode_frame(header, type, payload, used), FrameStatus::TooBig);
}

TEST(ShimJson, EscapesStrings) {
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string("a\"b\\c\nd\te\r"), R"("a\"b\\c\nd\te\r")");
  EXPECT_EQ(json_string(std::string("\x01\x1f\x7f", 3)), R"("\u0001\u001f\u007f")");
  EXPECT_EQ(json_string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x90\xb3"),
            "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x90\xb3\"");
  // invalid UTF-8 (a lone continuation byte, a truncated sequence, an overlong form, a surrogate)
  EXPECT_EQ(json_string("a\x80z"), R"("a\ufffdz")");
  EXPECT_EQ(json_string("a\xe2\x82"), R"("a\ufffd\ufffd")");
  EXPECT_EQ(json_string("\xc0\xaf"), R"("\ufffd\ufffd")");
  EXPECT_EQ(json_string("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");
}

TEST(ShimJson, ReadsFlatObjects) {
  std::string_view hello = R"({"stdin": true, "stdout":false,"stderr" : true})";
  EXPECT_TRUE(json_bool(hello, "stdin"));
  EXPECT_FALSE(json_bool(hello, "stdout", true));
  EXPECT_TRUE(json_bool(hello, "stderr"));
  EXPECT_FALSE(json_bool(hello, "missing"));
  EXPECT_TRUE(json_bool(hello, "missing", true));
  std::string_view resize = R"({"rows":40,"cols": 100})";
  EXPECT_EQ(json_uint(resize, "rows"), 40);
  EXPECT_EQ(json_uint(resize, "cols"), 100);
  EXPECT_EQ(json_uint(resize, "x"), -1);
  EXPECT_EQ(json_uint(R"({"rows":-3})", "rows"), -1);
  EXPECT_EQ(json_uint(R"({"rows":"3"})", "rows"), -1);
  // a key's name inside another value is not the key
  EXPECT_EQ(json_uint(R"({"note":"rows","rows":7})", "rows"), 7);
}

TEST(ShimTime, Rfc3339Nano) {
  EXPECT_EQ(rfc3339_nano(0), "0001-01-01T00:00:00Z");
  EXPECT_EQ(rfc3339_nano(1700000000LL * 1000000000), "2023-11-14T22:13:20Z");
  EXPECT_EQ(rfc3339_nano(1700000000LL * 1000000000 + 123456789), "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(rfc3339_nano(1700000000LL * 1000000000 + 120000000), "2023-11-14T22:13:20.12Z");
  EXPECT_EQ(rfc3339_nano(1700000000LL * 1000000000 + 1), "2023-11-14T22:13:20.000000001Z");
}

TEST(ShimErrors, ExitCodeForRuntimeErrors) {
  // what berth-runtime prints
  EXPECT_EQ(exit_code_for_runtime_error(R"(exec: "/nonexistent": No such file or directory)"), 127);
  EXPECT_EQ(exit_code_for_runtime_error(R"(exec: "nope": executable file not found in $PATH)"), 127);
  EXPECT_EQ(exit_code_for_runtime_error(R"(exec: "/etc/passwd": Permission denied)"), 126);
  // runc's wording
  EXPECT_EQ(exit_code_for_runtime_error(R"(exec: "/bin/x": stat /bin/x: no such file or directory: unknown)"), 127);
  EXPECT_EQ(exit_code_for_runtime_error("exec /x: exec format error"), 126);
  // not about the executable
  EXPECT_EQ(exit_code_for_runtime_error("mount /src on /proc/self/fd/7: No such file or directory"), 125);
  EXPECT_EQ(exit_code_for_runtime_error("cgroup: permission denied"), 125);
  EXPECT_EQ(exit_code_for_runtime_error(""), 125);
}

TEST(ShimErrors, RuntimeErrorLine) {
  EXPECT_EQ(runtime_error_line("berth: exec: \"x\": not found\n"), "exec: \"x\": not found");
  EXPECT_EQ(runtime_error_line("berth: warning: something\n  berth: the error  \n\n"), "the error");
  EXPECT_EQ(runtime_error_line("plain\r\n"), "plain");
  EXPECT_EQ(runtime_error_line(""), "");
}

TEST(ShimRestart, ParsesPolicies) {
  RestartPolicy p;
  ASSERT_TRUE(parse_restart_policy("no", p));
  EXPECT_EQ(p.kind, RestartKind::No);
  ASSERT_TRUE(parse_restart_policy("always", p));
  EXPECT_EQ(p.kind, RestartKind::Always);
  ASSERT_TRUE(parse_restart_policy("unless-stopped", p));
  EXPECT_EQ(p.kind, RestartKind::UnlessStopped);
  ASSERT_TRUE(parse_restart_policy("on-failure", p));
  EXPECT_EQ(p.kind, RestartKind::OnFailure);
  EXPECT_EQ(p.max_retries, 0);
  ASSERT_TRUE(parse_restart_policy("on-failure:5", p));
  EXPECT_EQ(p.max_retries, 5);
  for (const char* bad : {"sometimes", "on-failure:", "on-failure:x", "on-failure:-1", "always:2"})
    EXPECT_FALSE(parse_restart_policy(bad, p)) << bad;
}

TEST(ShimRestart, Decisions) {
  RestartPolicy on_failure2{RestartKind::OnFailure, 2};
  EXPECT_TRUE(should_restart(on_failure2, 1, 0));
  EXPECT_TRUE(should_restart(on_failure2, 1, 1));
  EXPECT_FALSE(should_restart(on_failure2, 1, 2));
  EXPECT_FALSE(should_restart(on_failure2, 0, 0));
  EXPECT_TRUE(should_restart({RestartKind::OnFailure, 0}, 137, 100));
  EXPECT_TRUE(should_restart({RestartKind::Always, 0}, 0, 100));
  EXPECT_TRUE(should_restart({RestartKind::UnlessStopped, 0}, 0, 0));
  EXPECT_FALSE(should_restart({RestartKind::No, 0}, 1, 0));
}

TEST(ShimRestart, Backoff) {
  EXPECT_EQ(next_backoff_ms(0, 0), 100);
  EXPECT_EQ(next_backoff_ms(100, 50), 200);
  EXPECT_EQ(next_backoff_ms(200, 9999), 400);
  EXPECT_EQ(next_backoff_ms(6400, 10000), 100);  // ran 10 s: reset
  EXPECT_EQ(next_backoff_ms(40000, 0), 60000);
  EXPECT_EQ(next_backoff_ms(60000, 0), 60000);
}

TEST(ShimHealth, FormatsDurationsAsGo) {
  EXPECT_EQ(go_duration(0), "0s");
  EXPECT_EQ(go_duration(999), "999ns");
  EXPECT_EQ(go_duration(1500), "1.5\xc2\xb5s");
  EXPECT_EQ(go_duration(300000000), "300ms");
  EXPECT_EQ(go_duration(1500000), "1.5ms");
  EXPECT_EQ(go_duration(1000000000), "1s");
  EXPECT_EQ(go_duration(30000000000), "30s");
  EXPECT_EQ(go_duration(2500000000), "2.5s");
  EXPECT_EQ(go_duration(90000000000), "1m30s");
  EXPECT_EQ(go_duration(3600000000000), "1h0m0s");
  EXPECT_EQ(go_duration(3661000000001), "1h1m1.000000001s");
  EXPECT_EQ(go_duration(-2000000000), "-2s");
}

TEST(ShimHealth, KeepsTheFirst4096BytesOfOutput) {
  std::string out;
  bool truncated = false;
  append_health_output(out, truncated, std::string(4000, 'a'));
  EXPECT_FALSE(truncated);
  append_health_output(out, truncated, std::string(96, 'b'));
  EXPECT_FALSE(truncated);
  EXPECT_EQ(out.size(), 4096u);
  append_health_output(out, truncated, "c");
  EXPECT_TRUE(truncated);
  EXPECT_EQ(out.size(), 4096u);
  EXPECT_EQ(out.back(), 'b');
}

HealthResult result(int64_t start_s, int exit_code, std::string output = "") {
  return {start_s * 1000000000, start_s * 1000000000 + 1, exit_code, std::move(output)};
}

TEST(ShimHealth, FollowsDockersRules) {
  constexpr int64_t s = 1000000000;
  HealthState h;
  EXPECT_EQ(h.status, "starting");
  // failures within the start period (10 s) don't count while starting
  h.record(result(1, 1), 0, 10 * s, 2);
  h.record(result(2, 1), 0, 10 * s, 2);
  EXPECT_EQ(h.status, "starting");
  EXPECT_EQ(h.failing_streak, 0);
  // after it they do: retries (2) consecutive failures make it unhealthy
  h.record(result(11, 1), 0, 10 * s, 2);
  EXPECT_EQ(h.status, "starting");
  EXPECT_EQ(h.failing_streak, 1);
  h.record(result(12, 1), 0, 10 * s, 2);
  EXPECT_EQ(h.status, "unhealthy");
  EXPECT_EQ(h.failing_streak, 2);
  // a success: healthy, streak reset; the log keeps the last five
  h.record(result(13, 0, "fine"), 0, 10 * s, 2);
  EXPECT_EQ(h.status, "healthy");
  EXPECT_EQ(h.failing_streak, 0);
  ASSERT_EQ(h.log.size(), 5u);
  EXPECT_EQ(h.log.front().start_ns, 1 * s);
  h.record(result(14, 0), 0, 10 * s, 2);  // a sixth: the oldest goes
  ASSERT_EQ(h.log.size(), 5u);
  EXPECT_EQ(h.log.front().start_ns, 2 * s);
  EXPECT_EQ(h.log[3].output, "fine");
  // once healthy, failures count even inside a start period
  HealthState g;
  g.record(result(1, 0), 0, 100 * s, 1);
  g.record(result(2, 1), 0, 100 * s, 1);
  EXPECT_EQ(g.status, "unhealthy");
  g.reset();
  EXPECT_EQ(g.status, "starting");
  EXPECT_EQ(g.failing_streak, 0);
  EXPECT_EQ(g.log.size(), 2u);
}

TEST(ShimHealth, WritesDockersHealthObject) {
  HealthState h;
  EXPECT_EQ(h.json(), R"({"Status":"starting","FailingStreak":0,"Log":[]})");
  h.record({1500000000, 2000000000, -1, "a\"b\n"}, 0, 0, 3);
  EXPECT_EQ(h.json(), R"({"Status":"starting","FailingStreak":1,"Log":[{"Start":"1970-01-01T00:00:01.5Z",)"
                      R"("End":"1970-01-01T00:00:02Z","ExitCode":-1,"Output":"a\"b\n"}]})");
}

TEST(ShimHealth, UsesTheStartIntervalOnlyWhileStartingInTheStartPeriod) {
  HealthState h;
  EXPECT_EQ(health_interval(h, 5, 0, 10, 30, 2), 2);
  EXPECT_EQ(health_interval(h, 10, 0, 10, 30, 2), 30);
  EXPECT_EQ(health_interval(h, 5, 0, 0, 30, 2), 30);
  h.status = "healthy";
  EXPECT_EQ(health_interval(h, 5, 0, 10, 30, 2), 30);
}

}  // namespace
}  // namespace berth::shim
