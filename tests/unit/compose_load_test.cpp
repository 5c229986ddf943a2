// The compose file loader's pure pieces: YAML → JSON (core schema typing, merge keys, errors),
// JSON → YAML round trips, ${VAR} interpolation, .env files, and JSON schema validation (a small
// hand-written schema, then the embedded compose specification).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compose/dotenv.hpp"
#include "compose/interpolate.hpp"
#include "compose/schema.hpp"
#include "compose/yaml.hpp"
#include "util/error.hpp"

using berth::Error;
using nlohmann::json;
using namespace berth::compose;

namespace {

// The message of the berth::Error that f throws ("(no error)" when it does not throw).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

VariableLookup lookup_in(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto found = vars.find(name);
    if (found == vars.end()) return std::nullopt;
    return found->second;
  };
}

json yaml(const std::string& text) { return yaml_to_json(text, "compose.yaml"); }

// ---------------------------------------------------------------------------------------------
// YAML → JSON

TEST(ComposeYaml, PlainScalarsFollowTheCoreSchema) {
  json doc = yaml(R"(
nulls: [null, Null, NULL, ~, !!null ""]
empty:
bools: [true, True, TRUE, false, False, FALSE]
yaml11_words: [yes, no, on, Off, y, n]
ints: [42, -17, +5, 0, 0o17, 0x1F, 0xff, 0755]
floats: [1.5, -2.5E-2, 1e3, .5, 3., 3.8]
specials: [.inf, -.inf, +.Inf, .nan]
words: [hello world, 8080:80, 1.2.3, 0o9, 0xZ, 1e, -]
)");
  EXPECT_EQ(doc["nulls"], json::parse("[null, null, null, null, null]"));
  EXPECT_TRUE(doc["empty"].is_null());
  EXPECT_EQ(doc["bools"], json::parse("[true, true, true, false, false, false]"));
  EXPECT_EQ(doc["yaml11_words"], json::parse(R"(["yes", "no", "on", "Off", "y", "n"])"));

  EXPECT_EQ(doc["ints"], json::parse("[42, -17, 5, 0, 15, 31, 255, 493]"));  // 0755 octal, as go-yaml v3
  for (const json& i : doc["ints"]) EXPECT_TRUE(i.is_number_integer()) << i;

  ASSERT_EQ(doc["floats"].size(), 6u);
  for (const json& f : doc["floats"]) EXPECT_TRUE(f.is_number_float()) << f;
  EXPECT_DOUBLE_EQ(doc["floats"][0].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(doc["floats"][1].get<double>(), -0.025);
  EXPECT_DOUBLE_EQ(doc["floats"][2].get<double>(), 1000.0);
  EXPECT_DOUBLE_EQ(doc["floats"][3].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(doc["floats"][4].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(doc["floats"][5].get<double>(), 3.8);  // version: 3.8 is a number, as in compose

  EXPECT_EQ(doc["specials"][0].get<double>(), INFINITY);
  EXPECT_EQ(doc["specials"][1].get<double>(), -INFINITY);
  EXPECT_EQ(doc["specials"][2].get<double>(), INFINITY);
  EXPECT_TRUE(std::isnan(doc["specials"][3].get<double>()));

  EXPECT_EQ(doc["words"], json::parse(R"(["hello world", "8080:80", "1.2.3", "0o9", "0xZ", "1e", "-"])"));
}

TEST(ComposeYaml, IntegersPastInt64BecomeFloats) {
  json doc = yaml("[9223372036854775807, -9223372036854775808, 9223372036854775808, 123456789012345678901234567890]");
  EXPECT_TRUE(doc[0].is_number_integer());
  EXPECT_EQ(doc[0].get<int64_t>(), INT64_MAX);
  EXPECT_TRUE(doc[1].is_number_integer());
  EXPECT_EQ(doc[1].get<int64_t>(), INT64_MIN);
  EXPECT_TRUE(doc[2].is_number_float());
  EXPECT_DOUBLE_EQ(doc[2].get<double>(), 9223372036854775808.0);
  EXPECT_TRUE(doc[3].is_number_float());
  EXPECT_DOUBLE_EQ(doc[3].get<double>(), 1.2345678901234568e29);
  EXPECT_EQ(yaml("1e999").get<double>(), INFINITY);
  EXPECT_EQ(yaml("-1e999").get<double>(), -INFINITY);
  EXPECT_EQ(yaml("1e-999").get<double>(), 0.0);
}

TEST(ComposeYaml, QuotedAndTaggedScalars) {
  json doc = yaml(R"(
double: "8080"
single: '1.5'
quoted_bool: "true"
quoted_null: 'null'
quoted_empty: ""
non_specific: ! 42
str: !!str 123
str_empty: !!str
int: !!int "42"
hex: !!int 0x10
float: !!float 1
bool: !!bool "false"
nothing: !!null ""
custom: !custom 12
)");
  EXPECT_EQ(doc, json::parse(R"({
    "double": "8080", "single": "1.5", "quoted_bool": "true", "quoted_null": "null", "quoted_empty": "",
    "non_specific": "42", "str": "123", "str_empty": "", "int": 42, "hex": 16, "float": 1.0, "bool": false,
    "nothing": null, "custom": "12"})"));
  EXPECT_TRUE(doc["float"].is_number_float());
  EXPECT_TRUE(doc["int"].is_number_integer());

  EXPECT_EQ(error_of([] { yaml("a: !!int abc\n"); }), "compose.yaml: line 1, column 4: invalid !!int value \"abc\"");
  EXPECT_EQ(error_of([] { yaml("a:\n  b: !!bool yes\n"); }),
            "compose.yaml: line 2, column 6: invalid !!bool value \"yes\"");
  EXPECT_EQ(error_of([] { yaml("a: !!float x1\n"); }), "compose.yaml: line 1, column 4: invalid !!float value \"x1\"");
}

TEST(ComposeYaml, MappingKeysKeepTheirText) {
  json doc = yaml("8080: a\ntrue: b\n1.50: c\n\"quoted\": d\n");
  EXPECT_EQ(doc, json::parse(R"({"8080": "a", "true": "b", "1.50": "c", "quoted": "d"})"));
}

TEST(ComposeYaml, AnchorsAliasesAndMergeKeys) {
  json doc = yaml(R"(
x-common: &common
  image: busybox
  environment:
    A: "1"
x-other: &other
  image: alpine
  restart: always
services:
  explicit_before:
    image: own
    <<: *common
  explicit_after:
    <<: *other
    restart: "no"
  list_first_wins:
    <<: [*common, *other]
  list_reversed:
    <<: [*other, *common]
  inline:
    <<: {image: inline, tty: true}
  quoted_key_is_not_a_merge:
    "<<": literal
  aliased_value:
    environment: *common
)");
  const json& services = doc["services"];
  EXPECT_EQ(services["explicit_before"], json::parse(R"({"image": "own", "environment": {"A": "1"}})"));
  EXPECT_EQ(services["explicit_after"], json::parse(R"({"image": "alpine", "restart": "no"})"));
  EXPECT_EQ(services["list_first_wins"],
            json::parse(R"({"image": "busybox", "environment": {"A": "1"}, "restart": "always"})"));
  EXPECT_EQ(services["list_reversed"],
            json::parse(R"({"image": "alpine", "environment": {"A": "1"}, "restart": "always"})"));
  EXPECT_EQ(services["inline"], json::parse(R"({"image": "inline", "tty": true})"));
  EXPECT_EQ(services["quoted_key_is_not_a_merge"], json::parse(R"({"<<": "literal"})"));
  EXPECT_EQ(services["aliased_value"]["environment"], doc["x-common"]);

  EXPECT_EQ(error_of([] { yaml("a: &x 1\nb:\n  <<: *x\n"); }),
            "compose.yaml: line 3, column 7: the value of a merge key (<<) must be a mapping or a list of mappings");
}

TEST(ComposeYaml, DuplicateKeysAreErrorsWithTheirLines) {
  EXPECT_EQ(error_of([] { yaml("services:\n  web:\n    image: a\n    ports: []\n    image: b\n"); }),
            "compose.yaml: line 5, column 5: mapping key \"image\" already defined at line 3");
  // The same key in different mappings, or set by a merge and then explicitly, is fine.
  EXPECT_NO_THROW(yaml("a: {x: 1}\nb: {x: 2}\n"));
  EXPECT_NO_THROW(yaml("base: &b {x: 1}\nc:\n  <<: *b\n  x: 2\n"));
}

TEST(ComposeYaml, SyntaxErrorsNameTheLineAndColumn) {
  EXPECT_EQ(error_of([] { yaml("services:\n  web: [a, b\n"); }),
            "compose.yaml: line 3, column 1: end of sequence flow not found");
  EXPECT_EQ(error_of([] { yaml("a: *nowhere\n"); }),
            "compose.yaml: line 1, column 4: the referenced anchor is not defined");
  EXPECT_EQ(error_of([] { yaml("? [a, b]\n: 1\n"); }), "compose.yaml: line 1, column 3: mapping keys must be scalars");
  EXPECT_EQ(error_of([] { yaml("a: &x [1, *x]\n"); }),
            "compose.yaml: line 1, column 11: alias refers to a node that contains it");
  EXPECT_EQ(error_of([] { yaml("a: 1\n---\nb: 2\n"); }),
            "compose.yaml: line 2, column 1: a compose file holds a single YAML document");
}

TEST(ComposeYaml, EmptyDocumentsAreNull) {
  EXPECT_TRUE(yaml("").is_null());
  EXPECT_TRUE(yaml("# nothing but a comment\n\n").is_null());
  EXPECT_TRUE(yaml("---\n").is_null());
}

TEST(ComposeYaml, AliasExpansionIsBounded) {
  // "Billion laughs": each level repeats the previous one ten times.
  std::string text = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int level = 1; level <= 7; ++level) {
    std::string prev = "*l" + std::to_string(level - 1);
    text += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) text += (i ? ", " : "") + prev;
    text += "]\n";
  }
  EXPECT_NE(error_of([&] { yaml(text); }).find("too large once its aliases are expanded"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// JSON → YAML

TEST(ComposeYaml, JsonToYamlIsBlockStyleAndQuotesWhatWouldChangeType) {
  json doc = json::parse(R"({"services": {"web": {"image": "nginx", "ports": ["8080:80", 443],
      "environment": {"DEBUG": "true", "EMPTY": "", "N": null}}}, "volumes": {}})");
  EXPECT_EQ(json_to_yaml(doc),
            "services:\n"
            "  web:\n"
            "    environment:\n"
            "      DEBUG: \"true\"\n"
            "      EMPTY: \"\"\n"
            "      \"N\": null\n"
            "    image: nginx\n"
            "    ports:\n"
            "      - 8080:80\n"
            "      - 443\n"
            "volumes: {}\n");
}

TEST(ComposeYaml, JsonToYamlRoundTrips) {
  json doc = json::parse(R"({
    "name": "shop",
    "services": {
      "web": {
        "image": "nginx:1.25",
        "ports": ["8080:80", "443", 9000, {"target": 80, "published": "8081"}],
        "environment": {
          "BOOL": "true", "NULL": "null", "TILDE": "~", "EMPTY": "", "FLOAT": "1.5", "HEX": "0x1F",
          "OCT": "0o17", "YES": "yes", "INF": ".inf", "COLON": "a: b", "HASH": "a #b", "LEAD": " lead",
          "TRAIL": "trail ", "DASH": "- item", "QUOTES": "say \"hi\" 'there'", "LINES": "one\ntwo\n",
          "NOEOL": "one\ntwo", "TAB": "a\tb", "UNICODE": "héllo ✓", "STAR": "*not-alias", "AMP": "&x",
          "BANG": "!tag", "BRACE": "{x}", "PERCENT": "%x", "AT": "@x", "BACKTICK": "`x"
        },
        "replicas": 3, "negative": -7, "ratio": 0.5, "whole_float": 2.0, "big": 1e300, "tiny": 1e-300,
        "flag": false, "nothing": null, "empty_list": [], "empty_map": {},
        "nested": [[1, [2, []]], [{"k": "v", "l": [{}]}]],
        "<<": "a key that is not a merge", "8080": "numeric key", "true": "bool key", "": "empty key"
      }
    }
  })");
  std::string text = json_to_yaml(doc);
  json back = yaml_to_json(text, "round-trip.yaml");
  EXPECT_EQ(back, doc) << text;
  EXPECT_TRUE(back["services"]["web"]["whole_float"].is_number_float()) << text;
  // Scalars at the top level too.
  for (const json& scalar : json::parse(R"(["8080", "", "null", 12, 1.25, true, null, "plain"])"))
    EXPECT_EQ(yaml_to_json(json_to_yaml(scalar), "scalar.yaml"), scalar) << json_to_yaml(scalar);
}

