// Volume commands: volume create, ls, inspect, rm, prune — docker's syntax and output.
#include <algorithm>
#include <ctime>
#include <iostream>

#include "cli/cli_util.hpp"
#include "cli/filters.hpp"
#include "cli/format.hpp"
#include "cli/handlers.hpp"
#include "engine/inspect.hpp"
#include "engine/volumes.hpp"
#include "util/humanize.hpp"

namespace berth::cli {

using engine::Volume;
using nlohmann::json;

namespace {

// "k=v,k2=v2" as docker's volume formatter prints Labels.
std::string labels_text(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

// docker's CLI orders volumes with sortorder.NaturalLess: runs of digits compare as numbers. As a
// key for plain string comparison (sorting 10,000 names with it costs little): each digit run
// becomes '0', its length without leading zeros (one byte), then those digits, so a shorter number
// sorts first; the name itself breaks ties.
std::string natural_key(const std::string& name) {
  std::string key;
  key.reserve(name.size() + 8);
  for (size_t i = 0; i < name.size();) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) {
      key += name[i++];
      continue;
    }
    size_t start = i;
    while (i < name.size() && name[i] == '0') i++;
    size_t digits = i;
    while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) i++;
    if (digits == i && i > start) digits = i - 1;  // all zeros: the number 0
    key += '0';                                    // digit runs rank where digits do among other characters
    key += static_cast<char>(std::min<size_t>(i - digits, 127));
    key.append(name, digits, i - digits);
  }
  return key;
}

bool parse_dangling(const std::string& v) {
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  throw Error("invalid filter 'dangling=" + v + "'");
}

}  // namespace

