// Dockerfile syntax (expected values follow buildkit's parser and shell lexer, moby's dispatchers
// and moby's patternmatcher for .dockerignore).
#include <gtest/gtest.h>

#include <tuple>

#include "image/dockerfile.hpp"
#include "util/error.hpp"

using namespace berth;
using namespace berth::image;
using ojson = nlohmann::ordered_json;
using Strings = std::vector<std::string>;

namespace {

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string parse_error(const std::string& text) {
  return error_of([&] { parse_dockerfile(text); });
}

DockerfileInstruction one(const std::string& line) { return parse_change_lines({line}).at(0); }

// Each heredoc's name, content, expand and chomp, compared at once.
using HeredocFields = std::vector<std::tuple<std::string, std::string, bool, bool>>;
HeredocFields heredocs_of(const DockerfileInstruction& i) {
  HeredocFields out;
  for (const auto& h : i.heredocs) out.emplace_back(h.name, h.content, h.expand, h.chomp);
  return out;
}

Strings keys_of(const ojson& object) {
  Strings keys;
  for (const auto& [k, v] : object.items()) keys.push_back(k);
  return keys;
}

}  // namespace

TEST(DockerfileParse, DirectivesSetEscapeAndSyntax) {
  Dockerfile df = parse_dockerfile(
      "# syntax=docker/dockerfile:1\n"
      "  #  ESCAPE =  `  \n"
      "FROM scratch\n"
      "RUN echo a `\n"
      "  b\n"
      "RUN dir C:\\ \n");
  EXPECT_EQ(df.escape, '`');
  EXPECT_EQ(df.syntax, "docker/dockerfile:1");
  ASSERT_EQ(df.instructions.size(), 3u);
  // The backtick continues the line; a backslash is then an ordinary character.
  EXPECT_EQ(df.instructions[1].rest, "echo a   b");
  EXPECT_EQ(df.instructions[1].line, 4);
  EXPECT_EQ(df.instructions[2].rest, "dir C:\\");
  EXPECT_EQ(df.instructions[2].line, 6);

  EXPECT_EQ(parse_dockerfile("#escape=\\\nFROM a\n").escape, '\\');
  EXPECT_EQ(parse_error("# escape=x\nFROM a\n"), "dockerfile line 1: invalid escape token 'x' does not match ` or \\");
  EXPECT_EQ(parse_error("# escape=`\n# Escape=`\nFROM a\n"),
            "dockerfile line 2: only one escape parser directive can be used");
}

TEST(DockerfileParse, DirectiveAfterAnythingElseIsAComment) {
  for (const char* text : {"# hello\n# escape=`\nFROM x\nRUN a \\\n b\n", "\n# escape=`\nFROM x\nRUN a \\\n b\n",
                           "# unknown=1\n# escape=`\nFROM x\nRUN a \\\n b\n", "FROM x\n# escape=`\nRUN a \\\n b\n"}) {
    Dockerfile df = parse_dockerfile(text);
    EXPECT_EQ(df.escape, '\\') << text;
    ASSERT_EQ(df.instructions.size(), 2u) << text;
    EXPECT_EQ(df.instructions[1].rest, "a  b") << text;
  }
}

TEST(DockerfileParse, CommentsContinuationsLineNumbersCrlfBom) {
  Dockerfile df = parse_dockerfile(
      "\xEF\xBB\xBF"
      "FROM alpine AS build\r\n"  // 1
      "\r\n"                      // 2
      "   # a comment\r\n"        // 3
      "RUN apk add \\\r\n"        // 4
      "# inside\r\n"              // 5
      "\r\n"                      // 6: an empty continuation line
      "    curl \\  \r\n"         // 7: blanks after the escape
      "    git\r\n"               // 8
      "  cmd [\"sh\"]\r\n"        // 9
      "LABEL a=b \\\\\n"          // 10: an escaped backslash does not continue
      "EXPOSE 80 \\");            // 11: a continuation at the end of the file
  ASSERT_EQ(df.instructions.size(), 5u);
  const auto& from = df.instructions[0];
  EXPECT_EQ(from.keyword, "from");
  EXPECT_EQ(from.rest, "alpine AS build");
  EXPECT_EQ(from.line, 1);
  const auto& run = df.instructions[1];
  EXPECT_EQ(run.keyword, "run");
  EXPECT_EQ(run.rest, "apk add     curl     git");
  EXPECT_EQ(run.original, "RUN apk add     curl     git");
  EXPECT_EQ(run.line, 4);
  EXPECT_EQ(df.instructions[2].keyword, "cmd");
  EXPECT_EQ(df.instructions[2].original, "cmd [\"sh\"]");
  EXPECT_EQ(df.instructions[2].line, 9);
  EXPECT_EQ(df.instructions[3].rest, "a=b \\\\");
  EXPECT_EQ(df.instructions[3].line, 10);
  EXPECT_EQ(df.instructions[4].rest, "80");
  EXPECT_EQ(df.instructions[4].line, 11);
}

