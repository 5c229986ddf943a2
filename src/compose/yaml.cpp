// YAML ↔ JSON for compose files. Parsing goes through yaml-cpp's event API rather than YAML::Node:
// events carry each scalar's tag (plain "?", quoted "!") and position, which is what the core
// schema's typing, duplicate-key errors with line numbers and merge keys (<<) need.
#include "compose/yaml.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <vector>

#include "util/error.hpp"
#include "util/strings.hpp"

namespace berth::compose {

using nlohmann::json;

namespace {

constexpr std::string_view kTagPrefix = "tag:yaml.org,2002:";
// Aliases copy their anchor's value; this bounds what a "billion laughs" document can expand to.
constexpr size_t kMaxNodes = 250'000;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string position(const std::string& file, const YAML::Mark& mark) {
  if (mark.is_null()) return file;
  return file + ": line " + std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1);
}

[[noreturn]] void fail(const std::string& file, const YAML::Mark& mark, const std::string& problem) {
  throw Error(position(file, mark) + ": " + problem);
}

bool is_null_text(std::string_view s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

std::optional<bool> bool_text(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

// Digits in base 8, 10 or 16 as a JSON integer; past int64 the value becomes a float rather than
// wrapping around.
std::optional<json> digits_value(std::string_view digits, int base, bool negative) {
  if (digits.empty()) return std::nullopt;
  uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (end != digits.data() + digits.size() && ec != std::errc::result_out_of_range) return std::nullopt;
  constexpr uint64_t kMaxPositive = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (ec == std::errc() && (magnitude <= kMaxPositive || (negative && magnitude == kMaxPositive + 1))) {
    if (!negative) return json(static_cast<int64_t>(magnitude));
    return json(magnitude == kMaxPositive + 1 ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(magnitude));
  }
  double approx = 0;
  for (char c : digits) {
    int digit = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
    approx = approx * base + digit;
  }
  return json(negative ? -approx : approx);
}

// The core schema's integers: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+; and 0[0-7]+ octal (go-yaml v3).
std::optional<json> integer_value(std::string_view s) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    std::string_view digits = s.substr(2);
    for (char c : digits) {
      bool ok = s[1] == 'o' ? (c >= '0' && c <= '7') : std::isxdigit(static_cast<unsigned char>(c)) != 0;
      if (!ok) return std::nullopt;
    }
    return digits_value(digits, s[1] == 'o' ? 8 : 16, false);
  }
  bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  for (char c : s)
    if (!is_digit(c)) return std::nullopt;
  // 0755 is octal, as docker compose's YAML reader (go-yaml v3) reads it: modes are written so.
  if (s.size() > 1 && s[0] == '0' && s.find_first_not_of("01234567") == std::string_view::npos)
    return digits_value(s.substr(1), 8, negative);
  return digits_value(s, 10, negative);
}

