// A JSON Schema validator for the keywords the compose specification uses. It walks the schema
// JSON directly (the JsonSchema object holds nothing else); regular expressions, the costly part,
// are compiled once per pattern text and shared by all validations.
#include "compose/schema.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <optional>
// GCC 12's <regex> trips -Wmaybe-uninitialized in its own std::function moves under the
// sanitizer build (a false positive inside libstdc++, see also cli/filters.hpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>
#pragma GCC diagnostic pop
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "util/error.hpp"

namespace berth::compose {

extern const char* const compose_schema_json;

using nlohmann::json;

namespace {

// The location in the validated value, as a chain through the validator's stack frames: it is
// only turned into text when a problem is reported.
struct Path {
  const Path* parent = nullptr;
  std::string_view key;
  size_t index = 0;
  bool is_index = false;

  Path child(std::string_view k) const { return Path{this, k, 0, false}; }
  Path child(size_t i) const { return Path{this, {}, i, true}; }

  std::string str() const {
    std::vector<const Path*> parts;
    for (const Path* p = this; p->parent; p = p->parent) parts.push_back(p);
    if (parts.empty()) return "(root)";
    std::string out;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
      if (!out.empty()) out += '.';
      out += (*it)->is_index ? std::to_string((*it)->index) : std::string((*it)->key);
    }
    return out;
  }
};

// Compiled patterns by their text, shared by every validation (std::regex compiles slowly, and
// the compose schema repeats the same few patterns about a hundred times).
const std::regex& compiled(const std::string& pattern) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::regex> cache;  // node-based: references stay valid
  std::lock_guard lock(mutex);
  auto found = cache.find(pattern);
  if (found == cache.end()) {
    try {
      found = cache.emplace(pattern, std::regex(pattern, std::regex::ECMAScript | std::regex::optimize)).first;
    } catch (const std::regex_error& e) {
      throw Error("invalid pattern in schema \"" + pattern + "\": " + e.what());
    }
  }
  return found->second;
}

bool matches(const std::string& pattern, std::string_view text) {
  return std::regex_search(text.begin(), text.end(), compiled(pattern));
}

bool is_integral(const json& value) {
  if (value.is_number_integer()) return true;  // also covers unsigned
  if (!value.is_number_float()) return false;
  double d = value.get<double>();
  return std::isfinite(d) && std::trunc(d) == d;
}

bool has_type(const json& value, std::string_view type) {
  if (type == "string") return value.is_string();
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "number") return value.is_number();
  if (type == "integer") return is_integral(value);
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  return false;
}

// "a string", "a string or number", "a number, string or object".
std::string describe_types(const std::vector<std::string>& types) {
  std::string out;
  for (size_t i = 0; i < types.size(); ++i) {
    if (i > 0) out += i + 1 == types.size() ? " or " : ", ";
    out += types[i];
  }
  if (types.empty() || types.front().empty()) return "nothing";
  char first = types.front().front();
  bool vowel = first == 'a' || first == 'e' || first == 'i' || first == 'o' || first == 'u';
  return (vowel ? "an " : "a ") + out;
}

std::vector<std::string> type_list(const json& type) {
  if (type.is_string()) return {type.get<std::string>()};
  std::vector<std::string> out;
  if (type.is_array())
    for (const json& t : type)
      if (t.is_string()) out.push_back(t.get<std::string>());
  return out;
}

// "type": a name or a list of names.
bool matches_type_keyword(const json& value, const json& type) {
  if (type.is_string()) return has_type(value, std::string_view(type.get_ref<const std::string&>()));
  return type.is_array() && std::any_of(type.begin(), type.end(), [&](const json& t) {
           return t.is_string() && has_type(value, std::string_view(t.get_ref<const std::string&>()));
         });
}

bool has_any_type(const json& value, const std::vector<std::string>& types) {
  return std::any_of(types.begin(), types.end(), [&](const std::string& t) { return has_type(value, t); });
}

std::string json_type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::object:
      return "object";
    case json::value_t::array:
      return "array";
    case json::value_t::string:
      return "string";
    default:
      return is_integral(value) ? "integer" : "number";
  }
}

