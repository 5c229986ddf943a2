// .env files as compose-go's dotenv package reads them (a line-oriented scanner: quoted values may
// span lines, so the text is walked by position rather than split into lines first).
#include "compose/dotenv.hpp"

#include <cerrno>
#include <optional>
#include <unordered_map>

#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::compose {

namespace {

bool is_key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}
bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

class DotenvParser {
 public:
  DotenvParser(std::string text, const std::string& file, const VariableLookup& lookup)
      : text_(std::move(text)), file_(file), lookup_(lookup) {}

  std::vector<std::pair<std::string, std::string>> parse() {
    while (pos_ < text_.size()) statement();
    return std::move(vars_);
  }

 private:
  [[noreturn]] void fail(size_t line, const std::string& problem) const {
    throw Error(file_ + ":" + std::to_string(line) + ": " + problem);
  }

  std::string_view rest_of_line() const {
    size_t eol = text_.find('\n', pos_);
    return std::string_view(text_).substr(pos_, (eol == std::string::npos ? text_.size() : eol) - pos_);
  }

  // Moves past the current line's '\n'.
  void next_line() {
    size_t eol = text_.find('\n', pos_);
    pos_ = eol == std::string::npos ? text_.size() : eol + 1;
    ++line_;
  }

  void skip_blanks() {
    while (pos_ < text_.size() && is_blank(text_[pos_])) ++pos_;
  }

  void statement() {
    skip_blanks();
    if (pos_ == text_.size() || text_[pos_] == '\n' || text_[pos_] == '#') return next_line();
    std::string line_text(rest_of_line());
    if (line_text.starts_with("export") && line_text.size() > 6 && is_blank(line_text[6])) {
      size_t before = pos_;
      pos_ += 6;
      skip_blanks();
      if (pos_ == text_.size() || !is_key_char(text_[pos_])) pos_ = before;  // "export" is the key
    }
    size_t key_start = pos_;
    while (pos_ < text_.size() && is_key_char(text_[pos_])) ++pos_;
    std::string key = text_.substr(key_start, pos_ - key_start);
    size_t after_key = pos_;
    skip_blanks();
    char separator = pos_ < text_.size() ? text_[pos_] : '\n';
    if (!key.empty() && separator == '\n') {
      // A bare KEY takes its value from the environment, if it has one.
      if (auto value = lookup_ ? lookup_(key) : std::nullopt) set(key, *value);
      return next_line();
    }
    // KEY=VALUE, or compose-go's YAML-like KEY: VALUE.
    if (key.empty() || (separator != '=' && separator != ':'))
      fail(line_,
           "unexpected character \"" + std::string(1, text_[after_key]) + "\" in variable name \"" + line_text + "\"");
    ++pos_;
    skip_blanks();
    size_t value_line = line_;
    Value value =
        pos_ < text_.size() && (text_[pos_] == '\'' || text_[pos_] == '"') ? quoted_value() : unquoted_value();
    set(key, value.interpolate ? expand(value.text, value_line) : std::move(value.text));
  }

  struct Value {
    std::string text;
    bool interpolate;
  };

  // Up to the end of the line, without a " #" comment and trailing blanks.
  Value unquoted_value() {
    std::string value(rest_of_line());
    next_line();
    if (size_t comment = value.find(" #"); comment != std::string::npos) value.resize(comment);
    while (!value.empty() && is_blank(value.back())) value.pop_back();
    return {std::move(value), true};
  }

  // 'literal' or "escaped and interpolated", possibly over several lines; only blanks and a
  // comment may follow on the closing line.
  Value quoted_value() {
    size_t start_line = line_;
    char quote = text_[pos_];
    std::string first_line(rest_of_line());
    std::string raw;
    size_t i = pos_ + 1;
    bool escaped = false;
    for (; i < text_.size(); ++i) {
      char c = text_[i];
      if (c == '\n') ++line_;
      if (escaped) {
        escaped = false;
        if (quote == '\'') {
          if (c != quote) raw += '\\';  // only \' is an escape in single quotes
          raw += c;
        } else {
          raw += double_quoted_escape(c);
        }
      } else if (c == '\\') {
        escaped = true;
      } else if (c == quote) {
        break;
      } else {
        raw += c;
      }
    }
    if (i == text_.size()) fail(start_line, "unterminated quoted value " + first_line);
    pos_ = i + 1;
    skip_blanks();
    if (pos_ < text_.size() && text_[pos_] != '\n' && text_[pos_] != '#')
      fail(line_, "unexpected character \"" + std::string(1, text_[pos_]) + "\" after the quoted value");
    next_line();
    return {std::move(raw), quote == '"'};
  }

  // What \c stands for in a double-quoted value, as text for the interpolation that follows:
  // \$ is a literal dollar, hence "$$".
  static std::string double_quoted_escape(char c) {
    switch (c) {
      case 'n':
        return "\n";
      case 't':
        return "\t";
      case 'r':
        return "\r";
      case '$':
        return "$$";
      default:
        return std::string(1, c);  // \" \\ and anything else: the character itself
    }
  }

  // Unquoted and double-quoted values see the keys defined above them, then the environment.
  std::string expand(const std::string& value, size_t line) {
    VariableLookup lookup = [this](const std::string& name) -> std::optional<std::string> {
      if (auto found = index_.find(name); found != index_.end()) return vars_[found->second].second;
      return lookup_ ? lookup_(name) : std::nullopt;
    };
    return interpolate_string(value, lookup, file_ + ":" + std::to_string(line));
  }

  // A key set twice keeps its first position and its last value.
  void set(const std::string& key, std::string value) {
    auto [found, inserted] = index_.emplace(key, vars_.size());
    if (inserted)
      vars_.emplace_back(key, std::move(value));
    else
      vars_[found->second].second = std::move(value);
  }

  std::string text_;
  const std::string& file_;
  const VariableLookup& lookup_;
  size_t pos_ = 0;
  size_t line_ = 1;
  std::vector<std::pair<std::string, std::string>> vars_;
  std::unordered_map<std::string, size_t> index_;
};

// CRLF files read like LF ones.
std::string without_carriage_returns(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i)
    if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) out += text[i];
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_dotenv(const std::string& text, const std::string& file,
                                                              const VariableLookup& lookup) {
  return DotenvParser(without_carriage_returns(text), file, lookup).parse();
}

std::vector<std::pair<std::string, std::string>> read_dotenv(const std::string& file, const VariableLookup& lookup) {
  std::optional<std::string> text = read_file_if_exists(file);
  if (!text) throw Error(file + ": no such file or directory", ENOENT);
  return parse_dotenv(*text, file, lookup);
}

}  // namespace berth::compose
