#include "cli/format.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

using berth::Error;
using berth::cli::format_inspect;
using berth::cli::format_list;
using berth::cli::go_json;
using berth::cli::MissingKey;
using berth::cli::render_template;
using berth::cli::tabwrite;
using berth::cli::UsageError;
using nlohmann::json;

namespace {

const json& data() {
  static const json d = json::parse(R"({
    "Name": "web", "Id": "abc123def456", "Count": 3, "Neg": -7, "Ratio": 1.5, "Big": 2.0, "Tiny": 1e-7,
    "Odd": 1234567.5, "Huge": 1e20, "Small": 0.0001, "On": true, "Off": false, "Null": null,
    "Tags": ["a", "b", "c"], "Empty": [], "Labels": {"z": "26", "a": "1"}, "NoLabels": {},
    "Config": {"Image": "alpine", "Env": ["A=1", "B=2"], "Html": "<a&b>"},
    "Nested": {"List": [{"N": 1}, {"N": 2}], "Mixed": {"k": 1}}
  })");
  return d;
}

struct Case {
  const char* tmpl;
  const char* want;
};

void expect_renders(const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.tmpl);
    try {
      EXPECT_EQ(render_template(c.tmpl, data()), c.want);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "threw: " << e.what();
    }
  }
}

TEST(FormatTemplate, FieldsAndDefaultPrinting) {
  expect_renders({
      {"plain text", "plain text"},
      {"{{.Name}}", "web"},
      {"{{.Config.Image}}", "alpine"},
      {"{{$.Name}}/{{$.Config.Image}}", "web/alpine"},
      {"{{.Missing}}", "<no value>"},
      {"{{.Missing.Deeper}}", "<no value>"},
      {"{{.Null}}", "<nil>"},
      {"{{.Count}} {{.Neg}} {{.Ratio}} {{.Big}} {{.Tiny}} {{.Odd}}", "3 -7 1.5 2 1e-07 1.2345675e+06"},
      {"{{.Huge}} {{.Small}}", "1e+20 0.0001"},  // beyond 2^53 floats print as Go prints them
      {"{{.On}} {{.Off}}", "true false"},
      {"{{.Tags}} {{.Empty}}", "[a b c] []"},
      {"{{.Labels}} {{.NoLabels}}", "map[a:1 z:26] map[]"},
      {"{{.Config}}", "map[Env:[A=1 B=2] Html:<a&b> Image:alpine]"},
      {"{{.Nested.List}}", "[map[N:1] map[N:2]]"},
      {"{{.Name\n}}", "web"},  // newlines are spaces inside actions
      {R"({{"a\tb\u00e9"}}|{{`raw\n`}})", "a\tb\xC3\xA9|raw\\n"},
      {"{{'a'}} {{1.5}} {{0x1F}} {{1e3}} {{-3}} {{true}}", "97 1.5 31 1000 -3 true"},
  });
}

TEST(FormatTemplate, TrimMarkersAndComments) {
  expect_renders({
      {"a  {{- .Name -}}  \n b", "awebb"},
      {"a {{.Name -}} \n b", "a webb"},
      {"{{- /* a comment */ -}}  x", "x"},
      {"a {{/* c */}} b", "a  b"},
      {"{{3 -}} {{- -3}}", "3-3"},
  });
}