TEST(DockerfileParse, UnknownInstructionsAndEmptyFiles) {
  EXPECT_EQ(parse_error("FROM a\n\nFOO bar\n"), "dockerfile line 3: unknown instruction: FOO");
  EXPECT_EQ(parse_error("frm a\n"), "dockerfile line 1: unknown instruction: frm");
  EXPECT_EQ(parse_error(""), "the Dockerfile cannot be empty");
  EXPECT_EQ(parse_error("# escape=`\n\n# nothing\n"), "the Dockerfile cannot be empty");
  // Every instruction buildkit knows parses, in any case.
  Dockerfile df = parse_dockerfile(
      "from a\nRun b\nCMD c\nLABEL d=e\nMAINTAINER f\nEXPOSE 1\nENV g=h\nADD i j\nCOPY k l\nENTRYPOINT m\n"
      "VOLUME /n\nUSER o\nWORKDIR /p\nARG q\nONBUILD RUN r\nSTOPSIGNAL TERM\nHEALTHCHECK NONE\nSHELL [\"sh\"]\n");
  EXPECT_EQ(df.instructions.size(), 18u);
  // `import -c` changes are not checked here: apply_changes names what it refuses.
  EXPECT_EQ(parse_change_lines({"FOO bar"}).at(0).keyword, "foo");
}

TEST(DockerfileParse, Flags) {
  DockerfileInstruction copy = parse_dockerfile("COPY --from=build --chown=\"a b\" --link src /dst\n").instructions[0];
  EXPECT_EQ(copy.flags, (Strings{"--from=build", "--chown=a b", "--link"}));
  EXPECT_EQ(copy.rest, "src /dst");
  auto flags = parse_instruction_flags(copy.flags, {"from", "chown", "chmod"}, {"link"});
  EXPECT_EQ(flags, (std::map<std::string, std::string>{{"from", "build"}, {"chown", "a b"}, {"link", "true"}}));
  EXPECT_EQ(parse_instruction_flags({"--link=FALSE"}, {}, {"link"}).at("link"), "false");
  EXPECT_EQ(parse_instruction_flags({"--link=true"}, {}, {"link"}).at("link"), "true");
  // "--" ends the flags: what follows is the rest, even when it starts with "--".
  EXPECT_EQ(one("RUN --network=none -- --version").rest, "--version");
  DockerfileInstruction quoted = one(R"(COPY --a="" --b='x\'y' --)");
  EXPECT_EQ(quoted.flags, (Strings{"--a=", "--b=x'y"}));
  EXPECT_EQ(quoted.rest, "");

  auto flag_error = [](const Strings& f) { return error_of([&] { parse_instruction_flags(f, {"from"}, {"link"}); }); };
  EXPECT_EQ(flag_error({"--link=maybe"}), "expecting boolean value for flag link, not: maybe");
  EXPECT_EQ(flag_error({"--link="}), "missing a value on flag: link");
  EXPECT_EQ(flag_error({"--from"}), "missing a value on flag: from");
  EXPECT_EQ(flag_error({"--bogus=1"}), "unknown flag: bogus");
  EXPECT_EQ(flag_error({"--from=a", "--from=b"}), "duplicate flag specified: from");
  EXPECT_EQ(flag_error({"from=a"}), "arg should start with -- : from=a");
}

TEST(DockerfileParse, ExecAndShellForms) {
  EXPECT_EQ(parse_json_array(R"( ["a", "b c"])"), (Strings{"a", "b c"}));
  EXPECT_EQ(parse_json_array("[]"), Strings{});
  EXPECT_EQ(parse_json_array("echo [x]"), std::nullopt);
  EXPECT_EQ(parse_json_array("[oops"), std::nullopt);
  EXPECT_EQ(parse_json_array("['single']"), std::nullopt);
  EXPECT_EQ(error_of([] { parse_json_array("[1]"); }),
            "when using JSON array syntax, arrays must be comprised of strings only");
  EXPECT_EQ(parse_error("FROM a\nRUN [\"a\", 2]\n"),
            "dockerfile line 2: when using JSON array syntax, arrays must be comprised of strings only");
}

