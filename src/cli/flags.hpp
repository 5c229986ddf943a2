// docker-style (pflag) command-line parsing: --name=value, --name value, -n value, -nvalue,
// grouped short booleans (-aq), repeatable flags, "--" ends flags. Pure code, unit-tested.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "util/error.hpp"

namespace berth::cli {

// Bad command-line usage: printed with a hint and exit status 125.
class UsageError : public Error {
 public:
  using Error::Error;
};

struct FlagSpec {
  std::string name;    // long name without dashes: "quiet"
  char shorthand = 0;  // 'q'
  bool takes_value = false;
  std::string help;
  std::string value_name;  // for help: "string", "list"
};

struct ParsedArgs {
  std::map<std::string, std::vector<std::string>> values;
  std::set<std::string> bools;
  std::vector<std::string> positionals;

  bool has(const std::string& name) const { return bools.count(name) || values.count(name); }
  std::string get(const std::string& name, const std::string& def = "") const;
  std::vector<std::string> all(const std::string& name) const;
};

// Parses args[start..]. interspersed=false stops at the first positional (run, exec: the rest is
// the container's command line). Unknown flags throw UsageError("unknown flag: --x").
ParsedArgs parse_args(const std::vector<std::string>& args, size_t start, const std::vector<FlagSpec>& specs,
                      bool interspersed = true);

// Docker's bool flag values: --all=false.
bool parse_bool(const std::string& value, const std::string& flag);

}  // namespace berth::cli