// The core schema's floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? and .inf/.nan.
std::optional<json> float_value(std::string_view s) {
  std::string_view body = s;
  bool negative = false;
  if (!body.empty() && (body[0] == '-' || body[0] == '+')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  if (body == ".inf" || body == ".Inf" || body == ".INF")
    return json(negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity());
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return json(std::numeric_limits<double>::quiet_NaN());
  size_t i = 0;
  size_t int_digits = 0, frac_digits = 0;
  while (i < body.size() && is_digit(body[i])) ++i, ++int_digits;
  if (i < body.size() && body[i] == '.') {
    ++i;
    while (i < body.size() && is_digit(body[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return std::nullopt;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    ++i;
    if (i < body.size() && (body[i] == '-' || body[i] == '+')) ++i;
    size_t exp_digits = 0;
    while (i < body.size() && is_digit(body[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return std::nullopt;
  }
  if (i != body.size()) return std::nullopt;
  // from_chars is locale-independent (strtod is not) but takes neither '+' nor a bare "1." tail.
  std::string text(body);
  if (text.back() == '.') text.pop_back();
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (end != text.data() + text.size()) return std::nullopt;
  if (ec == std::errc::result_out_of_range) {
    // from_chars leaves the value alone then: overflow or underflow, by the decimal exponent of
    // the first significant digit.
    std::string_view mantissa = std::string_view(text).substr(0, text.find_first_of("eE"));
    long exponent = mantissa.size() < text.size() ? std::strtol(text.c_str() + mantissa.size() + 1, nullptr, 10) : 0;
    exponent = std::clamp(exponent, -100'000L, 100'000L);
    size_t point = std::min(mantissa.find('.'), mantissa.size());
    size_t first = mantissa.find_first_of("123456789");
    long magnitude = first < point ? static_cast<long>(point - first) - 1 : -static_cast<long>(first - point);
    value = first != std::string_view::npos && magnitude + exponent > 0 ? std::numeric_limits<double>::infinity() : 0.0;
  }
  return json(negative ? -value : value);
}

// A plain (unquoted, untagged) scalar typed by the YAML 1.2 core schema; yes/no/on/off stay strings.
json plain_scalar(const std::string& text) {
  if (is_null_text(text)) return nullptr;
  if (auto b = bool_text(text)) return *b;
  if (auto i = integer_value(text)) return *i;
  if (auto f = float_value(text)) return *f;
  return text;
}

// A scalar with an explicit tag: the yaml.org types are honoured, anything else (!!binary, !custom,
// the non-specific "!" of quoted scalars) is the text.
json tagged_scalar(const std::string& tag, const std::string& text, const std::string& file, const YAML::Mark& mark) {
  if (tag == "?") return plain_scalar(text);
  if (!tag.starts_with(kTagPrefix)) return text;
  std::string_view type = std::string_view(tag).substr(kTagPrefix.size());
  auto invalid = [&]() -> json { fail(file, mark, "invalid !!" + std::string(type) + " value \"" + text + "\""); };
  if (type == "int") {
    auto i = integer_value(text);
    return i ? *i : invalid();
  }
  if (type == "float") {
    if (auto f = float_value(text)) return *f;
    if (auto i = integer_value(text)) return i->get<double>();
    return invalid();
  }
  if (type == "bool") {
    auto b = bool_text(text);
    return b ? json(*b) : invalid();
  }
  if (type == "null") return is_null_text(text) ? json(nullptr) : invalid();
  return text;
}

// Builds the JSON value from yaml-cpp's parse events.
class JsonBuilder : public YAML::EventHandler {
 public:
  explicit JsonBuilder(const std::string& file) : file_(file) {}

  json take_root() { return std::move(root_); }
  std::vector<YamlTag> take_tags() { return std::move(tags_); }
  const YAML::Mark& second_document() const { return second_document_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ == 2) second_document_ = mark;
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (expecting_key()) fail(file_, mark, "a mapping key cannot be null");
    complete(nullptr, mark, 1, anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto found = anchors_.find(anchor);
    // yaml-cpp rejects unknown anchors itself; an anchor still open here is a recursive alias.
    if (found == anchors_.end()) fail(file_, mark, "alias refers to a node that contains it");
    const auto& [value, nodes] = found->second;
    if (expecting_key()) {
      if (value.is_structured()) fail(file_, mark, "mapping keys must be scalars");
      set_key(value.is_string() ? value.get<std::string>() : value.dump(), mark, false);
      return;
    }
    complete(value, mark, nodes, YAML::NullAnchor);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (expecting_key()) {
      // Keys keep their text (a key 8080 is "8080"); only a plain << is a merge key.
      if (anchor != YAML::NullAnchor) anchors_[anchor] = {json(value), 1};
      set_key(value, mark, tag == "?" && value == "<<");
      return;
    }
    note_tag(tag);
    complete(tagged_scalar(tag, value, file_, mark), mark, 1, anchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    if (!expecting_key()) note_tag(tag);
    open(json::array(), mark, anchor);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    if (!expecting_key()) note_tag(tag);
    open(json::object(), mark, anchor);
  }

  void OnMapEnd() override {
    // Merged mappings fill in only the keys the mapping does not set itself, the first listed
    // winning over later ones.
    Frame& frame = stack_.back();
    for (const json& merged : frame.merges)
      for (const auto& [key, value] : merged.items())
        if (!frame.value.contains(key)) frame.value[key] = value;
    close();
  }

 private:
  // compose's !reset and !override: remembered with the path of the value they tag.
  void note_tag(const std::string& tag) {
    if (tag != "!reset" && tag != "!override") return;
    YamlTag t;
    t.tag = tag;
    for (const Frame& f : stack_)
      t.path.push_back(f.value.is_array() ? std::to_string(f.value.size()) : f.key.value_or(""));
    tags_.push_back(std::move(t));
  }

  struct Frame {
    json value;  // the object or array being filled
    YAML::Mark mark;
    YAML::anchor_t anchor = YAML::NullAnchor;
    size_t nodes = 1;
    // Mappings: the pending key, and where each key was set (for duplicate errors).
    std::optional<std::string> key;
    YAML::Mark key_mark;
    bool key_is_merge = false;
    std::unordered_map<std::string, int> key_lines;
    std::vector<json> merges;
  };

  bool expecting_key() const { return !stack_.empty() && stack_.back().value.is_object() && !stack_.back().key; }

  void set_key(const std::string& key, const YAML::Mark& mark, bool is_merge) {
    Frame& frame = stack_.back();
    frame.key = key;
    frame.key_mark = mark;
    frame.key_is_merge = is_merge;
  }

  void open(json value, const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (expecting_key()) fail(file_, mark, "mapping keys must be scalars");
    Frame& frame = stack_.emplace_back();
    frame.value = std::move(value);
    frame.mark = mark;
    frame.anchor = anchor;
  }

  void close() {
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    complete(std::move(frame.value), frame.mark, frame.nodes, frame.anchor);
  }

  // A finished node: remembered under its anchor, then added to its parent (or made the root).
  void complete(json value, const YAML::Mark& mark, size_t nodes, YAML::anchor_t anchor) {
    total_nodes_ += nodes;
    if (total_nodes_ > kMaxNodes) fail(file_, mark, "document is too large once its aliases are expanded");
    if (anchor != YAML::NullAnchor) anchors_[anchor] = {value, nodes};
    if (stack_.empty()) {
      root_ = std::move(value);
      return;
    }
    Frame& parent = stack_.back();
    parent.nodes += nodes;
    if (parent.value.is_array()) {
      parent.value.push_back(std::move(value));
      return;
    }
    std::string key = std::move(*parent.key);
    parent.key.reset();
    if (parent.key_is_merge) {
      add_merge(parent, std::move(value), mark);
      return;
    }
    auto [previous, inserted] = parent.key_lines.emplace(key, parent.key_mark.line + 1);
    if (!inserted)
      fail(file_, parent.key_mark,
           "mapping key \"" + key + "\" already defined at line " + std::to_string(previous->second));
    parent.value[key] = std::move(value);
  }

  void add_merge(Frame& parent, json value, const YAML::Mark& mark) {
    auto bad = [&] { fail(file_, mark, "the value of a merge key (<<) must be a mapping or a list of mappings"); };
    if (value.is_object()) {
      parent.merges.push_back(std::move(value));
    } else if (value.is_array()) {
      for (json& item : value) {
        if (!item.is_object()) bad();
        parent.merges.push_back(std::move(item));
      }
    } else {
      bad();
    }
  }

  const std::string& file_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, std::pair<json, size_t>> anchors_;  // value, node count
  json root_;
  std::vector<YamlTag> tags_;
  size_t total_nodes_ = 0;
  int documents_ = 0;
  YAML::Mark second_document_;
};

// Whether a string must be quoted to be read back as the same string.
// What a YAML 1.1 reader (PyYAML, the go-yaml v2 under kubectl) would not read back as this
// string: its booleans (yes, no, on, off, y, n in any case), numbers with '_' or ':' (base 60),
// 0b… binary, timestamps. Quoting them costs nothing in YAML 1.2.
bool yaml11_retyped(const std::string& s) {
  if (s.empty()) return false;
  std::string l = lower(s);
  for (const char* word : {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})
    if (l == word) return true;
  // Numbers YAML 1.2 reads as strings: 1_000, 0b101, and base 60 (1:20, each part after a
  // colon at most 59) — "8080:80" stays a string in both.
  size_t i = s[0] == '-' || s[0] == '+' ? 1 : 0;
  if (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    std::string body = s.substr(i);
    if (body.size() > 2 && body[0] == '0' && (body[1] == 'b' || body[1] == 'B') &&
        body.find_first_not_of("01_", 2) == std::string::npos)
      return true;
    if (body.find('_') != std::string::npos && body.find_first_not_of("0123456789_.eE+-") == std::string::npos)
      return true;
    if (body.find(':') != std::string::npos) {
      bool base60 = true;
      size_t at = body.find(':');
      if (body.substr(0, at).find_first_not_of("0123456789_") != std::string::npos) base60 = false;
      while (base60 && at != std::string::npos) {
        size_t next = body.find(':', at + 1);
        std::string part = body.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
        if (next == std::string::npos && part.find('.') != std::string::npos) part = part.substr(0, part.find('.'));
        base60 = !part.empty() && part.size() <= 2 && part.find_first_not_of("0123456789") == std::string::npos &&
                 std::stoi(part) <= 59;
        at = next;
      }
      if (base60) return true;
    }
  }
  // 2001-12-14, 2001-12-14t21:59:43.10-05:00 …
  return s.size() >= 8 && std::isdigit(static_cast<unsigned char>(s[0])) &&
         std::isdigit(static_cast<unsigned char>(s[3])) && s[4] == '-' &&
         std::isdigit(static_cast<unsigned char>(s[5]));
}

bool needs_quotes(const std::string& s) {
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\n') || c == 0x7f) return true;  // control characters: escaped in double quotes
  return !plain_scalar(s).is_string() || yaml11_retyped(s);
}

void emit(YAML::Emitter& out, const json& value);

void emit_string(YAML::Emitter& out, const std::string& s, bool is_key) {
  // Multi-line text is double-quoted: yaml-cpp's literal blocks lose the trailing-newline chomping.
  if (needs_quotes(s) || (is_key && s == "<<") || s.find('\n') != std::string::npos)
    out << YAML::DoubleQuoted << s;
  else
    out << s;
}

void emit(YAML::Emitter& out, const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      out << YAML::Null;
      break;
    case json::value_t::boolean:
      out << value.get<bool>();
      break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      out << value.dump();
      break;
    case json::value_t::number_float: {
      double d = value.get<double>();
      if (std::isnan(d))
        out << ".nan";
      else if (std::isinf(d))
        out << (d > 0 ? ".inf" : "-.inf");
      else
        out << value.dump();  // shortest round-trip form, always with '.' or an exponent
      break;
    }
    case json::value_t::string:
      emit_string(out, value.get_ref<const std::string&>(), false);
      break;
    case json::value_t::array:
      if (value.empty()) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const json& item : value) emit(out, item);
      out << YAML::EndSeq;
      break;
    case json::value_t::object:
      if (value.empty()) out << YAML::Flow;
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key;
        emit_string(out, key, true);
        out << YAML::Value;
        emit(out, item);
      }
      out << YAML::EndMap;
      break;
    case json::value_t::binary:
    case json::value_t::discarded:
      out << YAML::Null;
      break;
  }
}

}  // namespace

json yaml_to_json(std::string_view text, const std::string& file, std::vector<YamlTag>* tags) {
  std::istringstream in{std::string(text)};
  JsonBuilder builder(file);
  try {
    YAML::Parser parser(in);
    if (!parser.HandleNextDocument(builder)) return nullptr;
    if (parser.HandleNextDocument(builder))
      fail(file, builder.second_document(), "a compose file holds a single YAML document");
  } catch (const YAML::Exception& e) {
    fail(file, e.mark, e.msg);
  }
  if (tags) *tags = builder.take_tags();
  return builder.take_root();
}

std::vector<json> yaml_documents(std::string_view text, const std::string& file) {
  std::istringstream in{std::string(text)};
  std::vector<json> documents;
  try {
    YAML::Parser parser(in);
    for (;;) {
      JsonBuilder builder(file);
      if (!parser.HandleNextDocument(builder)) break;
      documents.push_back(builder.take_root());
    }
  } catch (const YAML::Exception& e) {
    fail(file, e.mark, e.msg);
  }
  return documents;
}

std::string json_to_yaml(const json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetNullFormat(YAML::LowerNull);
  out.SetBoolFormat(YAML::TrueFalseBool);
  out.SetBoolFormat(YAML::LowerCase);
  emit(out, value);
  if (!out.good()) throw Error("cannot write YAML: " + out.GetLastError());
  std::string text = out.c_str();
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

}  // namespace berth::compose
