// Dockerfile syntax as buildkit's parser and shell lexer read it, docker's dispatchers for the
// instructions that only change the container config, and moby's .dockerignore matching.
#include "image/dockerfile.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <functional>

#include "storage/mount_spec.hpp"
#include "util/docker_syntax.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace berth::image {

using ojson = nlohmann::ordered_json;

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

const std::set<std::string> kInstructions = {"from",    "run", "cmd",     "label",      "maintainer",  "expose",
                                             "env",     "add", "copy",    "entrypoint", "volume",      "user",
                                             "workdir", "arg", "onbuild", "stopsignal", "healthcheck", "shell"};
const std::set<std::string> kConfigInstructions = {"cmd",     "entrypoint", "env",       "label",      "expose",
                                                   "volume",  "user",       "workdir",   "stopsignal", "healthcheck",
                                                   "onbuild", "shell",      "maintainer"};

[[noreturn]] void fail_at(int line, const std::string& what) {
  throw Error("dockerfile line " + std::to_string(line) + ": " + what);
}

struct ScannedWord {
  std::string text;
  size_t end = 0;  // where the word ends in the scanned text
};

// The word splitting that buildkit writes out twice, in parseWords and extractBuilderFlags: words
// end at unquoted whitespace. raw (parseWords): quotes and escapes stay in the words, and single
// quotes keep escapes literal; else (extractBuilderFlags) both are taken out. stop, when set, is
// asked where each word starts and ends the scan there when it answers true.
std::vector<ScannedWord> scan_words(std::string_view s, bool raw, char escape,
                                    const std::function<bool(size_t)>& stop = nullptr) {
  enum { kSpaces, kWord, kQuote } phase = kSpaces;
  std::vector<ScannedWord> words;
  std::string word;
  char quote = 0;
  bool blank_ok = false;  // a quoted empty string is a word
  auto finish = [&](size_t end) {
    if (blank_ok || !word.empty()) words.push_back({word, end});
    word.clear();
    blank_ok = false;
  };
  for (size_t pos = 0; pos < s.size(); pos++) {
    char ch = s[pos];
    if (phase == kSpaces) {
      if (is_space(ch)) continue;
      if (stop && stop(pos)) return words;
      phase = kWord;
    }
    bool quoting = phase == kWord && (ch == '\'' || ch == '"');
    bool unquoting = phase == kQuote && ch == quote;
    if (phase == kWord && is_space(ch)) {
      phase = kSpaces;
      finish(pos);
      continue;
    }
    if (quoting || unquoting) {
      quote = ch;
      blank_ok = true;
      phase = quoting ? kQuote : kWord;
      if (raw) word += ch;
      continue;
    }
    if (ch == escape && (phase == kWord || !raw || quote != '\'')) {
      if (pos + 1 == s.size()) {
        phase = kWord;  // a trailing escape is dropped
        continue;
      }
      if (raw) word += ch;
      ch = s[++pos];
    }
    word += ch;
  }
  if (phase != kSpaces) finish(s.size());
  return words;
}

// buildkit's extractBuilderFlags: leading "--words" (quotes and backslashes processed), then the rest.
std::pair<std::string, std::vector<std::string>> extract_flags(const std::string& line) {
  size_t rest = line.size();
  auto not_flag = [&](size_t pos) {
    if (line.compare(pos, 2, "--") == 0) return false;
    rest = pos;
    return true;
  };
  std::vector<std::string> flags;
  for (auto& w : scan_words(line, false, '\\', not_flag)) {
    if (w.text == "--") return {line.substr(w.end), flags};  // "--" ends the flags
    flags.push_back(std::move(w.text));
  }
  return {line.substr(rest), flags};
}

// The keyword, flags and arguments of one (joined) instruction.
DockerfileInstruction split_instruction(std::string_view joined, int line) {
  std::string_view t = trim(joined);
  size_t sp = 0;
  while (sp < t.size() && !is_space(t[sp])) sp++;
  DockerfileInstruction ins;
  ins.keyword = lower(t.substr(0, sp));
  ins.original = std::string(t);
  ins.line = line;
  std::string_view args = t.substr(sp);
  while (!args.empty() && is_space(args.front())) args.remove_prefix(1);
  if (!args.empty()) {
    auto [rest, flags] = extract_flags(std::string(args));
    ins.rest = std::string(trim(rest));
    ins.flags = std::move(flags);
  }
  return ins;
}