// ---------------------------------------------------------------------------------------------
// Interpolation

const VariableLookup kEnv = lookup_in({{"A", "apple"}, {"A_B", "ab"}, {"B", "banana"}, {"EMPTY", ""}});

std::string interp(const std::string& s, const VariableWarning& warn = {}) {
  return interpolate_string(s, kEnv, "compose.yaml: services.web.image", warn);
}

TEST(ComposeInterpolate, PlainReferences) {
  EXPECT_EQ(interp("$A"), "apple");
  EXPECT_EQ(interp("${A}"), "apple");
  EXPECT_EQ(interp("x${A}y"), "xappley");
  EXPECT_EQ(interp("$A_B"), "ab");  // the longest name
  EXPECT_EQ(interp("$A-b"), "apple-b");
  EXPECT_EQ(interp("${A}_B"), "apple_B");
  EXPECT_EQ(interp("$A$B"), "applebanana");
  EXPECT_EQ(interp("no references"), "no references");
  EXPECT_EQ(interp(""), "");
}

TEST(ComposeInterpolate, DollarsThatAreNotReferences) {
  EXPECT_EQ(interp("$$"), "$");
  EXPECT_EQ(interp("$$A"), "$A");
  EXPECT_EQ(interp("$${A}"), "${A}");
  EXPECT_EQ(interp("$$$A"), "$apple");
  EXPECT_EQ(interp("cost: 5$"), "cost: 5$");
  EXPECT_EQ(interp("$1 and $- and a $ sign"), "$1 and $- and a $ sign");
}

