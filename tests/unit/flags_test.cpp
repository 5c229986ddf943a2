// docker-style flag parsing (cli/flags.cpp).
#include <gtest/gtest.h>

#include "cli/flags.hpp"

using namespace berth::cli;

namespace {

const std::vector<FlagSpec> kSpecs = {{"all", 'a', false, "", ""},
                                      {"quiet", 'q', false, "", ""},
                                      {"filter", 'f', true, "", ""},
                                      {"format", 0, true, "", ""}};

ParsedArgs parse(std::vector<std::string> args, bool interspersed = true) {
  args.insert(args.begin(), "cmd");
  return parse_args(args, 1, kSpecs, interspersed);
}

TEST(Flags, LongShortGroupedAndValues) {
  ParsedArgs p = parse({"-aq", "--filter", "dangling=true", "-freference=x*", "--format={{.ID}}", "img"});
  EXPECT_TRUE(p.has("all"));
  EXPECT_TRUE(p.has("quiet"));
  EXPECT_EQ(p.all("filter"), (std::vector<std::string>{"dangling=true", "reference=x*"}));
  EXPECT_EQ(p.get("format"), "{{.ID}}");
  EXPECT_EQ(p.positionals, (std::vector<std::string>{"img"}));
}

TEST(Flags, ShortValueSeparateAndEquals) {
  ParsedArgs p = parse({"-f", "a=b", "-f=c=d"});
  EXPECT_EQ(p.all("filter"), (std::vector<std::string>{"a=b", "c=d"}));
}

TEST(Flags, BoolWithExplicitValue) {
  EXPECT_FALSE(parse({"--all=false"}).has("all"));
  EXPECT_TRUE(parse({"--all=true"}).has("all"));
  EXPECT_THROW(parse({"--all=maybe"}), UsageError);
}

TEST(Flags, InterspersedAndStopAtPositional) {
  EXPECT_TRUE(parse({"img", "-a"}).has("all"));
  ParsedArgs p = parse({"img", "-a", "x"}, false);
  EXPECT_FALSE(p.has("all"));
  EXPECT_EQ(p.positionals, (std::vector<std::string>{"img", "-a", "x"}));
}

TEST(Flags, DoubleDashEndsFlags) {
  ParsedArgs p = parse({"--", "-a"});
  EXPECT_FALSE(p.has("all"));
  EXPECT_EQ(p.positionals, (std::vector<std::string>{"-a"}));
}

TEST(Flags, ErrorsNameTheFlag) {
  try {
    parse({"--nope"});
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "unknown flag: --nope");
  }
  try {
    parse({"-z"});
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'z'"), std::string::npos);
  }
  EXPECT_THROW(parse({"--filter"}), UsageError);
  EXPECT_THROW(parse({"-f"}), UsageError);
}

TEST(Flags, SingleDashIsPositional) { EXPECT_EQ(parse({"-"}).positionals, (std::vector<std::string>{"-"})); }

}  // namespace
