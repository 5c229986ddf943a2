// Container commands: create, run, start, stop, kill, restart, rm, ps, inspect, wait, rename,
// pause, unpause, logs.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <set>
#include <thread>

#include "cli/cli_util.hpp"
#include "cli/container_flags.hpp"
#include "cli/filters.hpp"
#include "cli/format.hpp"
#include "cli/handlers.hpp"
#include "engine/engine.hpp"
#include "engine/inspect.hpp"
#include "engine/networks.hpp"
#include "image/inspect.hpp"
#include "image/pull.hpp"
#include "image/reference.hpp"
#include "image/registry.hpp"
#include "image/store.hpp"
#include "logs/json_file.hpp"
#include "util/humanize.hpp"

namespace berth::cli {

using nlohmann::json;

namespace {

std::string cwd() {
  char buf[4096];
  return ::getcwd(buf, sizeof buf) ? std::string(buf) : std::string("/");
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string create_from_flags(Context& ctx, const ParsedArgs& a, bool run) {
  json body = create_body_from_flags(a, run, cwd());
  std::string image_name = body["Config"].value("Image", "");
  std::string pull = a.get("pull", "missing");
  if (pull != "missing" && pull != "never" && pull != "always")
    throw UsageError("invalid pull option: '" + pull + "': must be one of \"always\", \"missing\" or \"never\"");
  try {
    // docker run/create pull a missing image first ("Unable to find image … locally").
    if (pull == "missing")
      ensure_image_present(ctx, image_name, pull, [](const image::Reference& ref, bool pulled) {
        if (!pulled) std::cerr << "Unable to find image '" << ref.familiar() << "' locally\n";
      });
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw engine::StatusError(e.what(), 125);
  }
  try {
    return ctx.engine().create(body);
  } catch (const engine::StatusError&) {
    throw;
  } catch (const Error& e) {
    throw engine::StatusError(e.what(), 125);
  }
}

// Runs body for each named container, printing the error of each failure; 1 when any failed.
template <typename F>
int for_each_container(const std::vector<std::string>& refs, F&& body) {
  int status = 0;
  for (const auto& ref : refs) {
    try {
      body(ref);
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      std::cerr << "Error response from daemon: " << e.what() << "\n";
      status = 1;
    }
  }
  return status;
}

std::string ellipsis(const std::string& s, size_t max) {
  // Counted in characters (UTF-8 code points), as docker's formatter does.
  std::vector<std::string> chars;
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    unsigned char ch = static_cast<unsigned char>(s[i]);
    if (ch >= 0xf0)
      len = 4;
    else if (ch >= 0xe0)
      len = 3;
    else if (ch >= 0xc0)
      len = 2;
    chars.push_back(s.substr(i, len));
    i += len;
  }
  if (chars.size() <= max) return s;
  std::string out;
  for (size_t i = 0; i + 1 < max; i++) out += chars[i];
  return out + "…";
}

std::string go_quote(const std::string& s) { return go_json(json(s)); }

json ps_row(engine::Engine& engine, const engine::Container& c, bool trunc) {
  std::vector<std::string> args = engine::container_args(engine, c);
  // docker's daemon quotes arguments holding a space: "sh -c 'exit 3'".
  std::string command;
  for (size_t i = 0; i < args.size(); i++) {
    std::string a = i > 0 && args[i].find(' ') != std::string::npos ? "'" + args[i] + "'" : args[i];
    command += (command.empty() ? "" : " ") + a;
  }
  if (trunc) command = ellipsis(command, 20);
  std::string labels;
  json cfg_labels = c.config["Config"].value("Labels", json::object());
  if (cfg_labels.is_object())
    for (auto& [k, v] : cfg_labels.items())
      labels += (labels.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  std::string mounts;
  int local_volumes = 0;
  for (const auto& m : c.mounts) {
    std::string n = m.value("Type", "") == "volume" ? m.value("Name", "") : m.value("Source", "");
    if (m.value("Type", "") == "volume") local_volumes++;
    if (trunc) n = ellipsis(n, 15);
    mounts += (mounts.empty() ? "" : ",") + n;
  }
  std::string network = c.config["HostConfig"].value("NetworkMode", "");
  if (network.empty() || network == "default") network = "none";
  if (c.config.contains("BerthNetworks") && c.config["BerthNetworks"].is_array()) {
    network.clear();
    for (const auto& n : c.config["BerthNetworks"])
      if (n.is_string()) network += (network.empty() ? "" : ",") + n.get<std::string>();
  }
  // docker's PORTS: published ports as HOST:PORT->PORT/PROTO, exposed ones as PORT/PROTO.
  std::string ports;
  if (c.running())
    for (const auto& p : engine.networks().ports(c.id))
      ports += (ports.empty() ? "" : ", ") + p.host_ip + ":" + std::to_string(p.host_port) + "->" +
               std::to_string(p.container_port) + "/" + p.proto;
  return {{"ID", trunc ? c.id.substr(0, 12) : c.id},
          {"Image", c.image_name},
          {"Command", go_quote(command)},
          {"CreatedAt", created_at(c.created_ns / 1000000000)},
          {"RunningFor", time_ago(c.created_ns / 1000000000)},
          {"Ports", ports},
          {"State", c.state},
          {"Status", engine::status_text(c)},
          {"Size", "0B"},
          {"Names", c.name},
          {"Labels", labels},
          {"Mounts", mounts},
          {"Networks", network},
          {"LocalVolumes", std::to_string(local_volumes)}};
}

}  // namespace

void ensure_image_present(Context& ctx, const std::string& name, const std::string& policy,
                          const std::function<void(const image::Reference& ref, bool pulled)>& progress) {
  if (policy == "never") {
    if (!ctx.images().find(name)) throw Error("No such image: " + name);
    return;
  }
  if (policy != "always" && ctx.images().find(name)) return;
#ifdef BERTH_LIGHT
  (void)progress;
  exec_full(ctx);  // the pull needs the registry client; berth-full runs the whole command
#else
  image::Reference ref = image::parse_reference(name);
  progress(ref, false);
  image::PullOptions opts;
  opts.registry = ctx.registry_options(ref);
  image::pull_image(ctx.images(), ref, opts, [](const image::PullEvent&) {});
  progress(ref, true);
#endif
}

int cmd_create(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container",
                   container_create_flags(false)};
  ParsedArgs a = parse_command(inv, help, false);
  require_args(inv, a, 1, -1);
  std::string id = create_from_flags(ctx, a, false);
  std::cout << id << "\n";
  return 0;
}

int cmd_run(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image",
                   container_create_flags(true)};
  ParsedArgs a = parse_command(inv, help, false);
  require_args(inv, a, 1, -1);
  std::string id = create_from_flags(ctx, a, true);
  auto& engine = ctx.engine();
  engine::Container c = engine.get(id);
  const json& config = c.config["Config"];
  bool detach = a.has("detach") && a.get("detach") != "false";
  bool auto_remove = c.auto_remove();
  if (detach) {
    try {
      engine.start(id);
    } catch (...) {
      if (auto_remove) engine.remove(id, true, true);
      throw;
    }
    std::cout << id << "\n";
    return 0;
  }
  int code;
  // Removed here when it exits (below): the shim's exit command then has nothing to do.
  UniqueFd removal_claim = auto_remove ? engine.claim_removal(id) : UniqueFd();
  try {
    engine::AttachIo io;
    io.stdin_fd = config.value("OpenStdin", false) ? 0 : -1;
    io.tty = config.value("Tty", false);
    io.proxy_signals = !io.tty && a.get("sig-proxy", "true") != "false";
    code = engine.start_attached(id, io);
  } catch (...) {
    if (auto_remove) {
      try {
        engine.remove(id, true, true);
      } catch (const Error&) {
      }
    }
    throw;
  }
  // Like docker's CLI, the container is gone when run returns.
  if (auto_remove) engine.remove_exited(id, true, std::chrono::seconds(10));
  return code;
}