TEST(ComposeInterpolate, UnsetVariablesAreEmptyWithOneWarning) {
  std::vector<std::string> warned;
  auto warn = [&](const std::string& name) { warned.push_back(name); };
  EXPECT_EQ(interp("[${UNSET}][$UNSET][$OTHER]", warn), "[][][]");
  EXPECT_EQ(warned, (std::vector<std::string>{"UNSET", "OTHER"}));
  warned.clear();
  // Set-but-empty variables and references with a default do not warn.
  EXPECT_EQ(interp("[$EMPTY][${UNSET:-d}][${UNSET-d}][${UNSET:+x}]", warn), "[][d][d][]");
  EXPECT_TRUE(warned.empty());
}

TEST(ComposeInterpolate, DefaultsAndAlternatives) {
  EXPECT_EQ(interp("${A:-d}"), "apple");
  EXPECT_EQ(interp("${A-d}"), "apple");
  EXPECT_EQ(interp("${UNSET:-d}"), "d");
  EXPECT_EQ(interp("${UNSET-d}"), "d");
  EXPECT_EQ(interp("${EMPTY:-d}"), "d");
  EXPECT_EQ(interp("${EMPTY-d}"), "");
  EXPECT_EQ(interp("${UNSET:-}"), "");
  EXPECT_EQ(interp("${UNSET:-with spaces/and:colons}"), "with spaces/and:colons");

  EXPECT_EQ(interp("${A:+alt}"), "alt");
  EXPECT_EQ(interp("${A+alt}"), "alt");
  EXPECT_EQ(interp("${EMPTY:+alt}"), "");
  EXPECT_EQ(interp("${EMPTY+alt}"), "alt");
  EXPECT_EQ(interp("${UNSET:+alt}"), "");
  EXPECT_EQ(interp("${UNSET+alt}"), "");
}