int cmd_volume_create(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth volume create [OPTIONS] [VOLUME]",
                   "Create a volume",
                   {{"driver", 'd', true, "Specify volume driver name (default \"local\")", "string"},
                    {"label", 0, true, "Set metadata for a volume", "list"},
                    {"name", 0, true, "Specify volume name", "string"},
                    {"opt", 'o', true, "Set driver specific options (default map[])", "map"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 1);
  std::string name = a.get("name");
  if (!a.positionals.empty()) {
    if (a.has("name") && name != a.positionals[0])
      throw UsageError("conflicting options: either specify --name or provide positional arg, not both");
    name = a.positionals[0];
  }
  Volume v = ctx.volumes().create(name, a.get("driver", "local"), kv_map(a.all("opt")), kv_map(a.all("label")), false);
  std::cout << v.name << "\n";
  return 0;
}

int cmd_volume_ls(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth volume ls [OPTIONS]",
                   "List volumes",
                   {{"filter", 'f', true, "Provide filter values (e.g. \"dangling=true\")", "filter"},
                    {"format", 0, true, "Format output using a custom template", "string"},
                    {"quiet", 'q', false, "Only display volume names", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  std::optional<bool> dangling;
  std::vector<std::string> names, drivers;
  std::vector<engine::LabelFilter> labels;
  for (const auto& f : a.all("filter")) {
    auto eq = f.find('=');
    if (eq == std::string::npos) throw UsageError("bad format of filter (expected name=value)");
    std::string k = f.substr(0, eq), v = f.substr(eq + 1);
    if (k == "dangling")
      dangling = parse_dangling(v);
    else if (k == "name")
      names.push_back(v);
    else if (k == "driver")
      drivers.push_back(v);
    else if (k == "label")
      labels.push_back(engine::LabelFilter::parse(v, false));
    else if (k == "label!")
      labels.push_back(engine::LabelFilter::parse(v, true));
    else
      throw Error("invalid filter '" + k + "'");
  }
  // docker matches name filters as regular expressions anywhere in the name.
  for (const auto& n : names)
    if (!regex_compiles(n)) throw Error("invalid filter 'name=" + n + "': bad regular expression");
  auto& store = ctx.volumes();
  std::vector<Volume> vols = store.list();
  std::set<std::string> used;
  if (dangling) used = store.in_use();
  std::vector<const Volume*> shown;
  for (const auto& v : vols) {
    if (dangling && *dangling == (used.count(v.name) > 0)) continue;
    if (!drivers.empty() && std::find(drivers.begin(), drivers.end(), v.driver) == drivers.end()) continue;
    if (!names.empty() &&
        std::none_of(names.begin(), names.end(), [&](const std::string& n) { return name_matches(v.name, n); }))
      continue;
    bool ok = true;
    for (const auto& lf : labels) ok = ok && lf.matches(v.labels);
    if (ok) shown.push_back(&v);
  }
  {
    std::vector<std::pair<std::string, const Volume*>> keyed;
    keyed.reserve(shown.size());
    for (const auto* v : shown) keyed.emplace_back(natural_key(v->name), v);
    std::sort(keyed.begin(), keyed.end(), [](const auto& x, const auto& y) {
      return x.first != y.first ? x.first < y.first : x.second->name < y.second->name;
    });
    for (size_t i = 0; i < keyed.size(); i++) shown[i] = keyed[i].second;
  }
  std::string format = a.get("format");
  if (a.has("quiet") && format.empty()) {
    std::string out;
    for (const auto* v : shown) out += v->name + "\n";
    std::cout << out;
    return 0;
  }
  // The default table is most of what `volume ls` prints: no template engine for it (10,000
  // volumes list in a few milliseconds).
  if (format.empty() || format == "table") {
    size_t width = 10;
    for (const auto* v : shown) width = std::max(width, v->driver.size() + 3);
    std::string out = "DRIVER" + std::string(width - 6, ' ') + "VOLUME NAME\n";
    for (const auto* v : shown) out += v->driver + std::string(width - v->driver.size(), ' ') + v->name + "\n";
    std::cout << out;
    return 0;
  }
  std::vector<json> rows;
  rows.reserve(shown.size());
  for (const auto* v : shown)
    rows.push_back({{"Name", v->name},
                    {"Driver", v->driver},
                    {"Scope", "local"},
                    {"Mountpoint", v->mountpoint},
                    {"Labels", labels_text(v->labels)},
                    {"Links", "N/A"},
                    {"Size", "N/A"},
                    {"Group", "N/A"},
                    {"Availability", "N/A"},
                    {"Status", "N/A"}});
  if (a.has("quiet")) format = "{{.Name}}";  // docker: -q with --format prints names
  std::cout << format_list(format, "table {{.Driver}}\t{{.Name}}", rows,
                           {{"Name", "VOLUME NAME"},
                            {"Driver", "DRIVER"},
                            {"Scope", "SCOPE"},
                            {"Mountpoint", "MOUNTPOINT"},
                            {"Labels", "LABELS"},
                            {"Links", "LINKS"},
                            {"Size", "SIZE"},
                            {"Group", "GROUP"},
                            {"Availability", "AVAILABILITY"},
                            {"Status", "STATUS"}});
  return 0;
}

int cmd_volume_inspect(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth volume inspect [OPTIONS] VOLUME [VOLUME...]",
                   "Display detailed information on one or more volumes",
                   {{"format", 'f', true, "Format output using a custom template", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  std::vector<json> items;
  std::vector<std::string> missing;
  for (const auto& name : a.positionals) {
    auto v = ctx.volumes().find(name);
    if (v)
      items.push_back(engine::volume_json(*v));
    else
      missing.push_back(name);
  }
  std::cout << format_inspect(a.get("format"), items);
  for (const auto& m : missing) std::cerr << "berth: No such volume: " << m << "\n";
  return missing.empty() ? 0 : 1;
}

int cmd_volume_rm(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth volume rm [OPTIONS] VOLUME [VOLUME...]",
                   "Remove one or more volumes. You cannot remove a volume that is in use by a container.",
                   {{"force", 'f', false, "Force the removal of one or more volumes", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  bool ok = true;
  for (const auto& name : a.positionals) {
    try {
      ctx.volumes().remove(name, a.has("force"));
      std::cout << name << "\n";
    } catch (const Error& e) {
      std::cerr << "berth: " << e.what() << "\n";
      ok = false;
    }
  }
  return ok ? 0 : 1;
}

int cmd_volume_prune(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth volume prune [OPTIONS]",
                   "Remove unused local volumes",
                   {{"all", 'a', false, "Remove all unused volumes, not just anonymous ones", ""},
                    {"filter", 0, true, "Provide filter values (e.g. \"label=<label>\")", "filter"},
                    {"force", 'f', false, "Do not prompt for confirmation", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  bool all = a.has("all");
  std::vector<engine::LabelFilter> filters;
  for (const auto& f : a.all("filter")) {
    auto eq = f.find('=');
    if (eq == std::string::npos) throw UsageError("bad format of filter (expected name=value)");
    std::string k = f.substr(0, eq), v = f.substr(eq + 1);
    if (k == "label")
      filters.push_back(engine::LabelFilter::parse(v, false));
    else if (k == "label!")
      filters.push_back(engine::LabelFilter::parse(v, true));
    else if (k == "all")
      all = all || parse_bool(v, "all filter");
    else
      throw Error("invalid filter '" + k + "'");
  }
  if (!a.has("force") &&
      !confirm(all ? "WARNING! This will remove all local volumes not used by at least one container."
                   : "WARNING! This will remove anonymous local volumes not used by at least one container."))
    return 0;
  engine::PruneResult r = ctx.volumes().prune(all, filters);
  if (!r.removed.empty()) {
    std::cout << "Deleted Volumes:\n";
    for (const auto& n : r.removed) std::cout << n << "\n";
    std::cout << "\n";
  }
  std::cout << "Total reclaimed space: " << human_size(static_cast<double>(r.reclaimed)) << "\n";
  return 0;
}

}  // namespace berth::cli