size_t code_points(const std::string& s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

// The checks of one schema against one value: whether they all passed, and whether to go on after
// a failure (only when every problem is wanted; oneOf branches are tried stopping at the first).
class Outcome {
 public:
  explicit Outcome(std::vector<std::string>* problems) : problems_(problems) {}

  std::vector<std::string>* problems() const { return problems_; }
  bool ok() const { return ok_; }

  // Records a check's result; false means: stop, the answer is known.
  bool add(bool passed) {
    ok_ = ok_ && passed;
    return ok_ || problems_ != nullptr;
  }
  bool fail(const Path& path, const std::string& problem) {
    if (problems_) problems_->push_back(path.str() + ": " + problem);
    return add(false);
  }

 private:
  std::vector<std::string>* problems_;
  bool ok_ = true;
};

// The keywords of one schema object, found in one pass over its keys: schema objects hold a few
// keys, and looking each of some 25 keywords up by name was most of the validation time.
struct Keywords {
  const json* ref = nullptr;
  const json* type = nullptr;
  const json* enum_values = nullptr;
  const json* constant = nullptr;
  const json* minimum = nullptr;
  const json* maximum = nullptr;
  const json* exclusive_minimum = nullptr;
  const json* exclusive_maximum = nullptr;
  const json* min_length = nullptr;
  const json* max_length = nullptr;
  const json* pattern = nullptr;
  const json* min_items = nullptr;
  const json* max_items = nullptr;
  const json* unique_items = nullptr;
  const json* items = nullptr;
  const json* prefix_items = nullptr;
  const json* additional_items = nullptr;
  const json* required = nullptr;
  const json* min_properties = nullptr;
  const json* max_properties = nullptr;
  const json* properties = nullptr;
  const json* pattern_properties = nullptr;
  const json* additional_properties = nullptr;
  const json* all_of = nullptr;
  const json* any_of = nullptr;
  const json* one_of = nullptr;
  const json* negated = nullptr;

  explicit Keywords(const json& schema) {
    static const std::unordered_map<std::string_view, const json* Keywords::*> by_name = {
        {"$ref", &Keywords::ref},
        {"type", &Keywords::type},
        {"enum", &Keywords::enum_values},
        {"const", &Keywords::constant},
        {"minimum", &Keywords::minimum},
        {"maximum", &Keywords::maximum},
        {"exclusiveMinimum", &Keywords::exclusive_minimum},
        {"exclusiveMaximum", &Keywords::exclusive_maximum},
        {"minLength", &Keywords::min_length},
        {"maxLength", &Keywords::max_length},
        {"pattern", &Keywords::pattern},
        {"minItems", &Keywords::min_items},
        {"maxItems", &Keywords::max_items},
        {"uniqueItems", &Keywords::unique_items},
        {"items", &Keywords::items},
        {"prefixItems", &Keywords::prefix_items},
        {"additionalItems", &Keywords::additional_items},
        {"required", &Keywords::required},
        {"minProperties", &Keywords::min_properties},
        {"maxProperties", &Keywords::max_properties},
        {"properties", &Keywords::properties},
        {"patternProperties", &Keywords::pattern_properties},
        {"additionalProperties", &Keywords::additional_properties},
        {"allOf", &Keywords::all_of},
        {"anyOf", &Keywords::any_of},
        {"oneOf", &Keywords::one_of},
        {"not", &Keywords::negated},
    };
    for (auto it = schema.begin(); it != schema.end(); ++it)
      if (auto member = by_name.find(it.key()); member != by_name.end()) this->*(member->second) = &it.value();
  }
};

// A non-negative integer keyword's value (minItems, maxLength…).
std::optional<size_t> size_limit(const json* keyword) {
  if (!keyword || !keyword->is_number_integer() || keyword->get<int64_t>() < 0) return std::nullopt;
  return keyword->get<size_t>();
}

class Validator {
 public:
  explicit Validator(const json& root) : root_(root) {}

  // Whether value satisfies schema; with problems, every problem found is appended to it.
  bool check(const json& value, const json& schema, const Path& path, std::vector<std::string>* problems) const {
    Outcome out(problems);
    if (schema.is_boolean()) {
      if (!schema.get<bool>()) out.fail(path, "is not allowed");
      return out.ok();
    }
    if (!schema.is_object()) return true;
    Keywords k(schema);
    if (k.ref && !out.add(check(value, resolve(*k.ref), path, problems))) return false;
    // On a type mismatch the other keywords would only repeat it.
    if (k.type && !matches_type_keyword(value, *k.type)) {
      out.fail(path, "must be " + describe_types(type_list(*k.type)));
      return false;
    }
    bool going = check_values(value, k, path, out);
    if (going && value.is_number()) going = check_number(value, k, path, out);
    if (going && value.is_string()) going = check_string(value, k, path, out);
    if (going && value.is_array()) going = check_array(value, k, path, out);
    if (going && value.is_object()) going = check_object(value, k, path, out);
    if (going) check_combinations(value, k, path, out);
    return out.ok();
  }

 private:
  // "#", "#/$defs/name", "#/definitions/name": JSON pointers into the schema.
  const json& resolve(const json& ref) const {
    std::string_view pointer = ref.is_string() ? std::string_view(ref.get_ref<const std::string&>()) : "";
    if (!pointer.starts_with('#')) throw Error("unsupported $ref in schema: " + ref.dump());
    pointer.remove_prefix(1);
    const json* node = &root_;
    while (!pointer.empty()) {
      if (pointer.front() != '/') throw Error("unsupported $ref in schema: " + ref.dump());
      pointer.remove_prefix(1);
      size_t end = std::min(pointer.find('/'), pointer.size());
      std::string token(pointer.substr(0, end));
      pointer.remove_prefix(end);
      for (size_t at = 0; (at = token.find('~', at)) != std::string::npos; ++at)
        token.replace(at, 2, token.compare(at, 2, "~1") == 0 ? "/" : "~");
      const json* next = nullptr;
      if (node->is_object()) {
        if (auto found = node->find(token); found != node->end()) next = &*found;
      } else if (node->is_array() && !token.empty() && token.find_first_not_of("0123456789") == std::string::npos &&
                 std::stoul(token) < node->size()) {
        next = &(*node)[std::stoul(token)];
      }
      if (!next) throw Error("unresolvable $ref in schema: " + ref.dump());
      node = next;
    }
    return *node;
  }

  // Each check_* returns whether to go on (false: a problem was found and no more are wanted).
  bool check_values(const json& value, const Keywords& k, const Path& path, Outcome& out) const {
    if (k.enum_values && k.enum_values->is_array() &&
        std::find(k.enum_values->begin(), k.enum_values->end(), value) == k.enum_values->end()) {
      std::string list;
      for (const json& v : *k.enum_values) list += (list.empty() ? "" : ", ") + v.dump();
      if (!out.fail(path, "must be one of " + list)) return false;
    }
    if (k.constant && *k.constant != value) return out.fail(path, "must be " + k.constant->dump());
    return true;
  }

  bool check_number(const json& value, const Keywords& k, const Path& path, Outcome& out) const {
    double number = value.get<double>();
    struct Bound {
      const json* limit;
      const char* relation;
      bool (*holds)(double value, double limit);
    };
    const Bound bounds[] = {
        {k.minimum, ">=", [](double v, double l) { return v >= l; }},
        {k.maximum, "<=", [](double v, double l) { return v <= l; }},
        {k.exclusive_minimum, ">", [](double v, double l) { return v > l; }},
        {k.exclusive_maximum, "<", [](double v, double l) { return v < l; }},
    };
    for (const Bound& bound : bounds) {
      if (!bound.limit || !bound.limit->is_number() || bound.holds(number, bound.limit->get<double>())) continue;
      if (!out.fail(path, std::string("must be ") + bound.relation + " " + bound.limit->dump())) return false;
    }
    return true;
  }

  bool check_string(const json& value, const Keywords& k, const Path& path, Outcome& out) const {
    const auto& s = value.get_ref<const std::string&>();
    if (auto min = size_limit(k.min_length);
        min && code_points(s) < *min &&
        !out.fail(path, "must be at least " + std::to_string(*min) + " characters long"))
      return false;
    if (auto max = size_limit(k.max_length);
        max && code_points(s) > *max && !out.fail(path, "must be at most " + std::to_string(*max) + " characters long"))
      return false;
    if (k.pattern && k.pattern->is_string() && !matches(k.pattern->get_ref<const std::string&>(), s))
      return out.fail(path, "must match the pattern '" + k.pattern->get<std::string>() + "'");
    return true;
  }

  bool check_array(const json& value, const Keywords& k, const Path& path, Outcome& out) const {
    if (auto min = size_limit(k.min_items);
        min && value.size() < *min && !out.fail(path, "must have at least " + std::to_string(*min) + " items"))
      return false;
    if (auto max = size_limit(k.max_items);
        max && value.size() > *max && !out.fail(path, "must have at most " + std::to_string(*max) + " items"))
      return false;
    if (k.unique_items && *k.unique_items == true)
      for (size_t i = 0; i < value.size(); ++i)
        for (size_t j = i + 1; j < value.size(); ++j)
          if (value[i] == value[j] &&
              !out.fail(path, "must not contain duplicates (items " + std::to_string(i) + " and " + std::to_string(j) +
                                  " are both " + value[i].dump() + ")"))
            return false;

    // items: one schema for every element (2020-12), or draft-07's list of per-position schemas
    // (then additionalItems is for the rest, as items is after 2020-12's prefixItems).
    const json* positional = k.prefix_items && k.prefix_items->is_array() ? k.prefix_items : nullptr;
    const json* rest = k.items;
    if (k.items && k.items->is_array()) {
      positional = k.items;
      rest = k.additional_items;
    }
    size_t first_rest = positional ? std::min(positional->size(), value.size()) : 0;
    for (size_t i = 0; i < first_rest; ++i)
      if (!out.add(check(value[i], (*positional)[i], path.child(i), out.problems()))) return false;
    if (rest)
      for (size_t i = first_rest; i < value.size(); ++i)
        if (!out.add(check(value[i], *rest, path.child(i), out.problems()))) return false;
    return true;
  }

  bool check_object(const json& value, const Keywords& k, const Path& path, Outcome& out) const {
    if (k.required && k.required->is_array())
      for (const json& name : *k.required)
        if (name.is_string() && !value.contains(name.get_ref<const std::string&>()) &&
            !out.fail(path, "'" + name.get<std::string>() + "' is required"))
          return false;
    if (auto min = size_limit(k.min_properties);
        min && value.size() < *min && !out.fail(path, "must have at least " + std::to_string(*min) + " properties"))
      return false;
    if (auto max = size_limit(k.max_properties);
        max && value.size() > *max && !out.fail(path, "must have at most " + std::to_string(*max) + " properties"))
      return false;

    // Each key is checked against its property, the patterns it matches, or else
    // additionalProperties (looked up per key: objects have fewer keys than the schema names).
    const json* properties = k.properties && k.properties->is_object() ? k.properties : nullptr;
    const json* patterns = k.pattern_properties && k.pattern_properties->is_object() ? k.pattern_properties : nullptr;
    for (const auto& [key, item] : value.items()) {
      Path item_path = path.child(key);
      bool known = false;
      if (properties)
        if (auto property = properties->find(key); property != properties->end()) {
          known = true;
          if (!out.add(check(item, *property, item_path, out.problems()))) return false;
        }
      if (patterns)
        for (const auto& [pattern, sub] : patterns->items())
          if (matches(pattern, key)) {
            known = true;
            if (!out.add(check(item, sub, item_path, out.problems()))) return false;
          }
      if (known || !k.additional_properties) continue;
      if (*k.additional_properties == false) {
        if (!out.fail(path, "additional property '" + key + "' is not allowed")) return false;
      } else if (!out.add(check(item, *k.additional_properties, item_path, out.problems()))) {
        return false;
      }
    }
    return true;
  }

  bool check_combinations(const json& value, const Keywords& k, const Path& path, Outcome& out) const {
    if (k.all_of && k.all_of->is_array())
      for (const json& branch : *k.all_of)
        if (!out.add(check(value, branch, path, out.problems()))) return false;
    if (k.any_of && k.any_of->is_array()) {
      bool matched = std::any_of(k.any_of->begin(), k.any_of->end(),
                                 [&](const json& branch) { return check(value, branch, path, nullptr); });
      if (!matched && !out.add(explain_no_match(value, *k.any_of, path, out.problems()))) return false;
    }
    if (k.one_of && k.one_of->is_array()) {
      size_t matched = 0;
      for (const json& branch : *k.one_of)
        if (check(value, branch, path, nullptr) && ++matched > 1) break;
      if (matched == 0 && !out.add(explain_no_match(value, *k.one_of, path, out.problems()))) return false;
      if (matched > 1 && !out.fail(path, "matches more than one of the allowed forms")) return false;
    }
    if (k.negated && check(value, *k.negated, path, nullptr)) return out.fail(path, "is not allowed");
    return true;
  }

  // No oneOf/anyOf branch accepts the value: when exactly one branch is for the value's type, its
  // problems say what is wrong; when none is, the value has none of the allowed types.
  bool explain_no_match(const json& value, const json& branches, const Path& path,
                        std::vector<std::string>* problems) const {
    std::vector<std::string> all_types;
    const json* candidate = nullptr;
    size_t candidates = 0;
    for (const json& branch : branches) {
      std::optional<std::vector<std::string>> types = allowed_types(branch);
      if (!types || has_any_type(value, *types)) {
        candidate = &branch;
        ++candidates;
      }
      for (const auto& t : types.value_or(std::vector<std::string>{}))
        if (std::find(all_types.begin(), all_types.end(), t) == all_types.end()) all_types.push_back(t);
    }
    Outcome out(problems);
    if (candidates == 1) return check(value, *candidate, path, problems);
    if (candidates == 0)
      out.fail(path, "must be " + describe_types(all_types));
    else
      out.fail(path, "does not match any of the allowed forms");
    return false;
  }

  // The JSON types a schema can accept, or nullopt when it does not say (or accepts any).
  std::optional<std::vector<std::string>> allowed_types(const json& schema, int depth = 0) const {
    if (schema.is_boolean()) return schema.get<bool>() ? std::nullopt : std::optional(std::vector<std::string>{});
    if (!schema.is_object() || depth > 32) return std::nullopt;
    if (auto type = schema.find("type"); type != schema.end()) return type_list(*type);
    if (auto ref = schema.find("$ref"); ref != schema.end()) return allowed_types(resolve(*ref), depth + 1);
    for (const char* keyword : {"oneOf", "anyOf"}) {
      auto branches = schema.find(keyword);
      if (branches == schema.end() || !branches->is_array()) continue;
      std::vector<std::string> out;
      for (const json& branch : *branches) {
        auto types = allowed_types(branch, depth + 1);
        if (!types) return std::nullopt;
        for (const auto& t : *types)
          if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
      }
      return out;
    }
    json values;
    if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) values = *e;
    if (auto c = schema.find("const"); c != schema.end()) values = json::array({*c});
    if (values.is_null()) return std::nullopt;
    std::vector<std::string> out;
    for (const json& v : values)
      if (std::string t = json_type_name(v); std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
    return out;
  }

  const json& root_;
};

const JsonSchema& compose_schema() {
  static const JsonSchema schema(json::parse(compose_schema_json));
  return schema;
}

}  // namespace

JsonSchema::JsonSchema(json schema) : schema_(std::move(schema)) {}

std::vector<std::string> JsonSchema::problems(const json& value) const {
  std::vector<std::string> out;
  Validator(schema_).check(value, schema_, Path{}, &out);
  return out;
}

void validate_compose(const json& doc, const std::string& file) {
  std::vector<std::string> problems = compose_schema().problems(doc);
  if (!problems.empty()) throw Error(file + ": " + problems.front());
}

}  // namespace berth::compose