TEST(ComposeInterpolate, NestedReferences) {
  EXPECT_EQ(interp("${UNSET:-${B:-x}}"), "banana");
  EXPECT_EQ(interp("${UNSET:-${UNSET2:-x}}"), "x");
  EXPECT_EQ(interp("${UNSET:-$A}"), "apple");
  EXPECT_EQ(interp("${UNSET:-pre-${A}-post}!"), "pre-apple-post!");
  EXPECT_EQ(interp("${A:+[${B}]}"), "[banana]");
  EXPECT_EQ(interp("${UNSET:-$${NOT}}"), "${NOT}");
  // An argument is only evaluated when used: the inner required reference does not fail.
  EXPECT_EQ(interp("${A:-${UNSET:?boom}}"), "apple");
}

TEST(ComposeInterpolate, RequiredVariables) {
  EXPECT_EQ(interp("${A:?need A}"), "apple");
  EXPECT_EQ(interp("${EMPTY?need it}"), "");
  EXPECT_EQ(error_of([] { interp("${UNSET:?please set UNSET}"); }),
            "compose.yaml: services.web.image: required variable UNSET is missing a value: please set UNSET");
  EXPECT_EQ(error_of([] { interp("${EMPTY:?}"); }),
            "compose.yaml: services.web.image: required variable EMPTY is missing a value");
  EXPECT_EQ(error_of([] { interp("${UNSET?}"); }),
            "compose.yaml: services.web.image: required variable UNSET is missing a value");
  EXPECT_EQ(error_of([] { interp("${UNSET:?$A is set but UNSET is not}"); }),
            "compose.yaml: services.web.image: required variable UNSET is missing a value: apple is set but UNSET "
            "is not");
}

TEST(ComposeInterpolate, MalformedReferences) {
  for (const std::string bad :
       {"${", "${A", "pre ${A:-x", "${}", "${A B}", "${A:x}", "${1}", "${-A}", "${A:}", "${UNSET:-${B}"}) {
    EXPECT_EQ(error_of([&] { interp(bad); }),
              "compose.yaml: services.web.image: invalid interpolation format for \"" + bad + "\"")
        << bad;
  }
}