int cmd_start(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth start [OPTIONS] CONTAINER [CONTAINER...]",
                   "Start one or more stopped containers",
                   {{"attach", 'a', false, "Attach STDOUT/STDERR and forward signals", ""},
                    {"interactive", 'i', false, "Attach container's STDIN", ""},
                    {"detach-keys", 0, true, "Override the key sequence for detaching a container", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  auto& engine = ctx.engine();
  if (a.has("attach") || a.has("interactive")) {
    if (a.positionals.size() > 1) throw UsageError("you cannot start and attach multiple containers at once");
    engine::Container c = engine.get(a.positionals[0]);
    if (c.running()) throw engine::StatusError("container " + c.id + " is already running", 1);
    const json& config = c.config["Config"];
    engine::AttachIo io;
    io.stdin_fd = a.has("interactive") && config.value("OpenStdin", false) ? 0 : -1;
    io.tty = config.value("Tty", false);
    io.proxy_signals = !io.tty;
    return engine.start_attached(c.id, io);
  }
  return for_each_container(a.positionals, [&](const std::string& ref) {
    engine.start(ref);
    std::cout << ref << "\n";
  });
}

int cmd_stop(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth stop [OPTIONS] CONTAINER [CONTAINER...]",
                   "Stop one or more running containers",
                   {{"time", 't', true, "Seconds to wait before killing the container", "int"},
                    {"signal", 's', true, "Signal to send to the container", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  std::optional<int> timeout;
  if (a.has("time")) {
    try {
      timeout = std::stoi(a.get("time"));
    } catch (...) {
      throw UsageError("invalid argument \"" + a.get("time") +
                       "\" for \"-t, --time\" flag: strconv.ParseInt: parsing \"" + a.get("time") +
                       "\": invalid syntax");
    }
  }
  return for_each_container(a.positionals, [&](const std::string& ref) {
    ctx.engine().stop(ref, timeout);
    std::cout << ref << "\n";
  });
}

int cmd_restart(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth restart [OPTIONS] CONTAINER [CONTAINER...]",
                   "Restart one or more containers",
                   {{"time", 't', true, "Seconds to wait before killing the container", "int"},
                    {"signal", 's', true, "Signal to send to the container", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  std::optional<int> timeout;
  if (a.has("time")) timeout = std::stoi(a.get("time"));
  return for_each_container(a.positionals, [&](const std::string& ref) {
    ctx.engine().stop(ref, timeout);
    ctx.engine().start(ref);
    std::cout << ref << "\n";
  });
}

int cmd_kill(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth kill [OPTIONS] CONTAINER [CONTAINER...]",
                   "Kill one or more running containers",
                   {{"signal", 's', true, "Signal to send to the container", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  std::string sig_text = a.get("signal", "KILL");
  int sig;
  try {
    sig = engine::parse_signal_name(sig_text);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  return for_each_container(a.positionals, [&](const std::string& ref) {
    ctx.engine().kill(ref, sig);
    std::cout << ref << "\n";
  });
}

int cmd_rm(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth rm [OPTIONS] CONTAINER [CONTAINER...]",
                   "Remove one or more containers",
                   {{"force", 'f', false, "Force the removal of a running container (uses SIGKILL)", ""},
                    {"volumes", 'v', false, "Remove anonymous volumes associated with the container", ""},
                    {"link", 'l', false, "Remove the specified link (not supported)", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  return for_each_container(a.positionals, [&](const std::string& ref) {
    ctx.engine().remove(ref, a.has("force"), a.has("volumes"));
    std::cout << ref << "\n";
  });
}

int cmd_wait(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth wait CONTAINER [CONTAINER...]",
                   "Block until one or more containers stop, then print their exit codes",
                   {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  return for_each_container(a.positionals, [&](const std::string& ref) {
    std::cout << ctx.engine().wait(ref) << "\n" << std::flush;
  });
}

int cmd_rename(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth rename CONTAINER NEW_NAME", "Rename a container", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 2, 2);
  ctx.engine().rename(a.positionals[0], a.positionals[1]);
  return 0;
}

int cmd_update(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth update [OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of one or more containers",
                   container_update_flags()};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  nlohmann::json body = update_body_from_flags(a);
  return for_each_container(a.positionals, [&](const std::string& ref) {
    for (const auto& w : ctx.engine().update(ref, body)) std::cerr << "WARNING: " << w << "\n";
    std::cout << ref << "\n";
  });
}

int cmd_pause(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth pause CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  return for_each_container(a.positionals, [&](const std::string& ref) {
    ctx.engine().pause(ref);
    std::cout << ref << "\n";
  });
}

int cmd_unpause(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth unpause CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  return for_each_container(a.positionals, [&](const std::string& ref) {
    ctx.engine().unpause(ref);
    std::cout << ref << "\n";
  });
}

int cmd_ps(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth ps [OPTIONS]",
                   "List containers",
                   {{"all", 'a', false, "Show all containers (default shows just running)", ""},
                    {"filter", 'f', true, "Filter output based on conditions provided", "filter"},
                    {"format", 0, true, "Format output using a custom template", "string"},
                    {"last", 'n', true, "Show n last created containers (includes all states)", "int"},
                    {"latest", 'l', false, "Show the latest created container (includes all states)", ""},
                    {"no-trunc", 0, false, "Don't truncate output", ""},
                    {"quiet", 'q', false, "Only display container IDs", ""},
                    {"size", 's', false, "Display total file sizes", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  bool all = a.has("all") && a.get("all") != "false";
  int64_t last = -1;
  if (a.has("last")) {
    try {
      last = std::stoll(a.get("last"));
    } catch (...) {
      throw UsageError("invalid argument \"" + a.get("last") + "\" for \"-n, --last\" flag");
    }
  }
  if (a.has("latest")) last = 1;
  if (last >= 0) all = true;
  std::map<std::string, std::vector<std::string>> filters;
  for (const auto& f : a.all("filter")) {
    size_t eq = f.find('=');
    if (eq == std::string::npos) throw UsageError("bad format of filter (expected name=value)");
    std::string key = f.substr(0, eq);
    static const std::set<std::string> known = {"status",  "name",      "label",   "volume",  "ancestor",
                                                "exited",  "id",        "before",  "since",   "health",
                                                "network", "isolation", "is-task", "publish", "expose"};
    if (!known.count(key)) throw UsageError("invalid filter '" + key + "'");
    filters[key].push_back(f.substr(eq + 1));
  }
  if (filters.count("status") || filters.count("exited")) all = true;
  for (const auto& s : a.all("filter")) {
    if (s.rfind("status=", 0) != 0) continue;
    std::string v = s.substr(7);
    static const std::set<std::string> states = {"created", "restarting", "running", "removing",
                                                 "paused",  "exited",     "dead"};
    if (!states.count(v))
      throw UsageError("invalid filter 'status=" + v + "': Invalid filter 'status=" + v +
                       "'. Must be one of: created, restarting, running, removing, paused, exited, dead");
  }
  if (auto h = filters.find("health"); h != filters.end())
    for (const auto& v : h->second)
      if (v != "starting" && v != "healthy" && v != "unhealthy" && v != "none")
        throw UsageError("Unrecognised filter value for health: " + v);
  auto& engine = ctx.engine();
  std::vector<engine::Container> list = engine.list_summaries();
  bool trunc = !a.has("no-trunc");
  std::vector<json> rows;
  int64_t seen = 0;
  for (const auto& c : list) {
    if (last >= 0 && seen >= last) break;
    seen++;
    if (!all && !c.running()) continue;
    auto any = [&](const char* key, auto pred) {
      auto it = filters.find(key);
      if (it == filters.end()) return true;
      for (const auto& v : it->second)
        if (pred(v)) return true;
      return false;
    };
    bool keep =
        any("status", [&](const std::string& v) { return v == c.state; }) &&
        any("name", [&](const std::string& v) { return name_matches(c.name, v); }) &&
        any("id", [&](const std::string& v) { return c.id.rfind(v, 0) == 0; }) &&
        any("health",
            [&](const std::string& v) {
              return v == (c.health.is_object() ? c.health.value("Status", "none") : std::string("none"));
            }) &&
        any("exited", [&](const std::string& v) { return c.state == "exited" && std::to_string(c.exit_code) == v; }) &&
        any("ancestor",
            [&](const std::string& v) {
              if (c.image_name == v || c.image_id == v || c.image_id == "sha256:" + v) return true;
              auto img = ctx.images().find(v);
              return img && img->id == c.image_id;
            }) &&
        any("volume", [&](const std::string& v) {
          for (const auto& m : c.mounts)
            if (m.value("Name", "") == v || m.value("Destination", "") == v || m.value("Source", "") == v) return true;
          return false;
        });
    if (keep && filters.count("label"))
      for (const auto& l : filters["label"])
        keep = keep && label_matches(c.config["Config"].value("Labels", json()), l);
    if (!keep) continue;
    rows.push_back(ps_row(engine, c, trunc));
  }
  if (a.has("quiet")) {
    for (const auto& r : rows) std::cout << r["ID"].get<std::string>() << "\n";
    return 0;
  }
  std::string table = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
  if (a.has("size")) table += "\t{{.Size}}";
  std::cout << format_list(a.get("format"), table, rows,
                           {{"ID", "CONTAINER ID"},
                            {"Image", "IMAGE"},
                            {"Command", "COMMAND"},
                            {"CreatedAt", "CREATED AT"},
                            {"RunningFor", "CREATED"},
                            {"Ports", "PORTS"},
                            {"State", "STATE"},
                            {"Status", "STATUS"},
                            {"Size", "SIZE"},
                            {"Names", "NAMES"},
                            {"Labels", "LABELS"},
                            {"Mounts", "MOUNTS"},
                            {"Networks", "NETWORKS"},
                            {"LocalVolumes", "LOCAL VOLUMES"}});
  return 0;
}

int cmd_inspect(Context& ctx, const Invocation& inv) {
  bool container_only = inv.name == "container inspect";
  CommandHelp help{container_only ? "berth container inspect [OPTIONS] CONTAINER [CONTAINER...]"
                                  : "berth inspect [OPTIONS] NAME|ID [NAME|ID...]",
                   "Return low-level information on Docker objects",
                   {{"format", 'f', true, "Format output using a custom template", "string"},
                    {"size", 's', false, "Display total file sizes", ""},
                    {"type", 0, true, "Return JSON for specified type", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  std::string type = container_only ? "container" : a.get("type");
  if (!type.empty() && type != "container" && type != "image" && type != "volume")
    throw UsageError("\"" + type + "\" is not a valid value for --type");
  std::vector<json> items;
  int status = 0;
  for (const auto& ref : a.positionals) {
    try {
      if (type.empty() || type == "container") {
        try {
          items.push_back(engine::inspect_json(ctx.engine(), ctx.engine().get(ref)));
          continue;
        } catch (const engine::NotFound&) {
          if (type == "container") throw;
        }
      }
      if (type.empty() || type == "image") {
        if (auto img = ctx.images().find(ref)) {
          items.push_back(image::inspect_json(*img, ctx.images().root()));
          continue;
        }
      }
      throw Error("No such object: " + ref);
    } catch (const engine::NotFound& e) {
      std::cerr << "Error: " << e.what() << "\n";
      status = 1;
    } catch (const Error& e) {
      if (std::string(e.what()).rfind("No such", 0) != 0) throw;
      std::cerr << "Error: " << e.what() << "\n";
      status = 1;
    }
  }
  std::cout << format_inspect(a.get("format"), items);
  return status;
}

int cmd_logs(Context& ctx, const Invocation& inv) {
  CommandHelp help{
      "berth logs [OPTIONS] CONTAINER",
      "Fetch the logs of a container",
      {{"details", 0, false, "Show extra details provided to logs", ""},
       {"follow", 'f', false, "Follow log output", ""},
       {"since", 0, true, "Show logs since timestamp or relative (e.g. 42m for 42 minutes)", "string"},
       {"tail", 'n', true, "Number of lines to show from the end of the logs (default \"all\")", "string"},
       {"timestamps", 't', false, "Show timestamps", ""},
       {"until", 0, true, "Show logs before a timestamp or relative (e.g. 42m for 42 minutes)", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  logs::ReadOptions o;
  int64_t now = now_ns();
  if (a.has("since")) o.since_ns = logs::parse_time_arg(a.get("since"), now);
  if (a.has("until")) o.until_ns = logs::parse_time_arg(a.get("until"), now);
  std::string tail = a.get("tail", "all");
  if (tail != "all" && !tail.empty()) {
    try {
      size_t used = 0;
      o.tail = std::stoll(tail, &used);
      if (used != tail.size()) throw std::invalid_argument(tail);
      if (o.tail < 0) o.tail = -1;
    } catch (const std::exception&) {
      throw UsageError("invalid argument \"" + tail + "\" for \"-n, --tail\" flag: must be \"all\" or an integer");
    }
  }
  o.follow = a.has("follow");
  auto& engine = ctx.engine();
  engine::Container c = engine.get(a.positionals[0]);
  json log_config = c.config["HostConfig"].value("LogConfig", json::object());
  std::string type = log_config.is_object() ? log_config.value("Type", "") : "";
  if (!type.empty() && type != "json-file" && type != "local")
    throw Error("configured logging driver does not support reading");
  bool timestamps = a.has("timestamps");
  std::string id = c.id;
  logs::read(
      engine.log_path(id), o,
      [&](const logs::Entry& e) {
        std::ostream& out = e.stream == "stderr" ? std::cerr : std::cout;
        if (timestamps) {
          // docker pads the fraction to 9 digits here (RFC3339NanoFixed).
          std::string t = logs::format_time(e.time_ns);
          size_t dot = t.find('.');
          std::string frac = dot == std::string::npos ? "" : t.substr(dot + 1, t.size() - dot - 2);
          frac.resize(9, '0');
          std::string base = dot == std::string::npos ? t.substr(0, t.size() - 1) : t.substr(0, dot);
          out << base << "." << frac << "Z ";
        }
        out << e.log;
        if (o.follow) out.flush();
      },
      [&]() {
        try {
          return !engine.get(id).running();
        } catch (const Error&) {
          return true;
        }
      });
  std::cout.flush();
  return 0;
}

}  // namespace berth::cli

namespace berth::cli {

int cmd_exec(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth exec [OPTIONS] CONTAINER COMMAND [ARG...]",
                   "Execute a command in a running container",
                   {{"detach", 'd', false, "Detached mode: run command in the background", ""},
                    {"detach-keys", 0, true, "Override the key sequence for detaching a container", "string"},
                    {"env", 'e', true, "Set environment variables", "list"},
                    {"env-file", 0, true, "Read in a file of environment variables", "list"},
                    {"interactive", 'i', false, "Keep STDIN open even if not attached", ""},
                    {"privileged", 0, false, "Give extended privileges to the command", ""},
                    {"tty", 't', false, "Allocate a pseudo-TTY", ""},
                    {"user", 'u', true, "Username or UID (format: \"<name|uid>[:<group|gid>]\")", "string"},
                    {"workdir", 'w', true, "Working directory inside the container", "string"}}};
  ParsedArgs a = parse_command(inv, help, false);
  require_args(inv, a, 2, -1);
  engine::ExecRequest req;
  req.args.assign(a.positionals.begin() + 1, a.positionals.end());
  for (const auto& f : a.all("env-file"))
    for (const auto& e : read_kv_file(f, true)) req.env.push_back(e);
  for (const auto& e : a.all("env")) {
    if (e.find('=') != std::string::npos) {
      req.env.push_back(e);
    } else if (const char* v = std::getenv(e.c_str())) {
      req.env.push_back(e + "=" + v);
    }
  }
  req.user = a.get("user");
  req.workdir = a.get("workdir");
  if (!req.workdir.empty() && req.workdir[0] != '/')
    throw UsageError("the working directory '" + req.workdir + "' is invalid, it needs to be an absolute path");
  req.tty = a.has("tty");
  req.interactive = a.has("interactive");
  req.detach = a.has("detach");
  auto& engine = ctx.engine();
  engine::Container c = engine.get(a.positionals[0]);
  return engine::exec_in(engine, c, req);
}

}  // namespace berth::cli