TEST(DockerfileHeredoc, OneBodyKeptAsWritten) {
  Dockerfile df = parse_dockerfile(
      "FROM a\n"
      "RUN <<EOF\n"
      "echo $HOME\n"
      "  # not a comment \\\n"
      "\n"
      "EOF\n"
      "CMD x\n");
  EXPECT_EQ(heredocs_of(df.instructions.at(1)),
            (HeredocFields{{"EOF", "echo $HOME\n  # not a comment \\\n\n", true, false}}));
  // rest keeps the heredoc word; the body's lines are not instructions.
  EXPECT_EQ(df.instructions[1].rest, "<<EOF");
  ASSERT_EQ(df.instructions.size(), 3u);
  EXPECT_EQ(df.instructions[2].keyword, "cmd");
  EXPECT_EQ(df.instructions[2].line, 7);
}

TEST(DockerfileHeredoc, SeveralQuotedAndChomped) {
  Dockerfile df = parse_dockerfile(
      "COPY --chmod=755 <<one <<'two' /dst/\n"
      "first\n"
      "one\n"
      "second $X\n"
      "two\n"
      "RUN cat <<-\"END\" > f && python3 <<-E\"O\"F\n"
      "\tindented\n"
      "\t\tmore\n"
      "\tEND\n"
      "\tprint(1)\n"
      "EOF\n");
  ASSERT_EQ(df.instructions.size(), 2u);
  EXPECT_EQ(df.instructions[0].rest, "<<one <<'two' /dst/");
  EXPECT_EQ(heredocs_of(df.instructions[0]),
            (HeredocFields{{"one", "first\n", true, false}, {"two", "second $X\n", false, false}}));
  EXPECT_EQ(df.instructions[1].line, 6);
  EXPECT_EQ(heredocs_of(df.instructions[1]),
            (HeredocFields{{"END", "indented\nmore\n", false, true}, {"EOF", "print(1)\n", false, true}}));
}

TEST(DockerfileHeredoc, OnlyInShellFormRunCopyAdd) {
  Dockerfile df = parse_dockerfile(
      "ENV A <<EOF\n"
      "RUN [\"cat\", \"<<EOF\"]\n"
      "RUN echo \"<<EOF\" a<<EOF <<<here\n"
      "LABEL x=y\n");
  ASSERT_EQ(df.instructions.size(), 4u);
  for (const auto& i : df.instructions) EXPECT_TRUE(i.heredocs.empty()) << i.original;
  EXPECT_EQ(df.instructions[0].rest, "A <<EOF");
}

TEST(DockerfileHeredoc, MissingTerminator) {
  EXPECT_EQ(parse_error("FROM a\nRUN <<EOF\necho hi\nEOF \n"), "dockerfile line 2: unterminated heredoc: EOF");
  EXPECT_EQ(parse_error("FROM a\nCOPY <<a <<b /\nx\na\n"), "dockerfile line 2: unterminated heredoc: b");
  // Without "-", a tab-indented terminator is a line of the body.
  EXPECT_EQ(parse_error("FROM a\nRUN <<EOF\n\tEOF\n"), "dockerfile line 2: unterminated heredoc: EOF");
}