// The physical lines of a text, each with its line ending.
class Lines {
 public:
  explicit Lines(std::string_view text) : text_(text) {}
  std::optional<std::string_view> next() {
    if (pos_ >= text_.size()) return std::nullopt;
    size_t nl = text_.find('\n', pos_);
    size_t end = nl == std::string_view::npos ? text_.size() : nl + 1;
    std::string_view line = text_.substr(pos_, end - pos_);
    pos_ = end;
    number_++;
    return line;
  }
  int number() const { return number_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int number_ = 0;
};

std::string_view without_newline(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string_view without_leading_space(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

std::string_view strip_bom(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  return text;
}

// Appends line to joined, less a trailing escape character (and the blanks after it); returns
// whether there was one, i.e. whether the instruction continues. An escaped escape character
// ("\\" at the end) does not continue the line.
bool add_continued(std::string_view line, char escape, std::string& joined) {
  size_t end = line.size();
  while (end > 0 && (line[end - 1] == ' ' || line[end - 1] == '\t')) end--;
  if (end > 0 && line[end - 1] == escape && (end == 1 || line[end - 2] != escape)) {
    joined += line.substr(0, end - 1);
    return true;
  }
  joined += line;
  return false;
}

// "# key=value" for the keys buildkit knows; false for any other line, which ends the directives.
bool parse_directive(std::string_view line, Dockerfile& df, std::set<std::string>& seen, int number) {
  if (line.empty() || line.front() != '#') return false;
  size_t i = 1;
  auto skip_blanks = [&] {
    while (i < line.size() && is_space(line[i])) i++;
  };
  skip_blanks();
  size_t key_start = i;
  if (i == line.size() || !std::isalpha(static_cast<unsigned char>(line[i]))) return false;
  while (i < line.size() && std::isalnum(static_cast<unsigned char>(line[i]))) i++;
  std::string key = lower(line.substr(key_start, i - key_start));
  skip_blanks();
  if (i == line.size() || line[i] != '=') return false;
  i++;
  std::string value(trim(line.substr(i)));
  if (value.empty() || (key != "escape" && key != "syntax")) return false;
  if (!seen.insert(key).second) fail_at(number, "only one " + key + " parser directive can be used");
  if (key == "syntax") {
    df.syntax = value;
  } else if (value == "`" || value == "\\") {
    df.escape = value[0];
  } else {
    fail_at(number, "invalid escape token '" + value + "' does not match ` or \\");
  }
  return true;
}

// A heredoc word of buildkit's (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`), or nullopt for any other.
std::optional<Heredoc> heredoc_of(std::string_view word) {
  size_t i = 0;
  while (i < word.size() && std::isdigit(static_cast<unsigned char>(word[i]))) i++;
  if (word.substr(i, 2) != "<<") return std::nullopt;
  i += 2;
  Heredoc doc;
  doc.chomp = i < word.size() && word[i] == '-';
  std::string_view spec = word.substr(doc.chomp ? i + 1 : i);
  if (spec.empty() || spec.find('<') != std::string_view::npos) return std::nullopt;
  char quote = 0;
  for (size_t k = 0; k < spec.size(); k++) {
    char ch = spec[k];
    if (quote) {
      if (ch == quote) {
        quote = 0;
        continue;
      }
      if (ch == '\\' && quote == '"' && k + 1 < spec.size() &&
          std::string_view("\"$\\").find(spec[k + 1]) != std::string_view::npos)
        ch = spec[++k];
    } else if (ch == '\'' || ch == '"') {
      quote = ch;
      doc.expand = false;  // any quoting, as in a shell, turns expansion off
      continue;
    } else if (ch == '\\' && k + 1 < spec.size()) {
      ch = spec[++k];
    }
    doc.name += ch;
  }
  if (quote || doc.name.empty()) return std::nullopt;
  return doc;
}

// Reads the bodies of the heredocs that a RUN, COPY or ADD in shell form names, from the lines
// after it.
void read_heredocs(DockerfileInstruction& ins, Lines& lines) {
  if (ins.keyword != "run" && ins.keyword != "copy" && ins.keyword != "add") return;
  try {
    if (parse_json_array(ins.rest)) return;
  } catch (const Error& e) {
    fail_at(ins.line, e.what());
  }
  // buildkit finds heredoc words with its default escape, whatever the directive says.
  for (const auto& word : parse_words(ins.rest, '\\')) {
    std::optional<Heredoc> doc = heredoc_of(word);
    if (!doc) continue;
    bool terminated = false;
    while (auto raw = lines.next()) {
      std::string_view body = *raw;
      if (doc->chomp) body.remove_prefix(std::min(body.find_first_not_of('\t'), body.size()));
      if (without_newline(body) == doc->name) {
        terminated = true;
        break;
      }
      doc->content += body;  // as buildkit: the line ending as written, "\r\n" too
    }
    if (!terminated) fail_at(ins.line, "unterminated heredoc: " + doc->name);
    ins.heredocs.push_back(std::move(*doc));
  }
}

// buildkit's parser over text; dockerfile: also a BOM, directives, instruction names and heredocs
// (`import -c` changes have none of these).
Dockerfile parse_text(std::string_view text, bool dockerfile) {
  Dockerfile df;
  if (dockerfile) text = strip_bom(text);
  Lines lines(text);
  bool directives_done = !dockerfile;
  std::set<std::string> seen;
  while (auto raw = lines.next()) {
    int start = lines.number();
    std::string_view first = without_leading_space(without_newline(*raw));
    if (!directives_done && !parse_directive(first, df, seen, start)) directives_done = true;
    if (!first.empty() && first.front() == '#') continue;
    std::string joined;
    bool more = add_continued(first, df.escape, joined);
    if (!more && joined.empty()) continue;
    while (more) {
      auto next = lines.next();
      if (!next) break;
      std::string_view line = without_newline(*next);
      std::string_view t = without_leading_space(line);
      // Comments and blank lines inside a continuation are dropped.
      if (t.empty() || t.front() == '#') continue;
      more = add_continued(line, df.escape, joined);
    }
    DockerfileInstruction ins = split_instruction(joined, start);
    if (dockerfile) {
      if (!kInstructions.count(ins.keyword))
        fail_at(start, "unknown instruction: " + ins.original.substr(0, ins.keyword.size()));
      read_heredocs(ins, lines);
    }
    df.instructions.push_back(std::move(ins));
  }
  if (dockerfile && df.instructions.empty()) throw Error("the Dockerfile cannot be empty");
  return df;
}

std::vector<std::string> split_whitespace(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) i++;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') j++;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// The shell lexer of Dockerfiles (ProcessWord / ProcessWords): quotes, escapes and $VAR,
// ${VAR}, ${VAR:-w}, ${VAR-w}, ${VAR:+w}, ${VAR+w}, ${VAR:?msg}, ${VAR?msg} against env.
class Lexer {
 public:
  Lexer(std::string_view in, const std::vector<std::string>& env, char escape) : in_(in), env_(env), escape_(escape) {}

  std::string word() { return process(0, nullptr); }
  std::vector<std::string> words() {
    Words w;
    process(0, &w);
    if (!w.word.empty()) w.out.push_back(w.word);
    return w.out;
  }

 private:
  // Word splitting: unquoted whitespace (also inside unquoted expansions) separates words.
  struct Words {
    std::vector<std::string> out;
    std::string word;
    bool in_word = false;
    void add_char(char c) {
      if (is_space(c)) {
        if (in_word) {
          in_word = false;
          if (!word.empty()) out.push_back(word);
          word.clear();
        }
        return;
      }
      add_raw(c);
    }
    void add_raw(char c) {
      in_word = true;
      word += c;
    }
    void add_raw(const std::string& s) {
      in_word = true;
      word += s;
    }
    void add_string(const std::string& s) {
      for (char c : s) add_char(c);
    }
  };

  bool eof() const { return pos_ >= in_.size(); }

  // stop: the character that ends this level ('}' inside ${…}), or 0 for the end of input.
  std::string process(char stop, Words* w) {
    std::string out;
    while (!eof()) {
      char ch = in_[pos_];
      if (stop && ch == stop) {
        pos_++;
        return out;
      }
      if (ch == '\'') {
        std::string s = single_quote();
        out += s;
        if (w) w->add_raw(s);
      } else if (ch == '"') {
        std::string s = double_quote();
        out += s;
        if (w) w->add_raw(s);
      } else if (ch == '$') {
        std::string s = dollar();
        out += s;
        if (w) w->add_string(s);
      } else {
        pos_++;
        if (ch == escape_) {
          if (eof()) break;
          ch = in_[pos_++];
          if (w) w->add_raw(ch);
        } else if (w) {
          w->add_char(ch);
        }
        out += ch;
      }
    }
    if (stop) throw Error(std::string("unexpected end of statement while looking for matching ") + stop);
    return out;
  }

  std::string single_quote() {
    pos_++;
    size_t end = in_.find('\'', pos_);
    if (end == std::string_view::npos)
      throw Error("unexpected end of statement while looking for matching single-quote");
    std::string s(in_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }

  std::string double_quote() {
    pos_++;
    std::string out;
    for (;;) {
      if (eof()) throw Error("unexpected end of statement while looking for matching double-quote");
      char ch = in_[pos_];
      if (ch == '"') {
        pos_++;
        return out;
      }
      if (ch == '$') {
        out += dollar();
        continue;
      }
      pos_++;
      if (ch == escape_) {
        if (eof()) continue;
        char next = in_[pos_];
        if (next == '"' || next == '$' || next == escape_) {
          ch = next;
          pos_++;
        }
      }
      out += ch;
    }
  }

  std::string name() {
    std::string n;
    if (!eof() && std::isdigit(static_cast<unsigned char>(in_[pos_]))) {
      while (!eof() && std::isdigit(static_cast<unsigned char>(in_[pos_]))) n += in_[pos_++];
      return n;
    }
    if (!eof() && std::string_view("@*#?-$!").find(in_[pos_]) != std::string_view::npos)
      return std::string(1, in_[pos_++]);
    while (!eof() && (std::isalnum(static_cast<unsigned char>(in_[pos_])) || in_[pos_] == '_')) n += in_[pos_++];
    return n;
  }

  // The last entry of a key wins, so a caller appends what must override (ENV over ARG).
  std::optional<std::string> lookup(const std::string& key) const {
    for (auto it = env_.rbegin(); it != env_.rend(); ++it) {
      const std::string& kv = *it;
      size_t eq = kv.find('=');
      if (kv.compare(0, eq, key) == 0 && (eq == std::string::npos ? kv.size() : eq) == key.size())
        return eq == std::string::npos ? std::string() : kv.substr(eq + 1);
    }
    return std::nullopt;
  }

  std::string dollar() {
    pos_++;
    if (eof() || in_[pos_] != '{') {
      std::string n = name();
      if (n.empty()) return "$";
      return lookup(n).value_or("");
    }
    pos_++;
    if (eof()) throw Error("syntax error: missing '}'");
    if (in_[pos_] == '{' || in_[pos_] == '}' || in_[pos_] == ':') throw Error("syntax error: bad substitution");
    std::string n = name();
    if (eof()) throw Error("syntax error: missing '}'");
    char ch = in_[pos_++];
    auto value = lookup(n);
    bool set = value.has_value();
    bool nonempty = set && !value->empty();
    switch (ch) {
      case '}':
        return value.value_or("");
      case '?': {
        std::string word = process('}', nullptr);
        if (!set) throw Error(n + ": " + (word.empty() ? "is not allowed to be unset" : word));
        return *value;
      }
      case '-': {
        std::string word = process('}', nullptr);
        return set ? *value : word;
      }
      case '+': {
        std::string word = process('}', nullptr);
        return set ? word : "";
      }
      case ':': {
        if (eof()) throw Error("syntax error: missing '}'");
        char mod = in_[pos_++];
        std::string word = process('}', nullptr);
        if (mod == '-') return nonempty ? *value : word;
        if (mod == '+') return nonempty ? word : "";
        if (mod == '?') {
          if (!nonempty) throw Error(n + ": " + (word.empty() ? "is not allowed to be empty" : word));
          return *value;
        }
        throw Error(std::string("unsupported modifier (") + mod + ") in substitution");
      }
      default:
        throw Error(std::string("unsupported modifier (") + ch + ") in substitution");
    }
  }

  std::string_view in_;
  const std::vector<std::string>& env_;
  char escape_;
  size_t pos_ = 0;
};

bool valid_signal(const std::string& raw) {
  static const std::set<std::string> names = {
      "ABRT", "ALRM", "BUS",  "CHLD", "CLD",  "CONT", "FPE",    "HUP",    "ILL",  "INT",  "IO",    "IOT",
      "KILL", "PIPE", "POLL", "PROF", "PWR",  "QUIT", "SEGV",   "STKFLT", "STOP", "SYS",  "TERM",  "TRAP",
      "TSTP", "TTIN", "TTOU", "URG",  "USR1", "USR2", "VTALRM", "WINCH",  "XCPU", "XFSZ", "RTMIN", "RTMAX"};
  if (!raw.empty()) {
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(raw.c_str(), &end, 10);
    if (*end == '\0' && errno == 0 && !std::isspace(static_cast<unsigned char>(raw[0]))) return n != 0;
  }
  std::string name = upper(raw);
  if (name.compare(0, 3, "SIG") == 0) name = name.substr(3);
  if (names.count(name)) return true;
  for (int i = 1; i <= 15; i++)
    if (name == "RTMIN+" + std::to_string(i) || name == "RTMAX-" + std::to_string(i)) return true;
  return false;
}

// nat.ParsePortSpec, as EXPOSE uses it: "80", "80/udp", "8000-8002/tcp" → "80/tcp" keys.
std::vector<std::string> parse_port_spec(const std::string& raw) {
  std::string container = raw;
  if (size_t colon = raw.rfind(':'); colon != std::string::npos) container = raw.substr(colon + 1);
  std::string proto = "tcp";
  if (size_t slash = container.find('/'); slash != std::string::npos) {
    std::string p = container.substr(slash + 1);
    size_t more = p.find('/');
    if (more != std::string::npos) p = p.substr(0, more);
    if (!p.empty()) proto = p;
    container = container.substr(0, slash);
  }
  if (container.empty()) throw Error("no port specified: " + raw + "<empty>");
  auto parse_port = [&](const std::string& s) -> unsigned long {
    if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw Error("invalid containerPort: " + container);
    unsigned long n = std::stoul(s);
    if (n > 65535) throw Error("invalid containerPort: " + container);
    return n;
  };
  unsigned long start, end;
  if (size_t dash = container.find('-'); dash != std::string::npos) {
    start = parse_port(container.substr(0, dash));
    end = parse_port(container.substr(dash + 1));
    if (end < start) throw Error("invalid range specified for container port: " + container);
  } else {
    start = end = parse_port(container);
  }
  std::string lp = lower(proto);
  if (lp != "tcp" && lp != "udp" && lp != "sctp") throw Error("invalid proto: " + proto);
  std::vector<std::string> out;
  for (unsigned long p = start; p <= end; p++) out.push_back(std::to_string(p) + "/" + lp);
  return out;
}

// A config instruction as docker's parse step leaves it, ready to dispatch.
struct ConfigChange {
  std::string kind;  // lowercase instruction
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> kvs;  // ENV, LABEL
  bool json_form = false;                                // CMD, ENTRYPOINT: exec form
  ojson health;                                          // HEALTHCHECK
};

ojson parse_healthcheck(const DockerfileInstruction& l) {
  std::string_view rest = l.rest;
  size_t sep = 0;
  while (sep < rest.size() && !is_space(rest[sep])) sep++;
  if (sep == 0) throw Error("HEALTHCHECK requires at least one argument");
  std::string type = upper(rest.substr(0, sep));
  std::string_view cmd = trim(rest.substr(sep));
  if (type == "NONE") {
    if (!cmd.empty()) throw Error("HEALTHCHECK NONE takes no arguments");
    return ojson{{"Test", ojson::array({"NONE"})}};
  }
  auto flags = parse_instruction_flags(l.flags, {"interval", "timeout", "start-period", "start-interval", "retries"});
  if (type != "CMD") throw Error("Unknown type \"" + type + "\" in HEALTHCHECK (try CMD)");
  std::vector<std::string> test;
  auto exec = cmd.empty() ? std::optional<std::vector<std::string>>() : parse_json_array(cmd);
  if (exec) {
    test = *exec;
  } else if (!cmd.empty()) {
    test = {std::string(cmd)};
  }
  if (test.empty()) throw Error("Missing command after HEALTHCHECK CMD");
  test.insert(test.begin(), exec ? "CMD" : "CMD-SHELL");
  ojson h{{"Test", test}};
  for (auto [flag, key] : {std::pair{"interval", "Interval"},
                           {"timeout", "Timeout"},
                           {"start-period", "StartPeriod"},
                           {"start-interval", "StartInterval"}}) {
    auto it = flags.find(flag);
    if (it == flags.end() || it->second.empty()) continue;
    int64_t ns = parse_go_duration(it->second);
    if (ns == 0) continue;
    if (ns < 1000000) throw Error(std::string("Interval \"") + flag + "\" cannot be less than 1ms");
    h[key] = ns;
  }
  if (auto it = flags.find("retries"); it != flags.end() && !it->second.empty()) {
    const std::string& v = it->second;
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || n < INT32_MIN || n > INT32_MAX || is_space(v[0]))
      throw Error("strconv.ParseInt: parsing \"" + v + "\": invalid syntax");
    if (n < 0) throw Error("--retries cannot be negative (" + std::to_string(n) + ")");
    if (n > 0) h["Retries"] = n;
  }
  return h;
}

ConfigChange parse_config_instruction(const DockerfileInstruction& l, char escape) {
  ConfigChange c;
  c.kind = l.keyword;
  std::string name = upper(l.keyword);
  if (!kConfigInstructions.count(c.kind)) throw Error("not a config instruction: " + name);
  if (c.kind != "healthcheck") parse_instruction_flags(l.flags, {});
  if (c.kind == "cmd" || c.kind == "entrypoint") {
    if (l.rest.empty()) return c;
    if (auto exec = parse_json_array(l.rest)) {
      c.args = *exec;
      c.json_form = true;
    } else {
      c.args = {l.rest};
    }
  } else if (c.kind == "env" || c.kind == "label") {
    c.kvs = parse_name_values(l.rest, name, escape);
    if (c.kvs.empty()) throw Error(name + " requires at least one argument");
    for (const auto& [k, v] : c.kvs)
      if (k.empty()) throw Error(name + " names can not be blank");
  } else if (c.kind == "expose") {
    c.args = split_whitespace(l.rest);
    if (c.args.empty()) throw Error("EXPOSE requires at least one argument");
  } else if (c.kind == "volume") {
    auto list = parse_json_array(l.rest);
    c.args = list ? *list : split_whitespace(l.rest);
    if (c.args.empty()) throw Error("VOLUME requires at least one argument");
    for (auto& v : c.args) {
      v = std::string(trim(v));
      if (v.empty()) throw Error("VOLUME specified can not be an empty string");
    }
  } else if (c.kind == "user" || c.kind == "workdir" || c.kind == "stopsignal") {
    if (l.rest.empty()) throw Error(name + " requires exactly one argument");
    c.args = {l.rest};
  } else if (c.kind == "healthcheck") {
    c.health = parse_healthcheck(l);
  } else if (c.kind == "onbuild") {
    if (l.rest.empty()) throw Error("ONBUILD requires at least one argument");
    std::string trigger = upper(split_whitespace(l.rest)[0]);
    if (trigger == "ONBUILD") throw Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    if (trigger == "MAINTAINER" || trigger == "FROM") throw Error(trigger + " isn't allowed as an ONBUILD trigger");
    // The expression is the line as written, less the ONBUILD keyword.
    std::string_view expr = trim(l.original);
    expr.remove_prefix(std::min(expr.size(), l.keyword.size()));
    c.args = {std::string(trim(expr))};
  } else if (c.kind == "shell") {
    auto list = l.rest.empty() ? std::optional<std::vector<std::string>>() : parse_json_array(l.rest);
    if (!l.rest.empty() && !list) throw Error("SHELL requires the arguments to be in JSON form");
    if (!list || list->empty()) throw Error("SHELL requires at least one argument");
    c.args = *list;
  } else if (c.kind == "maintainer") {
    if (l.rest.empty()) throw Error("MAINTAINER requires exactly one argument");
  }
  return c;
}

ojson with_shell(const ojson& config, const std::vector<std::string>& args, bool json_form) {
  if (args.empty()) return ojson::array();
  if (json_form) return ojson(args);
  ojson out = ojson::array();
  if (config.contains("Shell") && config["Shell"].is_array() && !config["Shell"].empty())
    out = config["Shell"];
  else
    out = ojson::array({"/bin/sh", "-c"});
  for (const auto& a : args) out.push_back(a);
  return out;
}

// One element of a .dockerignore pattern. moby compiles patterns to regular expressions; this is
// the same language: "*" and "?" stop at "/", "**" crosses directories.
struct GlobPart {
  enum Kind { kChar, kOne, kStar, kDirs, kAll, kClass } kind = kChar;
  char ch = 0;
  bool negated = false;                       // kClass: "[^…]"
  std::vector<std::pair<char, char>> ranges;  // kClass
};

// Throws for what Go's filepath.Match calls a bad pattern: an unclosed or empty class, a class
// item starting with "-" or "]", a trailing "\".
std::vector<GlobPart> compile_glob(std::string_view p) {
  auto bad = [&]() -> void { throw Error("syntax error in pattern: " + std::string(p)); };
  auto escaped_char = [&](size_t& i) {
    if (i >= p.size() || p[i] == '-' || p[i] == ']') bad();
    if (p[i] == '\\' && ++i >= p.size()) bad();
    return p[i++];
  };
  std::vector<GlobPart> parts;
  for (size_t i = 0; i < p.size();) {
    GlobPart part;
    char ch = p[i++];
    if (ch == '*' && i < p.size() && p[i] == '*') {
      i++;
      if (i < p.size() && p[i] == '/') i++;
      part.kind = i == p.size() ? GlobPart::kAll : GlobPart::kDirs;
    } else if (ch == '*') {
      part.kind = GlobPart::kStar;
    } else if (ch == '?') {
      part.kind = GlobPart::kOne;
    } else if (ch == '\\') {
      if (i == p.size()) bad();
      part.ch = p[i++];
    } else if (ch == '[') {
      part.kind = GlobPart::kClass;
      if (i < p.size() && p[i] == '^') {
        part.negated = true;
        i++;
      }
      while (part.ranges.empty() || i >= p.size() || p[i] != ']') {
        char lo = escaped_char(i);
        char hi = lo;
        if (i < p.size() && p[i] == '-') hi = escaped_char(++i);
        part.ranges.emplace_back(lo, hi);
      }
      i++;
    } else {
      part.ch = ch;
    }
    parts.push_back(std::move(part));
  }
  return parts;
}

// The bytes of the UTF-8 character at s[i]: "?" matches a character, as in moby's regexps.
size_t utf8_length(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t n = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
  return std::min(n, s.size() - i);
}

bool glob_match(const std::vector<GlobPart>& parts, std::string_view s) {
  size_t n = s.size();
  // rest[j]: whether the parts after the current one match s[j..].
  std::vector<char> rest(n + 1, 0), cur(n + 1, 0);
  rest[n] = 1;
  for (size_t i = parts.size(); i-- > 0;) {
    const GlobPart& p = parts[i];
    bool dirs = false;  // kDirs: some s[j..k) ending in "/" is followed by a match of the rest
    for (size_t j = n + 1; j-- > 0;) {
      bool ok = false;
      bool more = j < n;
      switch (p.kind) {
        case GlobPart::kChar:
          ok = more && s[j] == p.ch && rest[j + 1];
          break;
        case GlobPart::kOne:
          ok = more && s[j] != '/' && rest[j + utf8_length(s, j)];
          break;
        case GlobPart::kClass: {
          bool in = more && std::any_of(p.ranges.begin(), p.ranges.end(),
                                        [&](const auto& r) { return r.first <= s[j] && s[j] <= r.second; });
          ok = more && in != p.negated && rest[j + 1];
          break;
        }
        case GlobPart::kStar:
          ok = rest[j] || (more && s[j] != '/' && cur[j + 1]);
          break;
        case GlobPart::kAll:
          ok = rest[j] || (more && cur[j + 1]);
          break;
        case GlobPart::kDirs:
          dirs = dirs || (more && s[j] == '/' && rest[j + 1]);
          ok = rest[j] || dirs;
          break;
      }
      cur[j] = ok;
    }
    rest.swap(cur);
  }
  return rest[0];
}

// moby's Pattern.match. A pattern that is "**" and then plain text is a suffix test there (so
// "**.log" matches "a/b.log"), not the regular expression the rest get.
bool pattern_matches(const std::string& pattern, std::string_view path) {
  if (pattern.starts_with("**") && pattern.find_first_of("*?[]\\", 2) == std::string::npos) {
    std::string_view suffix = std::string_view(pattern).substr(2);
    return path.ends_with(suffix) || (suffix.front() == '/' && path == suffix.substr(1));
  }
  return glob_match(compile_glob(pattern), path);
}

}  // namespace

ojson docker_config_order(const ojson& config) {
  static const char* const kOrder[] = {"Hostname",     "Domainname",   "User",        "AttachStdin",     "AttachStdout",
                                       "AttachStderr", "ExposedPorts", "Tty",         "OpenStdin",       "StdinOnce",
                                       "Env",          "Cmd",          "Healthcheck", "ArgsEscaped",     "Image",
                                       "Volumes",      "WorkingDir",   "Entrypoint",  "NetworkDisabled", "MacAddress",
                                       "OnBuild",      "Labels",       "StopSignal",  "StopTimeout",     "Shell"};
  ojson out = ojson::object();
  std::set<std::string> known;
  for (const char* k : kOrder) {
    known.insert(k);
    if (config.contains(k)) out[k] = config[k];
  }
  for (const auto& [k, v] : config.items())
    if (!known.count(k)) out[k] = v;
  return out;
}

std::string clean_absolute_path(const std::string& path) { return storage::clean_path("/" + path); }

Dockerfile parse_dockerfile(std::string_view text) { return parse_text(text, true); }

std::vector<DockerfileInstruction> parse_change_lines(const std::vector<std::string>& changes) {
  std::string text;
  for (size_t i = 0; i < changes.size(); i++) text += (i ? "\n" : "") + changes[i];
  return parse_text(text, false).instructions;
}

std::string expand_word(std::string_view word, const std::vector<std::string>& env, char escape) {
  return Lexer(word, env, escape).word();
}

std::vector<std::string> expand_words(std::string_view words, const std::vector<std::string>& env, char escape) {
  return Lexer(words, env, escape).words();
}

std::vector<std::string> parse_words(std::string_view rest) { return parse_words(rest, '\\'); }

std::vector<std::string> parse_words(std::string_view rest, char escape) {
  std::vector<std::string> out;
  for (auto& w : scan_words(rest, true, escape)) out.push_back(std::move(w.text));
  return out;
}

std::optional<std::vector<std::string>> parse_json_array(std::string_view rest) {
  while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
  if (rest.empty() || rest.front() != '[') return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(rest, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& v : j) {
    if (!v.is_string()) throw Error("when using JSON array syntax, arrays must be comprised of strings only");
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_name_values(const std::string& rest,
                                                                   const std::string& keyword) {
  return parse_name_values(rest, keyword, '\\');
}

std::vector<std::pair<std::string, std::string>> parse_name_values(const std::string& rest, const std::string& keyword,
                                                                   char escape) {
  std::vector<std::string> words = parse_words(rest, escape);
  std::vector<std::pair<std::string, std::string>> out;
  if (words.empty()) return out;
  if (words[0].find('=') == std::string::npos) {
    // The legacy form: KEY name value…
    size_t sp = 0;
    while (sp < rest.size() && !is_space(rest[sp])) sp++;
    std::string_view value = rest.size() > sp ? std::string_view(rest).substr(sp) : std::string_view();
    while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
    if (sp >= rest.size()) throw Error(keyword + " must have two arguments");
    out.emplace_back(rest.substr(0, sp), std::string(value));
    return out;
  }
  for (const auto& w : words) {
    size_t eq = w.find('=');
    if (eq == std::string::npos)
      throw Error("Syntax error - can't find = in \"" + w + "\". Must be of the form: name=value");
    out.emplace_back(w.substr(0, eq), w.substr(eq + 1));
  }
  return out;
}

std::map<std::string, std::string> parse_instruction_flags(const std::vector<std::string>& flags,
                                                           const std::set<std::string>& string_flags,
                                                           const std::set<std::string>& bool_flags) {
  std::map<std::string, std::string> out;
  for (const auto& f : flags) {
    if (f.compare(0, 2, "--") != 0) throw Error("arg should start with -- : " + f);
    if (f == "--") break;
    std::string name = f.substr(2);
    size_t eq = name.find('=');
    std::string value;
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    bool is_bool = bool_flags.count(name) > 0;
    if (!is_bool && !string_flags.count(name)) throw Error("unknown flag: " + name);
    if (out.count(name)) throw Error("duplicate flag specified: " + name);
    if (eq == std::string::npos && !is_bool) throw Error("missing a value on flag: " + name);
    if (is_bool) {
      if (eq != std::string::npos && value.empty()) throw Error("missing a value on flag: " + name);
      std::string v = value.empty() ? "true" : lower(value);
      if (v != "true" && v != "false") throw Error("expecting boolean value for flag " + name + ", not: " + value);
      value = v;
    }
    out[name] = value;
  }
  return out;
}

std::vector<std::string> config_env(const ojson& config) {
  std::vector<std::string> env;
  if (config.contains("Env") && config["Env"].is_array())
    for (const auto& e : config["Env"])
      if (e.is_string()) env.push_back(e.get<std::string>());
  return env;
}

void check_config_instruction(const DockerfileInstruction& instruction, char escape) {
  parse_config_instruction(instruction, escape);
}

void apply_config_instruction(ojson& config, const DockerfileInstruction& instruction,
                              const std::vector<std::string>& expansion_env, bool& cmd_set, char escape) {
  ConfigChange c = parse_config_instruction(instruction, escape);
  if (!config.is_object()) config = ojson::object();
  auto expand = [&](const std::string& s) { return expand_word(s, expansion_env, escape); };
  if (c.kind == "cmd") {
    config["Cmd"] = with_shell(config, c.args, c.json_form);
    cmd_set = true;
  } else if (c.kind == "entrypoint") {
    config["Entrypoint"] = with_shell(config, c.args, c.json_form);
    if (!cmd_set) config["Cmd"] = nullptr;
  } else if (c.kind == "env") {
    std::vector<std::pair<std::string, std::string>> kvs;
    for (const auto& [k, v] : c.kvs) kvs.emplace_back(expand(k), expand(v));
    std::vector<std::string> updated = config_env(config);
    for (const auto& [k, v] : kvs) {
      std::string entry = k + "=" + v;
      bool replaced = false;
      for (auto& e : updated)
        if (e.substr(0, e.find('=')) == k) {
          e = entry;
          replaced = true;
          break;
        }
      if (!replaced) updated.push_back(entry);
    }
    config["Env"] = updated;
  } else if (c.kind == "label") {
    if (!config.contains("Labels") || !config["Labels"].is_object()) config["Labels"] = ojson::object();
    for (const auto& [k, v] : c.kvs) config["Labels"][expand(k)] = expand(v);
  } else if (c.kind == "expose") {
    std::vector<std::string> ports;
    for (const auto& p : c.args)
      for (const auto& w : expand_words(p, expansion_env, escape)) ports.push_back(w);
    std::vector<std::string> keys;
    for (const auto& p : ports)
      for (const auto& k : parse_port_spec(p)) keys.push_back(k);
    if (!config.contains("ExposedPorts") || !config["ExposedPorts"].is_object())
      config["ExposedPorts"] = ojson::object();
    for (const auto& k : keys) config["ExposedPorts"][k] = ojson::object();
  } else if (c.kind == "volume") {
    std::vector<std::string> vols;
    for (const auto& v : c.args) {
      vols.push_back(expand(v));
      if (vols.back().empty()) throw Error("VOLUME specified can not be an empty string");
    }
    if (!config.contains("Volumes") || !config["Volumes"].is_object()) config["Volumes"] = ojson::object();
    for (const auto& v : vols) config["Volumes"][v] = ojson::object();
  } else if (c.kind == "user") {
    config["User"] = expand(c.args[0]);
  } else if (c.kind == "workdir") {
    std::string dir = expand(c.args[0]);
    if (dir.empty()) throw Error("cannot normalize nothing");
    if (dir.front() != '/') {
      std::string current = config.contains("WorkingDir") && config["WorkingDir"].is_string()
                                ? config["WorkingDir"].get<std::string>()
                                : "";
      dir = clean_absolute_path(current + "/" + dir);
    }
    config["WorkingDir"] = dir;
  } else if (c.kind == "stopsignal") {
    std::string sig = expand(c.args[0]);
    if (!valid_signal(sig)) throw Error("invalid signal: " + sig);
    config["StopSignal"] = sig;
  } else if (c.kind == "healthcheck") {
    config["Healthcheck"] = c.health;
  } else if (c.kind == "onbuild") {
    if (!config.contains("OnBuild") || !config["OnBuild"].is_array()) config["OnBuild"] = ojson::array();
    config["OnBuild"].push_back(c.args[0]);
  } else if (c.kind == "shell") {
    config["Shell"] = c.args;
  }
  config = docker_config_order(config);
}

DockerIgnore::DockerIgnore(std::string_view file_text) {
  Lines lines(strip_bom(file_text));
  while (auto raw = lines.next()) {
    std::string_view line = without_newline(*raw);
    if (line.starts_with("#")) continue;
    std::string_view t = trim(line);
    if (t.empty()) continue;
    Pattern pattern;
    if (t.front() == '!') {
      pattern.exclusion = false;
      t = trim(t.substr(1));
      if (t.empty()) throw Error("illegal exclusion pattern: \"!\"");
    }
    pattern.text = storage::clean_path(t);
    if (pattern.text.size() > 1 && pattern.text.front() == '/') pattern.text.erase(0, 1);
    if (pattern.text == ".") continue;  // the context root, which docker never excludes
    compile_glob(pattern.text);
    patterns_.push_back(std::move(pattern));
  }
}

bool DockerIgnore::excluded(std::string_view rel) const {
  std::string file = storage::clean_path(rel);
  if (file == "." || file == "/") return false;
  // As MatchesOrParentMatches: a pattern also matches the path when it matches a parent directory;
  // a normal pattern is only tried while the path is not excluded, an exception only while it is.
  bool matched = false;
  for (const auto& p : patterns_) {
    if (p.exclusion == matched) continue;
    bool match = pattern_matches(p.text, file);
    for (size_t slash = file.find('/'); !match && slash != std::string::npos; slash = file.find('/', slash + 1))
      match = pattern_matches(p.text, std::string_view(file).substr(0, slash));
    if (match) matched = p.exclusion;
  }
  return matched;
}

bool DockerIgnore::has_exceptions() const {
  return std::any_of(patterns_.begin(), patterns_.end(), [](const Pattern& p) { return !p.exclusion; });
}

}  // namespace berth::image