TEST(ComposeInterpolate, DocumentStringsWithTheirPaths) {
  json doc = json::parse(R"({
    "services": {"web": {"image": "nginx:${TAG:-latest}", "environment": ["A=$A", "COST=5$$", "X=$UNSET"],
                         "ports": [8080], "read_only": true, "labels": {"${A}": "$B"}}},
    "x-unset-again": "$UNSET"
  })");
  std::vector<std::string> warned;
  json out = interpolate(doc, kEnv, "compose.yaml", [&](const std::string& name) { warned.push_back(name); });
  EXPECT_EQ(out, json::parse(R"({
    "services": {"web": {"image": "nginx:latest", "environment": ["A=apple", "COST=5$", "X="],
                         "ports": [8080], "read_only": true, "labels": {"${A}": "banana"}}},
    "x-unset-again": ""
  })"));
  EXPECT_EQ(warned, std::vector<std::string>{"UNSET"});  // once for the document

  json bad = json::parse(R"({"services": {"web": {"environment": ["OK=1", "X=${X:?set X}"]}}})");
  EXPECT_EQ(error_of([&] { interpolate(bad, kEnv, "compose.yaml"); }),
            "compose.yaml: services.web.environment.1: required variable X is missing a value: set X");
  EXPECT_EQ(error_of([&] { interpolate(json::parse(R"({"a": {"b": "${"}})"), kEnv, "c.yml"); }),
            "c.yml: a.b: invalid interpolation format for \"${\"");
}

// ---------------------------------------------------------------------------------------------
// .env files

using Vars = std::vector<std::pair<std::string, std::string>>;

TEST(ComposeDotenv, QuotingCommentsAndExport) {
  std::string text =
      "# a comment\n"
      "\n"
      "   \n"
      "A=1\n"
      "export B=two\n"
      "C = spaced   \n"
      "D=value # comment\n"
      "E=value#not-a-comment\n"
      "F='single $A \\n \\' kept'\n"
      "G=\"double $A\\n\\ttab \\\"q\\\" \\\\ \\$A\"\n"
      "H='x' # comment after quotes\n"
      "I=\n"
      "J=  leading blanks go\n"
      "K.dotted-name=ok\n"
      "L: yaml-like\n"
      "  # indented comment\n"
      "export=a key named export\n";
  Vars vars = parse_dotenv(text, ".env", lookup_in({}));
  EXPECT_EQ(vars, (Vars{{"A", "1"},
                        {"B", "two"},
                        {"C", "spaced"},
                        {"D", "value"},
                        {"E", "value#not-a-comment"},
                        {"F", "single $A \\n ' kept"},
                        {"G", "double 1\n\ttab \"q\" \\ $A"},
                        {"H", "x"},
                        {"I", ""},
                        {"J", "leading blanks go"},
                        {"K.dotted-name", "ok"},
                        {"L", "yaml-like"},
                        {"export", "a key named export"}}));
}

TEST(ComposeDotenv, MultilineValuesAndLineNumbers) {
  Vars vars = parse_dotenv("A=\"first\nsecond\"\nB='x\ny'\nC=3\n", ".env", lookup_in({}));
  EXPECT_EQ(vars, (Vars{{"A", "first\nsecond"}, {"B", "x\ny"}, {"C", "3"}}));
  // Errors after a multi-line value count its lines.
  EXPECT_EQ(error_of([] { parse_dotenv("A=\"1\n2\n3\"\nBAD!=1\n", ".env", lookup_in({})); }),
            ".env:4: unexpected character \"!\" in variable name \"BAD!=1\"");
  EXPECT_EQ(error_of([] { parse_dotenv("A=1\nB=\"abc\nno end\n", ".env", lookup_in({})); }),
            ".env:2: unterminated quoted value \"abc");
  EXPECT_EQ(error_of([] { parse_dotenv("A=\"x\" y\n", ".env", lookup_in({})); }),
            ".env:1: unexpected character \"y\" after the quoted value");
}

TEST(ComposeDotenv, InterpolationSeesEarlierKeysThenTheLookup) {
  VariableLookup env = lookup_in({{"FROM_ENV", "env"}, {"A", "shadowed"}, {"INHERITED", "inh"}});
  std::string text =
      "A=file\n"
      "B=${A}-${FROM_ENV}-${UNSET:-dflt}\n"
      "C=\"$A and $$A\"\n"
      "D='$A'\n"
      "INHERITED\n"
      "NOT_IN_ENV\n"
      "E=${LATER}\n"
      "LATER=late\n";
  EXPECT_EQ(parse_dotenv(text, ".env", env), (Vars{{"A", "file"},
                                                   {"B", "file-env-dflt"},
                                                   {"C", "file and $A"},
                                                   {"D", "$A"},
                                                   {"INHERITED", "inh"},
                                                   {"E", ""},
                                                   {"LATER", "late"}}));
  EXPECT_EQ(error_of([&] { parse_dotenv("OK=1\nX=${MISSING:?set it}\n", "app.env", env); }),
            "app.env:2: required variable MISSING is missing a value: set it");
}