TEST(FormatTemplate, ControlStructuresAndVariables) {
  expect_renders({
      {"{{if .On}}yes{{else}}no{{end}}", "yes"},
      {"{{if .Off}}a{{else if .Count}}b{{else}}c{{end}}", "b"},
      {"{{if .Empty}}a{{else if .Null}}b{{else if .Missing}}c{{else}}d{{end}}", "d"},
      {"{{if .NoLabels}}a{{else}}b{{end}}{{if .Labels}}c{{end}}", "bc"},
      {"{{with .Config}}{{.Image}}{{end}}", "alpine"},
      {"{{with .Missing}}x{{else}}none{{end}}", "none"},
      {"{{with .Off}}x{{else with .Name}}{{.}}{{end}}", "web"},
      {"{{with $c := .Config}}{{$c.Image}}:{{.Image}}{{end}}", "alpine:alpine"},
      {"{{range .Tags}}{{.}} {{end}}", "a b c "},
      {"{{range $i, $e := .Tags}}{{$i}}={{$e}},{{end}}", "0=a,1=b,2=c,"},
      {"{{range $e := .Tags}}{{$e}}{{end}}", "abc"},
      {"{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", "a=1;z=26;"},
      {"{{range .Labels}}{{.}} {{end}}", "1 26 "},
      {"{{range .Nested.List}}{{.N}}{{$.Name}}{{end}}", "1web2web"},
      {"{{range .Empty}}x{{else}}empty{{end}}", "empty"},
      {"{{range .Null}}x{{else}}nil{{end}}", "nil"},
      {"{{range .Missing}}x{{else}}missing{{end}}", "missing"},
      {R"({{range .Tags}}{{if eq . "b"}}{{break}}{{end}}{{.}}{{end}})", "a"},
      {R"({{range .Tags}}{{if eq . "b"}}{{continue}}{{end}}{{.}}{{end}})", "ac"},
      {"{{range 3}}{{.}}{{end}}", "012"},
      {"{{$x := .Name}}{{$x}}", "web"},
      {"{{$x := 1}}{{if .On}}{{$x = 2}}{{end}}{{$x}}", "2"},
      {"{{$n := 0}}{{range .Tags}}{{$n = .}}{{end}}{{$n}}", "c"},
  });
}

TEST(FormatTemplate, BuiltinFunctions) {
  expect_renders({
      {R"({{eq .Name "db" "web"}} {{eq .Name "db"}})", "true false"},
      {"{{ne .Count 3}} {{eq .Count 3}} {{eq .Ratio 1.5}}", "false true true"},
      {R"({{lt .Count 5}} {{le 3 .Count}} {{gt .Ratio 1}} {{ge .Name "a"}})", "true true true true"},
      {R"({{eq .Null nil}} {{eq .Missing "x"}})", "true false"},
      {"{{and .On .Name}} {{and .Off .Name}} {{or .Empty .Name}} {{not .On}}", "web false web false"},
      {R"({{or .Missing "default"}})", "default"},
      {"{{len .Tags}} {{len .Name}} {{len .Labels}} {{len .Null}}", "3 3 2 0"},
      {R"({{index .Tags 1}} {{index .Labels "z"}} [{{index .Labels "nope"}}] {{index .Nested.List 1 "N"}})",
       "b 26 [] 2"},
      {R"({{index .Nested.Mixed "nope"}} [{{index .Null "k"}}])", "<nil> []"},
      {"{{(index .Nested.List 0).N}}", "1"},
      {"{{slice .Name 1}} {{slice .Tags 1 2}}", "eb [b]"},
      {R"({{printf "%s-%d" .Name .Count}})", "web-3"},
      {R"({{printf "%-6s|%6s|" .Name .Name}})", "web   |   web|"},
      {R"({{printf "%5d|%05d|%x|%X|%o|%b|%+d" 42 42 255 255 8 5 3}})", "   42|00042|ff|FF|10|101|+3"},
      {R"({{printf "%q %v %v %.2f %x %c" .Name .Tags .On .Ratio "hi" 65}})", R"("web" [a b c] true 1.50 6869 A)"},
      {R"({{printf "%d" .Name}})", "%!d(string=web)"},
      {R"({{printf "%s %s" .Name}})", "web %!s(MISSING)"},
      {R"({{printf "%s" .Name .Count}})", "web%!(EXTRA int=3)"},
      {R"({{printf "%d%%" 5}})", "5%"},
      {R"({{printf "%[2]s %[1]s" "a" "b"}} {{printf "%+v %+d" 3 3}} {{printf "%-5t|" true}})", "b a 3 +3 true |"},
      {"{{print .Name .Count}} {{print 1 2}} {{print .Missing}}", "web3 1 2 <nil>"},
      {"{{println .Name .Count}}", "web 3\n"},
      {R"({{.Name | printf "%s!"}})", "web!"},
      {R"({{.Name | upper | printf "[%s]"}})", "[WEB]"},
      {"{{html .Config.Html}} {{urlquery \"a b&c\"}}", "&lt;a&amp;b&gt; a+b%26c"},
  });
}

