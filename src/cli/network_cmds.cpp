// Network commands: network create, ls, inspect, rm, prune, connect, disconnect, and port —
// docker's syntax and output. Hidden: network dns-serve (the per-network DNS responder) and
// network cleanup (the shim's exit command for a container that ended by itself).
#include <algorithm>
#include <ctime>
#include <iostream>
#include <set>

#include "cli/cli_util.hpp"
#include "cli/filters.hpp"
#include "cli/format.hpp"
#include "cli/handlers.hpp"
#include "engine/engine.hpp"
#include "engine/inspect.hpp"
#include "engine/networks.hpp"
#include "engine/process.hpp"
#include "engine/volumes.hpp"
#include "image/store.hpp"
#include "logs/json_file.hpp"
#include "util/humanize.hpp"

namespace berth::cli {

using engine::Network;
using nlohmann::json;

namespace {

std::string labels_text(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

}  // namespace

int cmd_network_create(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth network create [OPTIONS] NETWORK",
                   "Create a network",
                   {{"driver", 'd', true, "Driver to manage the Network (default \"bridge\")", "string"},
                    {"subnet", 0, true, "Subnet in CIDR format that represents a network segment", "strings"},
                    {"gateway", 0, true, "IPv4 or IPv6 Gateway for the master subnet", "strings"},
                    {"ip-range", 0, true, "Allocate container ip from a sub-range", "strings"},
                    {"internal", 0, false, "Restrict external access to the network", ""},
                    {"label", 0, true, "Set metadata on a network", "list"},
                    {"opt", 'o', true, "Set driver specific options", "map"},
                    {"attachable", 0, false, "Enable manual container attachment", ""},
                    {"ipv6", 0, false, "Enable or disable IPv6 networking", ""},
                    {"ipam-driver", 0, true, "IP Address Management Driver (default \"default\")", "string"},
                    {"ipam-opt", 0, true, "Set IPAM driver specific options", "map"},
                    {"aux-address", 0, true, "Auxiliary IPv4 or IPv6 addresses used by Network driver", "map"},
                    {"scope", 0, true, "Control the network's scope", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  if (a.all("subnet").size() > 1 || a.all("gateway").size() > 1 || a.all("ip-range").size() > 1)
    throw UsageError("berth networks have one IPv4 subnet: give --subnet, --gateway and --ip-range once");
  if (a.has("ipv6")) throw engine::StatusError("IPv6 networks are not supported by berth yet", 1);
  if (a.has("ipam-driver") && a.get("ipam-driver") != "default")
    throw engine::StatusError("IPAM driver \"" + a.get("ipam-driver") + "\" not found", 1);
  if (a.has("scope") && a.get("scope") != "local")
    throw engine::StatusError("scope \"" + a.get("scope") + "\" is not supported: berth networks are local", 1);
  engine::NetworkCreateRequest r;
  r.name = a.positionals[0];
  r.driver = a.get("driver", "bridge");
  r.subnet = a.get("subnet");
  r.gateway = a.get("gateway");
  r.ip_range = a.get("ip-range");
  r.internal = a.has("internal");
  r.labels = kv_map(a.all("label"));
  r.options = kv_map(a.all("opt"));
  Network n = ctx.engine().networks().create(r);
  std::cout << n.id << "\n";
  return 0;
}

int cmd_network_ls(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth network ls [OPTIONS]",
                   "List networks",
                   {{"filter", 'f', true, "Provide filter values (e.g. \"driver=bridge\")", "filter"},
                    {"format", 0, true, "Format output using a custom template", "string"},
                    {"no-trunc", 0, false, "Do not truncate the output", ""},
                    {"quiet", 'q', false, "Only display network IDs", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  std::vector<std::string> names, ids, drivers, types;
  std::vector<engine::LabelFilter> labels;
  std::optional<bool> dangling;
  for (const auto& f : a.all("filter")) {
    auto eq = f.find('=');
    if (eq == std::string::npos) throw UsageError("bad format of filter (expected name=value)");
    std::string k = f.substr(0, eq), v = f.substr(eq + 1);
    if (k == "name")
      names.push_back(v);
    else if (k == "id")
      ids.push_back(v);
    else if (k == "driver")
      drivers.push_back(v);
    else if (k == "type") {
      if (v != "custom" && v != "builtin") throw Error("invalid filter: 'type'='" + v + "'");
      types.push_back(v);
    } else if (k == "label")
      labels.push_back(engine::LabelFilter::parse(v, false));
    else if (k == "label!")
      labels.push_back(engine::LabelFilter::parse(v, true));
    else if (k == "dangling") {
      if (v != "true" && v != "false" && v != "1" && v != "0") throw Error("invalid filter 'dangling=" + v + "'");
      dangling = v == "true" || v == "1";
    } else if (k == "scope") {
      if (v != "local") names.push_back("\x01never");
    } else
      throw Error("invalid filter '" + k + "'");
  }
  for (const auto& n : names)
    if (!regex_compiles(n)) throw Error("invalid filter 'name=" + n + "': bad regular expression");
  engine::Engine& eng = ctx.engine();
  std::vector<json> rows;
  bool trunc = !a.has("no-trunc");
  for (const auto& n : eng.networks().list()) {
    if (!names.empty() &&
        std::none_of(names.begin(), names.end(), [&](const std::string& x) { return name_matches(n.name, x); }))
      continue;
    if (!ids.empty() &&
        std::none_of(ids.begin(), ids.end(), [&](const std::string& x) { return n.id.rfind(x, 0) == 0; }))
      continue;
    if (!drivers.empty() && std::find(drivers.begin(), drivers.end(), n.driver) == drivers.end()) continue;
    if (!types.empty() && std::find(types.begin(), types.end(), n.predefined() ? "builtin" : "custom") == types.end())
      continue;
    bool ok = true;
    for (const auto& lf : labels) ok = ok && lf.matches(n.labels);
    if (!ok) continue;
    if (dangling && (*dangling != (!n.predefined() && eng.networks().network_endpoints(n.id).empty()))) continue;
    rows.push_back({{"ID", trunc ? n.id.substr(0, 12) : n.id},
                    {"Name", n.name},
                    {"Driver", n.driver},
                    {"Scope", "local"},
                    {"IPv4", "true"},
                    {"IPv6", "false"},
                    {"Internal", n.internal ? "true" : "false"},
                    {"Labels", labels_text(n.labels)},
                    {"CreatedAt", rfc3339_local(n.created_ns, true)}});
  }
  std::string format = a.get("format");
  if (a.has("quiet")) format = "{{.ID}}";
  std::cout << format_list(format, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", rows,
                           {{"ID", "NETWORK ID"},
                            {"Name", "NAME"},
                            {"Driver", "DRIVER"},
                            {"Scope", "SCOPE"},
                            {"IPv4", "IPV4"},
                            {"IPv6", "IPV6"},
                            {"Internal", "INTERNAL"},
                            {"Labels", "LABELS"},
                            {"CreatedAt", "CREATED AT"}});
  return 0;
}

int cmd_network_inspect(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth network inspect [OPTIONS] NETWORK [NETWORK...]",
                   "Display detailed information on one or more networks",
                   {{"format", 'f', true, "Format output using a custom template", "string"},
                    {"verbose", 'v', false, "Verbose output for diagnostics", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  engine::Engine& eng = ctx.engine();
  std::vector<json> items;
  std::vector<std::string> missing;
  for (const auto& ref : a.positionals) {
    try {
      items.push_back(engine::network_json(eng, eng.networks().get(ref)));
    } catch (const engine::NotFound&) {
      missing.push_back(ref);
    }
  }
  std::cout << format_inspect(a.get("format"), items);
  for (const auto& m : missing) std::cerr << "berth: network " << m << " not found\n";
  return missing.empty() ? 0 : 1;
}

int cmd_network_rm(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth network rm NETWORK [NETWORK...]",
                   "Remove one or more networks",
                   {{"force", 'f', false, "Do not error if the network does not exist", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  bool ok = true;
  for (const auto& ref : a.positionals) {
    try {
      ctx.engine().networks().remove(ref);
      std::cout << ref << "\n";
    } catch (const engine::NotFound& e) {
      if (a.has("force")) continue;
      std::cerr << "berth: " << e.what() << "\n";
      ok = false;
    } catch (const Error& e) {
      std::cerr << "berth: " << e.what() << "\n";
      ok = false;
    }
  }
  return ok ? 0 : 1;
}

int cmd_network_prune(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth network prune [OPTIONS]",
                   "Remove all unused networks",
                   {{"filter", 0, true, "Provide filter values (e.g. \"until=<timestamp>\")", "filter"},
                    {"force", 'f', false, "Do not prompt for confirmation", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  std::vector<engine::LabelFilter> labels;
  std::optional<int64_t> until;
  for (const auto& f : a.all("filter")) {
    auto eq = f.find('=');
    if (eq == std::string::npos) throw UsageError("bad format of filter (expected name=value)");
    std::string k = f.substr(0, eq), v = f.substr(eq + 1);
    if (k == "label")
      labels.push_back(engine::LabelFilter::parse(v, false));
    else if (k == "label!")
      labels.push_back(engine::LabelFilter::parse(v, true));
    else if (k == "until") {
      timespec ts{};
      clock_gettime(CLOCK_REALTIME, &ts);
      until = logs::parse_time_arg(v, int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec);
    } else
      throw Error("invalid filter '" + k + "'");
  }
  if (!a.has("force") && !confirm("WARNING! This will remove all custom networks not used by at least one container."))
    return 0;
  auto removed = ctx.engine().networks().prune([&](const Network& n) {
    for (const auto& lf : labels)
      if (!lf.matches(n.labels)) return false;
    return !until || n.created_ns < *until;
  });
  if (!removed.empty()) {
    std::cout << "Deleted Networks:\n";
    for (const auto& n : removed) std::cout << n << "\n";
  }
  return 0;
}

int cmd_network_connect(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth network connect [OPTIONS] NETWORK CONTAINER",
                   "Connect a container to a network",
                   {{"alias", 0, true, "Add network-scoped alias for the container", "strings"},
                    {"ip", 0, true, "IPv4 address (e.g., \"172.30.100.104\")", "string"},
                    {"ip6", 0, true, "IPv6 address (e.g., \"2001:db8::33\")", "string"},
                    {"link", 0, true, "Add link to another container", "list"},
                    {"link-local-ip", 0, true, "Add a link-local address for the container", "strings"},
                    {"driver-opt", 0, true, "driver options for the network", "strings"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 2, 2);
  if (a.has("ip6")) throw engine::StatusError("IPv6 addresses are not supported by berth yet", 1);
  engine::EndpointRequest r;
  r.aliases = a.all("alias");
  r.ip = a.get("ip");
  ctx.engine().connect(a.positionals[0], a.positionals[1], r);
  return 0;
}

int cmd_network_disconnect(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth network disconnect [OPTIONS] NETWORK CONTAINER",
                   "Disconnect a container from a network",
                   {{"force", 'f', false, "Force the container to disconnect from a network", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 2, 2);
  ctx.engine().disconnect(a.positionals[0], a.positionals[1], a.has("force"));
  return 0;
}

int cmd_network_dns_serve(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth network dns-serve NETWORK-ID", "Serve DNS for a network (started by berth)", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  // Not through ctx.engine(): its reconcile would start responders, this one among them.
  engine::NetworkStore store(ctx.images().db(), ctx.root, engine::run_dir());
  store.serve_dns(a.positionals[0]);
  return 0;
}

int cmd_network_cleanup(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth network cleanup CONTAINER", "Tear down a stopped container's network (run by its shim)", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  ctx.reconcile = false;
  ctx.engine().cleanup(a.positionals[0]);
  return 0;
}

int cmd_port(Context& ctx, const Invocation& inv) {
  CommandHelp help{
      "berth port CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific mapping for the container", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 2);
  engine::Engine& eng = ctx.engine();
  engine::Container c = eng.get(a.positionals[0]);
  std::vector<engine::PortBinding> ports =
      c.running() ? eng.networks().ports(c.id) : std::vector<engine::PortBinding>{};
  if (a.positionals.size() == 2) {
    std::string want = a.positionals[1];
    std::string proto = "tcp";
    if (auto slash = want.find('/'); slash != std::string::npos) {
      proto = want.substr(slash + 1);
      want = want.substr(0, slash);
    }
    bool found = false;
    for (const auto& p : ports)
      if (std::to_string(p.container_port) == want && p.proto == proto) {
        std::cout << p.host_ip << ":" << p.host_port << "\n";
        found = true;
      }
    if (!found)
      throw engine::StatusError("No public port '" + want + "/" + proto + "' published for " + a.positionals[0], 1);
    return 0;
  }
  for (const auto& p : ports)
    std::cout << p.container_port << "/" << p.proto << " -> " << p.host_ip << ":" << p.host_port << "\n";
  return 0;
}

}  // namespace berth::cli