TEST(DockerfileLexer, ExpandWord) {
  Strings env = {"A=1", "EMPTY=", "B=two words", "A=2"};  // the last A wins
  EXPECT_EQ(expand_word("$A", env), "2");
  EXPECT_EQ(expand_word("${A}x$B", env), "2xtwo words");
  EXPECT_EQ(expand_word("$NOPE-$", env), "-$");
  EXPECT_EQ(expand_word("${NOPE:-d}", env), "d");
  EXPECT_EQ(expand_word("${EMPTY:-d}", env), "d");
  EXPECT_EQ(expand_word("${EMPTY-d}", env), "");
  EXPECT_EQ(expand_word("${NOPE-d e}", env), "d e");
  EXPECT_EQ(expand_word("${A:+set}", env), "set");
  EXPECT_EQ(expand_word("${EMPTY:+set}", env), "");
  EXPECT_EQ(expand_word("${EMPTY+set}", env), "set");
  EXPECT_EQ(expand_word("${NOPE+set}", env), "");
  EXPECT_EQ(expand_word("${A:?x}", env), "2");
  EXPECT_EQ(expand_word("${EMPTY?x}", env), "");
  EXPECT_EQ(expand_word("${NOPE:-${A}}", env), "2");
  EXPECT_EQ(error_of([&] { expand_word("${EMPTY:?must be set}", env); }), "EMPTY: must be set");
  EXPECT_EQ(error_of([&] { expand_word("${NOPE?}", env); }), "NOPE: is not allowed to be unset");
  EXPECT_EQ(error_of([&] { expand_word("${}", env); }), "syntax error: bad substitution");
  EXPECT_EQ(error_of([&] { expand_word("${A", env); }), "syntax error: missing '}'");
  EXPECT_EQ(error_of([&] { expand_word("'open", env); }),
            "unexpected end of statement while looking for matching single-quote");

  // Quotes and escapes.
  EXPECT_EQ(expand_word("'$A \\n'", env), "$A \\n");
  EXPECT_EQ(expand_word("\"$A '$A'\"", env), "2 '2'");
  EXPECT_EQ(expand_word("\\$A", env), "$A");
  EXPECT_EQ(expand_word("\"\\$A \\\" \\x\"", env), "$A \" \\x");
  EXPECT_EQ(expand_word("a\\ b", env), "a b");
  // With the backtick escape, a backslash is an ordinary character.
  EXPECT_EQ(expand_word("`$A C:\\dir", env, '`'), "$A C:\\dir");
  EXPECT_EQ(expand_word("\"a`\"b\"", env, '`'), "a\"b");
}

TEST(DockerfileLexer, ExpandWordsSplits) {
  Strings env = {"P=7 8", "E="};
  EXPECT_EQ(expand_words("a $P \"$P\" 'x y' b\\ c $E", env), (Strings{"a", "7", "8", "7 8", "x y", "b c"}));
  EXPECT_EQ(expand_words("  ", env), Strings{});
  EXPECT_EQ(expand_words("a` b c", env, '`'), (Strings{"a b", "c"}));
}

TEST(DockerfileLexer, ParseWordsAndNameValues) {
  EXPECT_EQ(parse_words(R"(a "b c" 'd\' e\ f)"), (Strings{"a", "\"b c\"", "'d\\'", "e\\ f"}));
  EXPECT_EQ(parse_words("a` b c", '`'), (Strings{"a` b", "c"}));

  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(parse_name_values(R"(A=1 B="x y" C=\$D E=)", "ENV"),
            (Pairs{{"A", "1"}, {"B", "\"x y\""}, {"C", "\\$D"}, {"E", ""}}));
  EXPECT_EQ(parse_name_values("NAME  some   value", "LABEL"), (Pairs{{"NAME", "some   value"}}));
  EXPECT_EQ(parse_name_values("", "ENV"), Pairs{});
  EXPECT_EQ(error_of([] { parse_name_values("A", "ENV"); }), "ENV must have two arguments");
  EXPECT_EQ(error_of([] { parse_name_values("A=1 B", "LABEL"); }),
            "Syntax error - can't find = in \"B\". Must be of the form: name=value");
  EXPECT_EQ(parse_name_values("A=x` y", "ENV", '`'), (Pairs{{"A", "x` y"}}));
}