TEST(FormatTemplate, DockerFunctions) {
  expect_renders({
      {"{{json .Config}}", R"({"Env":["A=1","B=2"],"Html":"<a&b>","Image":"alpine"})"},
      {"{{json .Name}} {{json .Ratio}} {{json .Big}} {{json .Null}} {{json .Missing}} {{json .Empty}}",
       R"("web" 1.5 2 null null [])"},
      {R"({{join .Tags ", "}}|{{join .Null ","}}|{{join .Empty ","}})", "a, b, c||"},
      {R"({{split "a:b:c" ":"}} {{index (split .Config.Image "p") 0}} {{len (split "" ",")}})", "[a b c] al 1"},
      {R"({{title "hello wORLD-foo_bar 1st"}})", "Hello WORLD-Foo_bar 1st"},
      {R"({{lower "ABC"}} {{upper .Name}})", "abc WEB"},
      {R"({{lower "\u00c0B\u0130"}} {{upper "\u00e9\u00ff\u0444"}} {{title "\u00e7a va"}})",
       "\xC3\xA0"
       "bi \xC3\x89\xC5\xB8\xD0\xA4 \xC3\x87"
       "a Va"},
      {R"({{pad .Name 2 3}}|{{pad "" 2 3}}|)", "  web   ||"},
      {"{{truncate .Id 6}} {{truncate .Name 10}}", "abc123 web"},
  });
}

struct ErrorCase {
  const char* tmpl;
  const char* want;
  bool usage;  // a parse error (UsageError) rather than an evaluation error
  MissingKey missing = MissingKey::Default;
};

TEST(FormatTemplate, ErrorsAreOneLineLikeGo) {
  const ErrorCase cases[] = {
      {"{{.Name", "template parsing error: template: :1: unclosed action", true},
      {"{{.Name}", "template parsing error: template: :1: bad character U+007D '}'", true},
      {"{{foo .Name}}", R"(template parsing error: template: :1: function "foo" not defined)", true},
      {"{{if .On}}x", "template parsing error: template: :1: unexpected EOF", true},
      {"x\n{{end}}", "template parsing error: template: :2: unexpected {{end}}", true},
      {"{{$x}}", R"(template parsing error: template: :1: undefined variable "$x")", true},
      {"{{}}", "template parsing error: template: :1: missing value for command", true},
      {"{{break}}", "template parsing error: template: :1: {{break}} outside {{range}}", true},
      {"{{.A | 3}}", "template parsing error: template: :1: non executable command in pipeline stage 2", true},
      {"{{ \"abc }}", "template parsing error: template: :1: unterminated quoted string", true},
      {"{{.Name.First}}", R"(template: :1:7: executing "" at <.Name.First>: can't evaluate field First in type string)",
       false},
      {"a\n{{.Name.First}}",
       R"(template: :2:7: executing "" at <.Name.First>: can't evaluate field First in type string)", false},
      {"{{.Null.X}}", R"(template: :1:7: executing "" at <.Null.X>: nil pointer evaluating interface {}.X)", false},
      {"{{.Name 1}}", R"(template: :1:2: executing "" at <.Name>: Name is not a method but has arguments)", false},
      {"{{index .Tags 5}}",
       R"(template: :1:2: executing "" at <index .Tags 5>: error calling index: index out of range: 5)", false},
      {"{{upper .Count}}",
       R"(template: :1:8: executing "" at <.Count>: wrong type for value; expected string; got int)", false},
      {"{{range .Name}}{{end}}", R"(template: :1:8: executing "" at <.Name>: range can't iterate over web)", false},
      {"{{lt .Tags 1}}",
       R"(template: :1:2: executing "" at <lt .Tags 1>: error calling lt: invalid type for comparison)", false},
      {"{{eq .Name 1}}",
       R"(template: :1:2: executing "" at <eq .Name 1>: error calling eq: incompatible types for comparison)", false},
      {"{{upper}}", R"(template: :1:2: executing "" at <upper>: wrong number of args for upper: want 1 got 0)", false},
      {"{{nil}}", R"(template: :1:2: executing "" at <nil>: nil is not a command)", false},
      {"{{.Missing}}", R"(template: :1:2: executing "" at <.Missing>: map has no entry for key "Missing")", false,
       MissingKey::Error},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.tmpl);
    try {
      render_template(c.tmpl, data(), c.missing);
      ADD_FAILURE() << "no error";
    } catch (const UsageError& e) {
      EXPECT_TRUE(c.usage);
      EXPECT_EQ(std::string(e.what()), c.want);
    } catch (const Error& e) {
      EXPECT_FALSE(c.usage);
      EXPECT_EQ(std::string(e.what()), c.want);
    }
  }
}

