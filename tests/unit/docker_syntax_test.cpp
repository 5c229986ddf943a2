// docker's value syntaxes shared by the CLI, compose, image import and logs (util/docker_syntax.cpp).
#include "util/docker_syntax.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "util/error.hpp"

using berth::Error;
using nlohmann::json;

namespace {

constexpr int64_t kSecond = 1'000'000'000;

template <typename F>
std::string error_of(F&& parse) {
  try {
    parse();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string duration_error(std::string_view text) {
  return error_of([&] { berth::parse_go_duration(text); });
}

std::string cpus_error(std::string_view text) {
  return error_of([&] { berth::parse_nano_cpus(text); });
}

std::string restart_error(std::string_view text) {
  return error_of([&] { berth::parse_restart_policy(text); });
}

TEST(DockerSyntax, GoInt) {
  EXPECT_EQ(berth::parse_go_int("42"), 42);
  EXPECT_EQ(berth::parse_go_int("+7"), 7);
  EXPECT_EQ(berth::parse_go_int("-3"), -3);
  EXPECT_EQ(berth::parse_go_int("9223372036854775807"), std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(berth::parse_go_int(""));
  EXPECT_FALSE(berth::parse_go_int("+"));
  EXPECT_FALSE(berth::parse_go_int("1x"));
  EXPECT_FALSE(berth::parse_go_int(" 1"));
  EXPECT_FALSE(berth::parse_go_int("9223372036854775808"));
}

TEST(DockerSyntax, GoDurations) {
  EXPECT_EQ(berth::parse_go_duration("1m30s"), 90 * kSecond);
  EXPECT_EQ(berth::parse_go_duration("1.5h"), 5400 * kSecond);
  EXPECT_EQ(berth::parse_go_duration("1h2m3s"), 3723 * kSecond);
  EXPECT_EQ(berth::parse_go_duration("300ms"), 300'000'000);
  EXPECT_EQ(berth::parse_go_duration(".5ms"), 500'000);
  EXPECT_EQ(berth::parse_go_duration("1.s"), kSecond);
  EXPECT_EQ(berth::parse_go_duration("10us"), 10'000);
  EXPECT_EQ(berth::parse_go_duration("10\xC2\xB5s"), 10'000);
  EXPECT_EQ(berth::parse_go_duration("10\xCE\xBCs"), 10'000);
  EXPECT_EQ(berth::parse_go_duration("7ns"), 7);
  EXPECT_EQ(berth::parse_go_duration("1.0000000005s"), kSecond);  // Go truncates below 1 ns
  EXPECT_EQ(berth::parse_go_duration("-1s"), -kSecond);
  EXPECT_EQ(berth::parse_go_duration("+2m"), 120 * kSecond);
  EXPECT_EQ(berth::parse_go_duration("0"), 0);
  EXPECT_EQ(berth::parse_go_duration("-0"), 0);
  EXPECT_EQ(berth::parse_go_duration("0s"), 0);
  EXPECT_EQ(berth::parse_go_duration("9223372036854775807ns"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(berth::parse_go_duration("-9223372036854775808ns"), std::numeric_limits<int64_t>::min());

  EXPECT_EQ(duration_error(""), "time: invalid duration \"\"");
  EXPECT_EQ(duration_error("-"), "time: invalid duration \"-\"");
  EXPECT_EQ(duration_error("s"), "time: invalid duration \"s\"");
  EXPECT_EQ(duration_error(".s"), "time: invalid duration \".s\"");
  EXPECT_EQ(duration_error("1"), "time: missing unit in duration \"1\"");
  EXPECT_EQ(duration_error("1s2"), "time: missing unit in duration \"1s2\"");
  EXPECT_EQ(duration_error("3x"), "time: unknown unit \"x\" in duration \"3x\"");
  EXPECT_EQ(duration_error("1S"), "time: unknown unit \"S\" in duration \"1S\"");
  EXPECT_EQ(duration_error(" 1s"), "time: invalid duration \" 1s\"");
  EXPECT_EQ(duration_error("9223372036854775808ns"), "time: invalid duration \"9223372036854775808ns\"");
  EXPECT_EQ(duration_error("2562048h"), "time: invalid duration \"2562048h\"");
  EXPECT_EQ(berth::parse_go_duration("2562047h"), int64_t{2562047} * 3600 * kSecond);
}

TEST(DockerSyntax, TryGoDuration) {
  EXPECT_EQ(berth::try_parse_go_duration("1m30s"), 90 * kSecond);
  EXPECT_EQ(berth::try_parse_go_duration("-1s"), -kSecond);
  EXPECT_EQ(berth::try_parse_go_duration("0"), 0);
  EXPECT_FALSE(berth::try_parse_go_duration(""));
  EXPECT_FALSE(berth::try_parse_go_duration("1"));
  EXPECT_FALSE(berth::try_parse_go_duration("3x"));
  EXPECT_FALSE(berth::try_parse_go_duration("2024-01-02"));
  EXPECT_FALSE(berth::try_parse_go_duration("99999999999h"));
}

TEST(DockerSyntax, NanoCpus) {
  EXPECT_EQ(berth::parse_nano_cpus("1"), kSecond);
  EXPECT_EQ(berth::parse_nano_cpus("1.5"), 1'500'000'000);
  EXPECT_EQ(berth::parse_nano_cpus(".5"), 500'000'000);
  EXPECT_EQ(berth::parse_nano_cpus("0.001"), 1'000'000);
  EXPECT_EQ(berth::parse_nano_cpus("0"), 0);
  EXPECT_EQ(berth::parse_nano_cpus("+2"), 2 * kSecond);
  EXPECT_EQ(berth::parse_nano_cpus("-1"), -kSecond);  // the callers range-check
  EXPECT_EQ(berth::parse_nano_cpus("3/2"), 1'500'000'000);
  EXPECT_EQ(berth::parse_nano_cpus("1/4"), 250'000'000);
  EXPECT_EQ(berth::parse_nano_cpus("1e-3"), 1'000'000);
  EXPECT_EQ(berth::parse_nano_cpus("2E1"), 20 * kSecond);
  EXPECT_EQ(berth::parse_nano_cpus("1e-9"), 1);
  EXPECT_EQ(berth::parse_nano_cpus("0.000000001"), 1);

  EXPECT_EQ(cpus_error("2/3"), "value is too precise");
  EXPECT_EQ(cpus_error("1e-10"), "value is too precise");
  EXPECT_EQ(cpus_error("0.0000000001"), "value is too precise");
  EXPECT_EQ(cpus_error(""), "failed to parse  as a rational number");
  EXPECT_EQ(cpus_error("1.2.3"), "failed to parse 1.2.3 as a rational number");
  EXPECT_EQ(cpus_error("1.5x"), "failed to parse 1.5x as a rational number");
  EXPECT_EQ(cpus_error("abc"), "failed to parse abc as a rational number");
  EXPECT_EQ(cpus_error("1/0"), "failed to parse 1/0 as a rational number");
  EXPECT_EQ(cpus_error("1/-2"), "failed to parse 1/-2 as a rational number");
  EXPECT_EQ(cpus_error("1e99"), "failed to parse 1e99 as a rational number");
  EXPECT_EQ(cpus_error("99999999999"), "failed to parse 99999999999 as a rational number");
}

TEST(DockerSyntax, RestartPolicy) {
  EXPECT_EQ(berth::parse_restart_policy(""), (json{{"Name", ""}, {"MaximumRetryCount", 0}}));
  EXPECT_EQ(berth::parse_restart_policy("no"), (json{{"Name", "no"}, {"MaximumRetryCount", 0}}));
  EXPECT_EQ(berth::parse_restart_policy("always"), (json{{"Name", "always"}, {"MaximumRetryCount", 0}}));
  EXPECT_EQ(berth::parse_restart_policy("unless-stopped"),
            (json{{"Name", "unless-stopped"}, {"MaximumRetryCount", 0}}));
  EXPECT_EQ(berth::parse_restart_policy("on-failure"), (json{{"Name", "on-failure"}, {"MaximumRetryCount", 0}}));
  EXPECT_EQ(berth::parse_restart_policy("on-failure:3"), (json{{"Name", "on-failure"}, {"MaximumRetryCount", 3}}));
  EXPECT_EQ(berth::parse_restart_policy("on-failure:"), (json{{"Name", "on-failure"}, {"MaximumRetryCount", 0}}));
  EXPECT_EQ(berth::parse_restart_policy("always:0"), (json{{"Name", "always"}, {"MaximumRetryCount", 0}}));

  EXPECT_EQ(restart_error("always:1"),
            "invalid restart policy: maximum retry count can only be used with 'on-failure'");
  EXPECT_EQ(restart_error("no:2"), "invalid restart policy: maximum retry count can only be used with 'on-failure'");
  EXPECT_EQ(restart_error("on-failure:-1"), "invalid restart policy: maximum retry count cannot be negative");
  EXPECT_EQ(restart_error("on-failure:x"), "invalid restart policy format: maximum retry count must be an integer");
  EXPECT_EQ(restart_error("on-failure:99999999999"),
            "invalid restart policy format: maximum retry count must be an integer");
  EXPECT_EQ(restart_error(":3"), "invalid restart policy format: no policy provided before colon");
  EXPECT_EQ(restart_error("sometimes"),
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or "
            "'unless-stopped'");
  EXPECT_EQ(restart_error("Always"),
            "invalid restart policy: unknown policy 'Always'; use one of 'no', 'always', 'on-failure', or "
            "'unless-stopped'");
}

}  // namespace
