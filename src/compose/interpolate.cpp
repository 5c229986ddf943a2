// Compose's ${VAR} interpolation, written as a small scanner rather than compose-go's regular
// expression so that nested defaults (${A:-${B:-x}}) find their matching brace.
#include "compose/interpolate.hpp"

#include <set>
#include <utility>
#include <vector>

#include "util/error.hpp"

namespace berth::compose {

using nlohmann::json;

namespace {

bool is_name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

class Interpolator {
 public:
  Interpolator(std::string_view whole, const VariableLookup& lookup, const std::string& where,
               const VariableWarning& warn)
      : whole_(whole), lookup_(lookup), where_(where), warn_(warn) {}

  std::string expand(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
      size_t dollar = s.find('$', i);
      if (dollar == std::string_view::npos || dollar + 1 == s.size()) {
        out.append(s.substr(i));  // a trailing '$' is literal
        break;
      }
      out.append(s.substr(i, dollar - i));
      char next = s[dollar + 1];
      if (next == '$') {
        out += '$';
        i = dollar + 2;
      } else if (is_name_start(next)) {
        size_t end = dollar + 1;
        while (end < s.size() && is_name_char(s[end])) ++end;
        out += value_or_empty(std::string(s.substr(dollar + 1, end - dollar - 1)));
        i = end;
      } else if (next == '{') {
        size_t close = closing_brace(s, dollar + 2);
        out += braced(s.substr(dollar + 2, close - dollar - 2));
        i = close + 1;
      } else {
        out += '$';  // "$1", "$-": not a reference, kept as written
        i = dollar + 1;
      }
    }
    return out;
  }

 private:
  [[noreturn]] void invalid() const {
    throw Error(where_ + ": invalid interpolation format for \"" + std::string(whole_) + "\"");
  }

  std::optional<std::string> lookup(const std::string& name) const { return lookup_ ? lookup_(name) : std::nullopt; }

  // $VAR and ${VAR}: an unset variable is empty, with one warning per name.
  std::string value_or_empty(const std::string& name) {
    if (auto value = lookup(name)) return *value;
    if (warn_ && warned_.insert(name).second) warn_(name);
    return "";
  }

  // The '}' closing the reference whose body starts at `from`, past nested ${…} and $$.
  size_t closing_brace(std::string_view s, size_t from) const {
    int depth = 0;
    for (size_t i = from; i < s.size(); ++i) {
      if (s[i] == '$' && i + 1 < s.size() && (s[i + 1] == '$' || s[i + 1] == '{')) {
        if (s[i + 1] == '{') ++depth;
        ++i;
      } else if (s[i] == '}') {
        if (depth == 0) return i;
        --depth;
      }
    }
    invalid();
  }

  // The inside of ${…}: NAME, then optionally [:]- [:]? [:]+ and an argument (itself interpolated,
  // only when it is used).
  std::string braced(std::string_view body) {
    size_t name_end = 0;
    if (body.empty() || !is_name_start(body[0])) invalid();
    while (name_end < body.size() && is_name_char(body[name_end])) ++name_end;
    std::string name(body.substr(0, name_end));
    std::string_view rest = body.substr(name_end);
    if (rest.empty()) return value_or_empty(name);

    bool empty_is_unset = rest[0] == ':';
    if (empty_is_unset) rest.remove_prefix(1);
    if (rest.empty() || (rest[0] != '-' && rest[0] != '?' && rest[0] != '+')) invalid();
    char op = rest[0];
    std::string_view argument = rest.substr(1);

    std::optional<std::string> value = lookup(name);
    bool is_set = value && !(empty_is_unset && value->empty());
    switch (op) {
      case '-':
        return is_set ? *value : expand(argument);
      case '+':
        return is_set ? expand(argument) : "";
      default: {  // '?'
        if (is_set) return *value;
        std::string message = expand(argument);
        throw Error(where_ + ": required variable " + name + " is missing a value" +
                    (message.empty() ? "" : ": " + message));
      }
    }
  }

  std::string_view whole_;
  const VariableLookup& lookup_;
  const std::string& where_;
  const VariableWarning& warn_;
  std::set<std::string> warned_;
};

std::string path_string(const std::vector<std::string>& path) {
  if (path.empty()) return "(root)";
  std::string out;
  for (const auto& part : path) {
    if (!out.empty()) out += '.';
    out += part;
  }
  return out;
}

json interpolate_value(const json& value, std::vector<std::string>& path, const VariableLookup& lookup,
                       const std::string& file, const VariableWarning& warn) {
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    if (s.find('$') == std::string::npos) return value;
    return interpolate_string(s, lookup, file + ": " + path_string(path), warn);
  }
  if (value.is_object()) {
    json out = json::object();
    for (const auto& [key, item] : value.items()) {
      path.push_back(key);
      out[key] = interpolate_value(item, path, lookup, file, warn);
      path.pop_back();
    }
    return out;
  }
  if (value.is_array()) {
    json out = json::array();
    for (size_t i = 0; i < value.size(); ++i) {
      path.push_back(std::to_string(i));
      out.push_back(interpolate_value(value[i], path, lookup, file, warn));
      path.pop_back();
    }
    return out;
  }
  return value;
}

}  // namespace

std::string interpolate_string(std::string_view s, const VariableLookup& lookup, const std::string& where,
                               const VariableWarning& warn) {
  return Interpolator(s, lookup, where, warn).expand(s);
}

json interpolate(const json& doc, const VariableLookup& lookup, const std::string& file, const VariableWarning& warn) {
  // One warning per variable for the whole document, not per string that uses it.
  std::set<std::string> warned;
  VariableWarning warn_once;
  if (warn)
    warn_once = [&](const std::string& name) {
      if (warned.insert(name).second) warn(name);
    };
  std::vector<std::string> path;
  return interpolate_value(doc, path, lookup, file, warn_once);
}

}  // namespace berth::compose