const std::vector<json>& images() {
  static const std::vector<json> rows = {
      {{"Repository", "alpine"}, {"Tag", "latest"}},
      {{"Repository", "busybox"}, {"Tag", "1.36"}},
  };
  return rows;
}

const std::map<std::string, std::string> kImageHeaders = {{"Repository", "REPOSITORY"}, {"Tag", "TAG"}};

TEST(FormatList, TableAlignsLikeDockerTabwriter) {
  // minwidth 10, padding 3: REPOSITORY (10) + 3 = 13; the last column is not padded.
  const char* want =
      "REPOSITORY   TAG\n"
      "alpine       latest\n"
      "busybox      1.36\n";
  EXPECT_EQ(format_list("table {{.Repository}}\t{{.Tag}}", "", images(), kImageHeaders), want);
  // docker turns the two characters \t into a tab.
  EXPECT_EQ(format_list("table {{.Repository}}\\t{{.Tag}}", "", images(), kImageHeaders), want);
  // "" and "table" use the command's default.
  EXPECT_EQ(format_list("", "table {{.Repository}}\t{{.Tag}}", images(), kImageHeaders), want);
  EXPECT_EQ(format_list("table", "{{.Repository}}\t{{.Tag}}", images(), kImageHeaders), want);
  // The header shows even without rows.
  EXPECT_EQ(format_list("table {{.Repository}}\t{{.Tag}}", "", {}, kImageHeaders), "REPOSITORY   TAG\n");
}

TEST(FormatList, TableColumnsWidenToTheLongestCell) {
  std::vector<json> rows = {{{"ID", "a1"}, {"Name", "averyveryverylongname"}, {"Size", "5MB"}},
                            {{"ID", "b2"}, {"Name", "x"}, {"Size", "10MB"}}};
  std::map<std::string, std::string> headers = {{"ID", "ID"}, {"Name", "NAME"}, {"Size", "SIZE"}};
  EXPECT_EQ(format_list("", "table {{.ID}}\t{{.Name}}\t{{.Size}}", rows, headers),
            "ID        NAME                    SIZE\n"
            "a1        averyveryverylongname   5MB\n"
            "b2        x                       10MB\n");
}

TEST(FormatList, HeaderUsesDockerHeaderFunctions) {
  std::vector<json> rows = {{{"Name", "web"}, {"ID", "abc"}, {"Other", "y"}}};
  std::map<std::string, std::string> headers = {{"Name", "NAME"}, {"ID", "CONTAINER ID"}};
  // upper and truncate leave the title alone; a field without a title prints <no value>, as in docker.
  EXPECT_EQ(format_list("table {{upper .Name}}\t{{truncate .ID 1}}\t{{.Other}}", "", rows, headers),
            "NAME      CONTAINER ID   <no value>\n"
            "WEB       a              y\n");
  // A header that fails to render keeps what it printed before failing (tab included).
  EXPECT_EQ(format_list("table {{.Name}}\t{{json .}}", "", rows, headers),
            "NAME      \n"
            "web       {\"ID\":\"abc\",\"Name\":\"web\",\"Other\":\"y\"}\n");
}

TEST(FormatList, RawJsonAndEscapes) {
  EXPECT_EQ(format_list("{{.Repository}}:{{.Tag}}", "", images(), kImageHeaders), "alpine:latest\nbusybox:1.36\n");
  EXPECT_EQ(format_list("  {{.Tag}}  ", "", images(), kImageHeaders), "latest\n1.36\n");
  EXPECT_EQ(format_list("{{.Repository}}\\n{{.Tag}}", "", images(), kImageHeaders), "alpine\nlatest\nbusybox\n1.36\n");
  EXPECT_EQ(format_list("json", "", images(), kImageHeaders),
            "{\"Repository\":\"alpine\",\"Tag\":\"latest\"}\n{\"Repository\":\"busybox\",\"Tag\":\"1.36\"}\n");
  EXPECT_EQ(format_list("{{.Tag}}", "", {}, kImageHeaders), "");
}

