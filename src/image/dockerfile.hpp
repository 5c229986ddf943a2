// Dockerfile syntax, as buildkit's parser reads it: directives, comments, escapes, continuations,
// heredocs, flags, exec and shell forms, and the shell-word expansion of $VAR / ${VAR:-x}. Pure
// code: `import -c` / `commit -c` (archive.cpp) and `berth build` both use it.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::image {

// One `<<EOF` body of a RUN, COPY or ADD.
struct Heredoc {
  std::string name;     // the delimiter word without quotes or "-": "EOF"
  std::string content;  // the lines between the instruction and the delimiter, each ending in "\n"
  bool expand = true;   // false when the delimiter was quoted (<<"EOF", <<'EOF'): no $VAR expansion
  bool chomp = false;   // <<-EOF: leading tabs were stripped from each line of content
};

struct DockerfileInstruction {
  std::string keyword;             // lowercased: "from", "run", "copy", …
  std::string original;            // as written, continuations joined (docker's "Step n/m : …" text)
  std::vector<std::string> flags;  // leading --flags, quotes and escapes processed: "--from=build"
  std::string rest;                // the arguments after the flags, trimmed
  std::vector<Heredoc> heredocs;   // RUN/COPY/ADD only, in the order they appear in rest
  int line = 0;                    // 1-based line of the instruction's first line
};

struct Dockerfile {
  char escape = '\\';  // from the `# escape=` directive
  std::string syntax;  // the `# syntax=` directive (recorded, not acted on)
  std::vector<DockerfileInstruction> instructions;
};

// Parses a whole Dockerfile. Throws Error("dockerfile line N: unknown instruction: FOO") for a
// keyword that is not an instruction, and for an unterminated heredoc; an empty file (no
// instructions) throws "the Dockerfile cannot be empty".
Dockerfile parse_dockerfile(std::string_view text);

// The instructions of `import -c` / `commit -c` changes (joined by newlines; no heredocs, no
// directives).
std::vector<DockerfileInstruction> parse_change_lines(const std::vector<std::string>& changes);

// The shell lexer of Dockerfiles (ProcessWord / ProcessWords): quotes, escape-character escapes and
// $VAR, ${VAR}, ${VAR:-w}, ${VAR-w}, ${VAR:+w}, ${VAR+w}, ${VAR:?msg}, ${VAR?msg} against env
// ("KEY=value" entries; the last of a key wins).
std::string expand_word(std::string_view word, const std::vector<std::string>& env, char escape = '\\');
// As expand_word, then split on unquoted whitespace (also whitespace that expansions produced).
std::vector<std::string> expand_words(std::string_view words, const std::vector<std::string>& env, char escape = '\\');

// buildkit's parseWords: splits on unquoted whitespace, keeping quotes and escapes in the words.
std::vector<std::string> parse_words(std::string_view rest);
std::vector<std::string> parse_words(std::string_view rest, char escape);
// A JSON array of strings (the exec form), or nullopt when rest is not one; throws for non-strings.
std::optional<std::vector<std::string>> parse_json_array(std::string_view rest);
// ENV / LABEL / ARG-style "k=v k2=v2" (or the legacy "KEY value" form), quotes kept for expansion.
std::vector<std::pair<std::string, std::string>> parse_name_values(const std::string& rest, const std::string& keyword);
std::vector<std::pair<std::string, std::string>> parse_name_values(const std::string& rest, const std::string& keyword,
                                                                   char escape);
// BFlags.Parse: "--name=value" for names in string_flags, "--name" or "--name=true|false" for names
// in bool_flags ("true"/"false" in the map). Throws "unknown flag: NAME".
std::map<std::string, std::string> parse_instruction_flags(const std::vector<std::string>& flags,
                                                           const std::set<std::string>& string_flags,
                                                           const std::set<std::string>& bool_flags = {});

// filepath.Clean of an absolute path ("/a/../b/" → "/b").
std::string clean_absolute_path(const std::string& path);

// What a config-only instruction (CMD ENTRYPOINT ENV LABEL EXPOSE VOLUME USER WORKDIR STOPSIGNAL
// HEALTHCHECK ONBUILD SHELL MAINTAINER) does to an image's container config (docker's
// container.Config JSON: "Cmd", "Env", …), as docker's builder dispatchers do. expansion_env is
// what $VAR sees (the config's Env plus the build's ARGs); CMD, ENTRYPOINT and SHELL are not
// expanded. cmd_set: whether a CMD came earlier in this stage (an ENTRYPOINT then keeps it; else
// it resets Cmd to null). Throws Error with docker's message for bad arguments.
void apply_config_instruction(nlohmann::ordered_json& config, const DockerfileInstruction& instruction,
                              const std::vector<std::string>& expansion_env, bool& cmd_set, char escape = '\\');
// Throws what apply_config_instruction would for arguments that are wrong whatever the config
// (docker parses every instruction before it dispatches any).
void check_config_instruction(const DockerfileInstruction& instruction, char escape = '\\');
// The config's "Env" entries ("KEY=value"), empty when it has none.
std::vector<std::string> config_env(const nlohmann::ordered_json& config);
// The config with its keys in the order docker marshals container.Config (unknown keys last);
// apply_config_instruction keeps config in this order.
nlohmann::ordered_json docker_config_order(const nlohmann::ordered_json& config);

// .dockerignore, as moby's patternmatcher reads it: one pattern a line, "#" comments, blank lines
// ignored, patterns cleaned (filepath.Clean) with a leading "/" dropped, Go filepath.Match syntax
// plus "**" for any number of directories, "!" for exceptions; the last matching pattern wins, and
// a path is excluded when it or one of its parent directories matches (MatchesOrParentMatches).
class DockerIgnore {
 public:
  DockerIgnore() = default;
  // Throws Error for a malformed pattern ("syntax error in pattern: [a") and for a lone "!".
  explicit DockerIgnore(std::string_view file_text);
  // rel: a path relative to the context root, "/"-separated, no leading "/" ("src/a.c").
  bool excluded(std::string_view rel) const;
  bool empty() const { return patterns_.empty(); }
  // Whether some pattern is an exception ("!…"): a walker must then descend into excluded
  // directories, since something below may be included again.
  bool has_exceptions() const;

 private:
  struct Pattern {
    std::string text;       // cleaned, without "!"
    bool exclusion = true;  // false for a "!" exception
  };
  std::vector<Pattern> patterns_;
};

}  // namespace berth::image