TEST(DockerfileConfig, InstructionsChangeTheConfig) {
  ojson config = ojson::object();
  bool cmd_set = false;
  auto apply = [&](const std::string& line, const Strings& args = {}) {
    Strings env = args;  // ENV wins over an ARG of the same name: it comes last
    for (const auto& e : config_env(config)) env.push_back(e);
    apply_config_instruction(config, one(line), env, cmd_set);
  };

  apply("ENV BASE=/srv");
  apply("WORKDIR $BASE/app");
  EXPECT_EQ(config["WorkingDir"], "/srv/app");
  apply("WORKDIR ${SUB:-none}/../x", {"SUB=sub", "BASE=arg"});
  EXPECT_EQ(config["WorkingDir"], "/srv/app/x");
  apply("ENV V=$SUB B2=$BASE", {"SUB=sub", "BASE=arg"});
  EXPECT_EQ(config["Env"], ojson({"BASE=/srv", "V=sub", "B2=/srv"}));
  apply(R"(LABEL a=$BASE "b c"=d)");
  EXPECT_EQ(config["Labels"], ojson({{"a", "/srv"}, {"b c", "d"}}));
  apply("EXPOSE 80 53/udp 9000-9001");
  EXPECT_EQ(keys_of(config["ExposedPorts"]), (Strings{"80/tcp", "53/udp", "9000/tcp", "9001/tcp"}));
  apply(R"(VOLUME ["/data"])");
  apply("VOLUME /a $BASE");
  EXPECT_EQ(keys_of(config["Volumes"]), (Strings{"/data", "/a", "/srv"}));
  apply("USER app:$BASE");
  EXPECT_EQ(config["User"], "app:/srv");
  apply("STOPSIGNAL SIGINT");
  EXPECT_EQ(config["StopSignal"], "SIGINT");
  apply("MAINTAINER someone <a@b.c>");
  EXPECT_FALSE(config.contains("Maintainer"));

  // CMD and ENTRYPOINT are not expanded; an ENTRYPOINT keeps a CMD of the same stage.
  apply("CMD run $BASE");
  EXPECT_EQ(config["Cmd"], ojson({"/bin/sh", "-c", "run $BASE"}));
  EXPECT_TRUE(cmd_set);
  apply(R"(ENTRYPOINT ["/app"])");
  EXPECT_EQ(config["Entrypoint"], ojson({"/app"}));
  EXPECT_EQ(config["Cmd"], ojson({"/bin/sh", "-c", "run $BASE"}));
  cmd_set = false;  // a new stage, whose CMD came from the base image
  apply(R"(ENTRYPOINT ["/app"])");
  EXPECT_TRUE(config["Cmd"].is_null());

  // SHELL changes the shell form of what follows.
  apply(R"(SHELL ["/bin/bash", "-eu", "-c"])");
  EXPECT_EQ(config["Shell"], ojson({"/bin/bash", "-eu", "-c"}));
  apply("CMD echo hi");
  EXPECT_EQ(config["Cmd"], ojson({"/bin/bash", "-eu", "-c", "echo hi"}));
  apply("ENTRYPOINT exec app");
  EXPECT_EQ(config["Entrypoint"], ojson({"/bin/bash", "-eu", "-c", "exec app"}));

  // docker's order of container.Config keys, whatever order they were set in.
  EXPECT_EQ(keys_of(config), (Strings{"User", "ExposedPorts", "Env", "Cmd", "Volumes", "WorkingDir", "Entrypoint",
                                      "Labels", "StopSignal", "Shell"}));
}

TEST(DockerfileConfig, EscapeAndRefusals) {
  ojson config = ojson::object();
  bool cmd_set = false;
  apply_config_instruction(config, one("ENV W=a`$b X=c\\d"), {}, cmd_set, '`');
  EXPECT_EQ(config["Env"], ojson({"W=a$b", "X=c\\d"}));

  auto refusal = [&](const std::string& line) {
    return error_of([&] { apply_config_instruction(config, one(line), {}, cmd_set); });
  };
  EXPECT_EQ(refusal("SHELL /bin/bash -c"), "SHELL requires the arguments to be in JSON form");
  EXPECT_EQ(refusal("SHELL []"), "SHELL requires at least one argument");
  EXPECT_EQ(refusal("SHELL"), "SHELL requires at least one argument");
  EXPECT_EQ(refusal("MAINTAINER"), "MAINTAINER requires exactly one argument");
  EXPECT_EQ(refusal("RUN make"), "not a config instruction: RUN");
  EXPECT_EQ(refusal("CMD --x=1 true"), "unknown flag: x");
  EXPECT_EQ(error_of([] { check_config_instruction(one("EXPOSE")); }), "EXPOSE requires at least one argument");
  EXPECT_EQ(error_of([] { check_config_instruction(one("EXPOSE 80")); }), "(no error)");
}