TEST(FormatList, Errors) {
  try {
    format_list("{{.Nope}}", "", images(), kImageHeaders);
    ADD_FAILURE() << "no error";
  } catch (const UsageError&) {
    ADD_FAILURE() << "an evaluation error is not a usage error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 R"(template parsing error: template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope")");
  }
  try {
    format_list("table {{.Tag", "", images(), kImageHeaders);
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "template parsing error: template: :1: unclosed action");
  }
}

TEST(FormatInspect, DefaultJsonAndTemplate) {
  std::vector<json> items = {json::parse(R"({"a":1,"b":[1,2],"c":{},"d":"<x>"})"), json::parse(R"({"a":2})")};
  EXPECT_EQ(format_inspect("", items),
            "[\n"
            "    {\n"
            "        \"a\": 1,\n"
            "        \"b\": [\n"
            "            1,\n"
            "            2\n"
            "        ],\n"
            "        \"c\": {},\n"
            "        \"d\": \"<x>\"\n"
            "    },\n"
            "    {\n"
            "        \"a\": 2\n"
            "    }\n"
            "]\n");
  EXPECT_EQ(format_inspect("", {}), "[]\n");
  EXPECT_EQ(format_inspect("json", items), "[{\"a\":1,\"b\":[1,2],\"c\":{},\"d\":\"<x>\"},{\"a\":2}]\n");
  EXPECT_EQ(format_inspect("{{.a}}", items), "1\n2\n");
  EXPECT_EQ(format_inspect("{{.a}}\\t", items), "1\\t\n2\\t\n");  // inspect does not rewrite \t
  EXPECT_EQ(format_inspect("{{.a}}", {}), "\n");
  try {
    format_inspect("{{.nope}}", items);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 R"(template parsing error: template: :1:2: executing "" at <.nope>: map has no entry for key "nope")");
  }
}

TEST(FormatGoJson, MatchesEncodingJson) {
  EXPECT_EQ(go_json(json("<a&b>\n\t\x01\xE2\x80\xA8\xC3\xA9\xFF\"\\")), R"("<a&b>\n\t\u0001\u2028)"
                                                                        "\xC3\xA9"
                                                                        R"(\ufffd\"\\")");
  EXPECT_EQ(go_json(json::parse("[1e21, 1e-7, 0.000001, 2.0, 1.5, 123456789.0, -0.5, 18446744073709551615]")),
            "[1e+21,1e-7,0.000001,2,1.5,123456789,-0.5,18446744073709551615]");
  EXPECT_EQ(go_json(json::parse(R"({"b":{},"a":[]})"), 2), "{\n  \"a\": [],\n  \"b\": {}\n}");
}

TEST(FormatTabwriter, FollowsGoElasticTabstops) {
  // The example from Go's text/tabwriter documentation, with docker's parameters.
  EXPECT_EQ(tabwrite("aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n"),
            "aaaa      bbb       d\n"
            "aa        b         dd\n"
            "a         \n"
            "aa        cccc      eee\n");
  // A line without a tab ends every column.
  EXPECT_EQ(tabwrite("a\tb\nlonglonglonglong\nc\td\n"), "a         b\nlonglonglonglong\nc         d\n");
  // Wide characters take two columns.
  EXPECT_EQ(tabwrite("\xE5\x90\x8D\xE5\x89\x8D\tX\nab\tY\n"), "\xE5\x90\x8D\xE5\x89\x8D      X\nab        Y\n");
  EXPECT_EQ(tabwrite("no newline\tat end"), "no newline   at end");
  // A formfeed ends every column and prints as a newline.
  EXPECT_EQ(tabwrite("a\tb\fcccccccccccc\td\n"), "a         b\ncccccccccccc   d\n");
}

}  // namespace