TEST(ComposeDotenv, RedefinitionsCrlfAndBadLines) {
  EXPECT_EQ(parse_dotenv("A=1\r\nB=2\r\nA=3\r\n", ".env", lookup_in({})), (Vars{{"A", "3"}, {"B", "2"}}));
  EXPECT_EQ(error_of([] { parse_dotenv("A=1\nBAD KEY=2\n", ".env", lookup_in({})); }),
            ".env:2: unexpected character \" \" in variable name \"BAD KEY=2\"");
  EXPECT_EQ(error_of([] { parse_dotenv("=value\n", ".env", lookup_in({})); }),
            ".env:1: unexpected character \"=\" in variable name \"=value\"");
  EXPECT_EQ(error_of([] { parse_dotenv("\"A\"=1\n", ".env", lookup_in({})); }),
            ".env:1: unexpected character \"\"\" in variable name \"\"A\"=1\"");
}

TEST(ComposeDotenv, ReadsFiles) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "berth-compose-dotenv";
  std::filesystem::create_directories(dir);
  std::string file = (dir / "test.env").string();
  std::ofstream(file) << "A=1\nB=${A}2\n";
  EXPECT_EQ(read_dotenv(file, lookup_in({})), (Vars{{"A", "1"}, {"B", "12"}}));
  std::filesystem::remove_all(dir);
  EXPECT_EQ(error_of([&] { read_dotenv(file, lookup_in({})); }), file + ": no such file or directory");
}

// ---------------------------------------------------------------------------------------------
// JSON schema

const json kSmallSchema = json::parse(R"({
  "$defs": {
    "port": {"oneOf": [
      {"type": "integer", "minimum": 1, "maximum": 65535},
      {"type": "string", "pattern": "^[0-9]+(-[0-9]+)?$"}
    ]},
    "labels": {"type": "object", "patternProperties": {"^[a-z.]+$": {"type": "string"}},
               "additionalProperties": false}
  },
  "definitions": {"name": {"type": "string", "minLength": 1}},
  "type": "object",
  "required": ["name", "ports"],
  "properties": {
    "name": {"$ref": "#/definitions/name"},
    "ports": {"type": "array", "items": {"$ref": "#/$defs/port"}, "uniqueItems": true, "maxItems": 6},
    "labels": {"$ref": "#/$defs/labels"},
    "mode": {"enum": ["a", "b"]},
    "count": {"type": "integer"}
  },
  "patternProperties": {"^x-": true},
  "additionalProperties": false
})");

TEST(ComposeJsonSchema, AcceptsValidValues) {
  JsonSchema schema(kSmallSchema);
  EXPECT_EQ(schema.problems(json::parse(R"({"name": "n", "ports": [80, "8000-8010"], "labels": {"a.b": "c"},
                                            "mode": "a", "count": 3.0, "x-anything": [1]})")),
            std::vector<std::string>{});
}

TEST(ComposeJsonSchema, ReportsEveryProblemWithItsPath) {
  JsonSchema schema(kSmallSchema);
  EXPECT_EQ(schema.problems(json::object()),
            (std::vector<std::string>{"(root): 'name' is required", "(root): 'ports' is required"}));
  EXPECT_EQ(schema.problems(json::array()), std::vector<std::string>{"(root): must be an object"});

  EXPECT_EQ(schema.problems(json::parse(R"({"name": "", "ports": [0, "80x", true, 80, 80]})")),
            (std::vector<std::string>{
                "name: must be at least 1 characters long",
                "ports: must not contain duplicates (items 3 and 4 are both 80)",
                "ports.0: must be >= 1",
                "ports.1: must match the pattern '^[0-9]+(-[0-9]+)?$'",
                "ports.2: must be an integer or string",
            }));

  EXPECT_EQ(schema.problems(json::parse(R"({"name": "n", "ports": [1, 2, 3, 4, 5, 6, 7], "labels": {"A": "x", "b": 1},
                                            "mode": "c", "count": 1.5, "extra": 1})")),
            (std::vector<std::string>{
                "count: must be an integer",
                "(root): additional property 'extra' is not allowed",
                "labels: additional property 'A' is not allowed",
                "labels.b: must be a string",
                "mode: must be one of \"a\", \"b\"",
                "ports: must have at most 6 items",
            }));
}