TEST(DockerIgnore, PatternsAsMobyMatchesThem) {
  DockerIgnore ig(
      "# a comment\n"
      "*.o\n"
      "**/*.log\n"
      "build/\n"
      "!build/keep\n"
      "/abs\n"
      "doc?.txt\n"
      "img[0-9].png\n"
      "x[^a]y\n"
      "\\*star\n"
      "a/**/b\n"
      "\n"
      "  spaced  \r\n"
      "./dot/../cleaned\n");
  EXPECT_FALSE(ig.empty());
  EXPECT_TRUE(ig.has_exceptions());
  // "*" and "?" stay within a path segment.
  EXPECT_TRUE(ig.excluded("a.o"));
  EXPECT_FALSE(ig.excluded("src/a.o"));
  EXPECT_TRUE(ig.excluded("doc1.txt"));
  EXPECT_FALSE(ig.excluded("doc12.txt"));
  EXPECT_FALSE(ig.excluded("doc/.txt"));
  // "**" is any number of segments, none included.
  EXPECT_TRUE(ig.excluded("x.log"));
  EXPECT_TRUE(ig.excluded("a/b/x.log"));
  EXPECT_TRUE(ig.excluded("a/b"));
  EXPECT_TRUE(ig.excluded("a/x/y/b"));
  EXPECT_FALSE(ig.excluded("a/xb"));
  // A directory pattern excludes what is below it, except what an exception includes again.
  EXPECT_TRUE(ig.excluded("build"));
  EXPECT_TRUE(ig.excluded("build/x/y"));
  EXPECT_FALSE(ig.excluded("build/keep"));
  EXPECT_FALSE(ig.excluded("build/keep/file"));
  EXPECT_FALSE(ig.excluded("builder"));
  // A leading "/" is the context root.
  EXPECT_TRUE(ig.excluded("abs"));
  EXPECT_TRUE(ig.excluded("abs/x"));
  EXPECT_FALSE(ig.excluded("x/abs"));
  // Classes and escapes.
  EXPECT_TRUE(ig.excluded("img5.png"));
  EXPECT_FALSE(ig.excluded("imga.png"));
  EXPECT_TRUE(ig.excluded("xby"));
  EXPECT_FALSE(ig.excluded("xay"));
  EXPECT_TRUE(ig.excluded("*star"));
  EXPECT_FALSE(ig.excluded("astar"));
  // Lines are trimmed and patterns cleaned.
  EXPECT_TRUE(ig.excluded("spaced"));
  EXPECT_TRUE(ig.excluded("cleaned"));
  EXPECT_FALSE(ig.excluded("# a comment"));
  EXPECT_FALSE(ig.excluded("README.md"));
  EXPECT_TRUE(ig.excluded("./a.o"));
}

TEST(DockerIgnore, LastMatchWins) {
  DockerIgnore exception_last("*.md\n!README.md\n");
  EXPECT_TRUE(exception_last.excluded("a.md"));
  EXPECT_FALSE(exception_last.excluded("README.md"));
  DockerIgnore pattern_last("*.md\n!README.md\nREADME*\n");
  EXPECT_TRUE(pattern_last.excluded("README.md"));
  // Everything but one directory.
  DockerIgnore all_but("*\n!src\n");
  EXPECT_TRUE(all_but.excluded("Makefile"));
  EXPECT_FALSE(all_but.excluded("src/main.c"));
  EXPECT_FALSE(DockerIgnore("!x\n").excluded("x"));
}

TEST(DockerIgnore, SpecialPatterns) {
  // "**" then plain text is a suffix test in moby.
  EXPECT_TRUE(DockerIgnore("**.tmp").excluded("a/b.tmp"));
  EXPECT_TRUE(DockerIgnore("**").excluded("anything/at/all"));
  // "dir/**" matches what is inside dir (and so, through the parent rule, all below it).
  DockerIgnore inside("docs/**");
  EXPECT_TRUE(inside.excluded("docs/a/b"));
  EXPECT_FALSE(inside.excluded("docs"));
  // "." and "" name the context root, which is never excluded.
  EXPECT_TRUE(DockerIgnore(".\n./\n\n   \n").empty());
  EXPECT_FALSE(DockerIgnore("*").excluded("."));
  EXPECT_FALSE(DockerIgnore().excluded("a"));
  EXPECT_FALSE(DockerIgnore("a\n").has_exceptions());

  EXPECT_EQ(error_of([] { DockerIgnore("[a"); }), "syntax error in pattern: [a");
  EXPECT_EQ(error_of([] { DockerIgnore("a\\"); }), "syntax error in pattern: a\\");
  EXPECT_EQ(error_of([] { DockerIgnore("[]a]"); }), "syntax error in pattern: []a]");
  EXPECT_EQ(error_of([] { DockerIgnore("!"); }), "illegal exclusion pattern: \"!\"");
}
