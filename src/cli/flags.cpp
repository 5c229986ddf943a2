#include "cli/flags.hpp"

namespace berth::cli {

std::string ParsedArgs::get(const std::string& name, const std::string& def) const {
  auto it = values.find(name);
  return it == values.end() || it->second.empty() ? def : it->second.back();
}

std::vector<std::string> ParsedArgs::all(const std::string& name) const {
  auto it = values.find(name);
  return it == values.end() ? std::vector<std::string>{} : it->second;
}

bool parse_bool(const std::string& v, const std::string& flag) {
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") return false;
  throw UsageError("invalid argument \"" + v + "\" for \"" + flag + "\" flag: strconv.ParseBool: parsing \"" + v +
                   "\": invalid syntax");
}

ParsedArgs parse_args(const std::vector<std::string>& args, size_t start, const std::vector<FlagSpec>& specs,
                      bool interspersed) {
  ParsedArgs p;
  auto set_bool = [&](const FlagSpec& s, const std::string* value, const std::string& shown) {
    if (!value || parse_bool(*value, shown))
      p.bools.insert(s.name);
    else
      p.bools.erase(s.name);
  };
  bool flags_done = false;
  for (size_t i = start; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (flags_done || a.size() < 2 || a[0] != '-') {
      p.positionals.push_back(a);
      if (!interspersed) flags_done = true;
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    if (a[1] == '-') {
      std::string name = a.substr(2), value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      const FlagSpec* spec = nullptr;
      for (const auto& s : specs)
        if (s.name == name) spec = &s;
      if (!spec) throw UsageError("unknown flag: --" + name);
      if (!spec->takes_value) {
        set_bool(*spec, has_value ? &value : nullptr, "--" + name);
        continue;
      }
      if (!has_value) {
        if (i + 1 >= args.size()) throw UsageError("flag needs an argument: --" + name);
        value = args[++i];
      }
      p.values[spec->name].push_back(value);
      continue;
    }
    // Short flags: -a, -aq (grouped booleans), -fvalue, -f value.
    for (size_t j = 1; j < a.size(); ++j) {
      const FlagSpec* spec = nullptr;
      for (const auto& s : specs)
        if (s.shorthand && s.shorthand == a[j]) spec = &s;
      if (!spec) throw UsageError("unknown shorthand flag: '" + std::string(1, a[j]) + "' in " + a);
      if (!spec->takes_value) {
        if (j + 1 < a.size() && a[j + 1] == '=') {
          std::string v = a.substr(j + 2);
          set_bool(*spec, &v, "-" + std::string(1, a[j]));
          break;
        }
        set_bool(*spec, nullptr, "");
        continue;
      }
      std::string value;
      if (j + 1 < a.size()) {
        value = a.substr(a[j + 1] == '=' ? j + 2 : j + 1);
      } else {
        if (i + 1 >= args.size())
          throw UsageError("flag needs an argument: '" + std::string(1, a[j]) + "' in -" + std::string(1, a[j]));
        value = args[++i];
      }
      p.values[spec->name].push_back(value);
      break;
    }
  }
  return p;
}

}  // namespace berth::cli