TEST(ComposeJsonSchema, Combinators) {
  JsonSchema ambiguous(json::parse(R"({"oneOf": [{"type": "number"}, {"type": "integer"}]})"));
  EXPECT_TRUE(ambiguous.problems(1.5).empty());
  EXPECT_EQ(ambiguous.problems(1), std::vector<std::string>{"(root): matches more than one of the allowed forms"});

  JsonSchema any(json::parse(R"({"anyOf": [{"type": "string", "maxLength": 2}, {"const": 5}]})"));
  EXPECT_TRUE(any.problems("ab").empty());
  EXPECT_TRUE(any.problems(5).empty());
  EXPECT_EQ(any.problems("abc"), std::vector<std::string>{"(root): must be at most 2 characters long"});
  EXPECT_EQ(any.problems(6), std::vector<std::string>{"(root): must be 5"});
  EXPECT_EQ(any.problems(nullptr), std::vector<std::string>{"(root): must be a string or integer"});

  JsonSchema all(json::parse(R"({"allOf": [{"minimum": 2}, {"maximum": 4}], "not": {"const": 3}})"));
  EXPECT_TRUE(all.problems(2).empty());
  EXPECT_EQ(all.problems(3), std::vector<std::string>{"(root): is not allowed"});
  EXPECT_EQ(all.problems(5), std::vector<std::string>{"(root): must be <= 4"});

  JsonSchema same_type(json::parse(R"({"oneOf": [{"type": "object", "required": ["a"]},
                                                  {"type": "object", "required": ["b"]}]})"));
  EXPECT_EQ(same_type.problems(json::object()),
            std::vector<std::string>{"(root): does not match any of the allowed forms"});

  JsonSchema nothing(false);
  EXPECT_EQ(nothing.problems(1), std::vector<std::string>{"(root): is not allowed"});
  JsonSchema tuple(json::parse(R"({"items": [{"type": "string"}], "additionalItems": {"type": "integer"}})"));
  EXPECT_EQ(tuple.problems(json::parse(R"(["a", 1, "b"])")), std::vector<std::string>{"2: must be an integer"});
}

// ---------------------------------------------------------------------------------------------
// The compose specification

const char* const kRealisticCompose = R"(
name: shop
services:
  web:
    image: nginx:1.25
    ports:
      - "8080:80"
      - 443
      - target: 9000
        published: "9000"
        protocol: tcp
        mode: host
    volumes:
      - ./html:/usr/share/nginx/html:ro
      - type: volume
        source: data
        target: /data
        volume:
          nocopy: true
      - type: tmpfs
        target: /cache
        tmpfs:
          size: 10000
    networks:
      - front
      - back
    depends_on:
      db:
        condition: service_healthy
        restart: true
    environment:
      MODE: production
      DEBUG: "false"
      WORKERS: 4
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      interval: 30s
      timeout: 5s
      retries: 3
      start_period: 10s
    deploy:
      replicas: 2
      resources:
        limits:
          cpus: "0.5"
          memory: 256M
    restart: unless-stopped
    labels:
      - com.example.role=web
    command: ["nginx", "-g", "daemon off;"]
  db:
    image: postgres:16
    environment:
      - POSTGRES_PASSWORD=secret
    volumes:
      - data:/var/lib/postgresql/data
    networks:
      back:
        aliases: [database]
      front:
    healthcheck:
      test: pg_isready
      interval: 5s
    x-note: an extension
volumes:
  data:
    labels:
      com.example.purpose: storage
  external_data:
    external: true
    name: shared-data
  empty:
networks:
  front:
  back:
    driver: bridge
    internal: true
    labels: {tier: back}
  outside:
    external: true
    name: host-net
x-common:
  whatever: 1
)";

// The realistic file with one change at a dotted path (nlohmann's JSON pointer).
json compose_with(const std::string& pointer, const json& value) {
  json doc = yaml(kRealisticCompose);
  doc[json::json_pointer(pointer)] = value;
  return doc;
}

std::string compose_error(const json& doc) {
  return error_of([&] { validate_compose(doc, "compose.yaml"); });
}

TEST(ComposeSchema, AcceptsARealisticFile) {
  json doc = yaml(kRealisticCompose);
  EXPECT_EQ(compose_error(doc), "(no error)");
  EXPECT_EQ(compose_error(json::parse(R"({"services": {"a": {"image": "x"}}})")), "(no error)");
}

TEST(ComposeSchema, ProblemsNameTheKeyPath) {
  json typo = yaml(kRealisticCompose);
  typo["services"]["web"]["imgae"] = "nginx";
  EXPECT_EQ(compose_error(typo), "compose.yaml: services.web: additional property 'imgae' is not allowed");

  EXPECT_EQ(compose_error(compose_with("/services/web/ports", 8080)),
            "compose.yaml: services.web.ports: must be an array");
  EXPECT_EQ(compose_error(compose_with("/services/web/ports/1", true)),
            "compose.yaml: services.web.ports.1: must be a number, string or object");
  EXPECT_EQ(compose_error(compose_with("/services/web/ports/2/published", 1.5)),
            "compose.yaml: services.web.ports.2.published: must be a string or integer");
  EXPECT_EQ(compose_error(compose_with("/services/web/volumes/1/type", "blob")),
            "compose.yaml: services.web.volumes.1.type: must be one of \"bind\", \"volume\", \"tmpfs\", \"cluster\", "
            "\"npipe\", \"image\"");
  EXPECT_EQ(compose_error(compose_with("/services/web/volumes/1", json::parse(R"({"source": "data"})"))),
            "compose.yaml: services.web.volumes.1: 'type' is required");
  EXPECT_EQ(compose_error(compose_with("/services/web/depends_on/db/condition", "service_ready")),
            "compose.yaml: services.web.depends_on.db.condition: must be one of \"service_started\", "
            "\"service_healthy\", \"service_completed_successfully\"");
  EXPECT_EQ(compose_error(compose_with("/services/web/deploy/replicas", 1.5)),
            "compose.yaml: services.web.deploy.replicas: must be an integer or string");
  EXPECT_EQ(compose_error(compose_with("/services/web/ports/0", "8080:80")), "(no error)");
  EXPECT_EQ(compose_error(compose_with("/services/web/ports/1", "8080:80")),
            "compose.yaml: services.web.ports: must not contain duplicates (items 0 and 1 are both \"8080:80\")");
  EXPECT_EQ(compose_error(compose_with("/services/my web", json::object())),
            "compose.yaml: services: additional property 'my web' is not allowed");
  EXPECT_EQ(compose_error(compose_with("/networks/back/internal", "yes please")),
            "(no error)");  // interpolated strings
  EXPECT_EQ(compose_error(compose_with("/networks/back/internal", 3)),
            "compose.yaml: networks.back.internal: must be a boolean or string");
  EXPECT_EQ(compose_error(json::parse("[]")), "compose.yaml: (root): must be an object");
}

TEST(ComposeSchema, ValidationIsFast) {
  json doc = yaml(kRealisticCompose);
  validate_compose(doc, "compose.yaml");  // parses the schema and compiles its patterns
  constexpr int kRounds = 200;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) validate_compose(doc, "compose.yaml");
  auto each = (std::chrono::steady_clock::now() - start) / kRounds;
  // Well under 1 ms in a release build; the bound leaves room for sanitizers and a busy machine,
  // and still catches patterns being recompiled per validation.
  EXPECT_LT(each, std::chrono::milliseconds(20));
  std::printf("validate_compose: %lld µs per validation\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(each).count()));
}

}  // namespace

TEST(ComposeYaml, MergeTagsAreReportedWithTheirPaths) {
  std::vector<YamlTag> tags;
  json doc = yaml_to_json(R"(
services:
  web:
    ports: !override ["8080:80"]
    environment: !reset {}
    dns: !reset
    labels: !custom {a: b}
)",
                          "compose.yaml", &tags);
  ASSERT_EQ(tags.size(), 3u);
  EXPECT_EQ(tags[0].tag, "!override");
  EXPECT_EQ(tags[0].path, (std::vector<std::string>{"services", "web", "ports"}));
  EXPECT_EQ(tags[1].tag, "!reset");
  EXPECT_EQ(tags[1].path, (std::vector<std::string>{"services", "web", "environment"}));
  EXPECT_EQ(tags[2].path, (std::vector<std::string>{"services", "web", "dns"}));
  // The values themselves are read as usual (other tags are ignored).
  EXPECT_EQ(doc["services"]["web"]["ports"], json::array({"8080:80"}));
  EXPECT_EQ(doc["services"]["web"]["labels"], json({{"a", "b"}}));
}

TEST(ComposeYaml, Yaml11AmbiguousStringsAreQuoted) {
  json value = {{"yes", "yes"},         {"b60", "1:20"}, {"port", "8080:80"}, {"under", "1_000"},
                {"date", "2001-12-14"}, {"cr", "a\rb"},  {"plain", "hello"}};
  std::string text = json_to_yaml(value);
  for (const char* quoted :
       {"\"yes\": \"yes\"", "b60: \"1:20\"", "under: \"1_000\"", "date: \"2001-12-14\"", "cr: \"a\\rb\""})
    EXPECT_NE(text.find(quoted), std::string::npos) << quoted << " in\n" << text;
  EXPECT_NE(text.find("port: 8080:80\n"), std::string::npos) << text;  // 80 > 59: not base 60
  EXPECT_NE(text.find("plain: hello\n"), std::string::npos) << text;
  EXPECT_EQ(yaml_to_json(text, "out.yaml"), value);  // and read back the same
}
