// `berth compose …`: docker compose's command line over the compose module. Commands that act on
// one container (exec, top, port) find it by the project's labels and reuse the container commands.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "cli/cli_util.hpp"
#include "cli/compose_cli.hpp"
#include "cli/context.hpp"
#include "cli/format.hpp"
#include "cli/handlers.hpp"
#include "compose/compose.hpp"
#include "compose/yaml.hpp"
#include "engine/engine.hpp"
#include "engine/inspect.hpp"
#include "engine/networks.hpp"
#include "engine/volumes.hpp"
#include "image/store.hpp"
#include "logs/json_file.hpp"
#include "util/humanize.hpp"

namespace berth::cli {

using nlohmann::json;

namespace {

struct ComposeGlobals {
  compose::LoadOptions load;
};

const std::vector<FlagSpec> kGlobalFlags = {
    {"file", 'f', true, "Compose configuration files", "stringArray"},
    {"project-name", 'p', true, "Project name", "string"},
    {"project-directory", 0, true, "Specify an alternate working directory", "string"},
    {"env-file", 0, true, "Specify an alternate environment file", "stringArray"},
    {"profile", 0, true, "Specify a profile to enable", "stringArray"},
    {"ansi", 0, true, "Control when to print ANSI control characters (\"never\"|\"always\"|\"auto\")", "string"},
    {"progress", 0, true, "Set type of progress output (auto, tty, plain, quiet)", "string"},
    {"parallel", 0, true, "Control max parallelism, -1 for unlimited", "int"},
    {"compatibility", 0, false, "Run compose in backward compatibility mode", ""},
    {"help", 'h', false, "Print usage", ""},
};

// labels_ok: with -p and no compose file found, the project as its labels describe it (docker
// compose allows that for down, ps, logs, stop, start, rm, top, events, exec and port).
compose::Project load(ComposeGlobals& g, const std::vector<std::string>& services = {}, bool labels_ok = false) {
  g.load.services = services;
  g.load.warn = [](const std::string& m) { std::cerr << "WARN[0000] " << m << "\n"; };
  try {
    return compose::load_project(g.load);
  } catch (const Error& e) {
    if (!labels_ok || g.load.project_name.empty() || !g.load.files.empty() ||
        std::string(e.what()).rfind("no configuration file provided", 0) != 0)
      throw;
    return compose::project_from_labels(g.load.project_name);
  }
}

// Loads the project for a command acting on services: the named ones must exist.
compose::Project load_for_services(ComposeGlobals& g, const std::vector<std::string>& services) {
  compose::Project project = load(g, {}, true);
  for (const auto& s : services)
    if (!project.from_labels && !project.has_service(s)) throw Error("no such service: " + s);
  return project;
}

// The engine pieces for the compose module; images are pulled when missing (pull: "missing").
struct Backend {
  compose::Backend backend;
  Backend(Context& ctx, const std::string& pull = "missing") : backend(compose_backend(ctx, pull)) {}
};

std::optional<int> timeout_flag(const ParsedArgs& a) {
  if (!a.has("timeout")) return std::nullopt;
  try {
    return std::stoi(a.get("timeout"));
  } catch (const std::exception&) {
    throw UsageError("invalid argument \"" + a.get("timeout") + "\" for \"-t, --timeout\" flag");
  }
}

// "SERVICE" and its --index → the container.
engine::Container service_container(Context& ctx, const compose::Project& project, const std::string& service,
                                    int index) {
  if (!project.from_labels && !project.has_service(service)) throw Error("no such service: " + service);
  for (auto& c : compose::project_containers(ctx.engine(), project.name, {service}))
    if (compose::number_of(c) == index && c.running()) return c;
  throw Error("service \"" + service + "\" is not running");
}

// Colours for log prefixes on a terminal, as compose cycles them.
const char* const kColours[] = {"\033[36m", "\033[33m", "\033[32m", "\033[35m", "\033[34m", "\033[96m", "\033[93m"};

struct LogOptions {
  logs::ReadOptions read;
  bool timestamps = false, prefix = true, colour = false;
};

// Prints the logs of several containers, each line prefixed with "NAME  | "; with follow, until
// stop() returns true for every container (or the caller's flag is set).
void print_logs(Context& ctx, const std::vector<engine::Container>& containers, const LogOptions& o,
                const std::function<bool(const std::string& id)>& stopped) {
  size_t width = 0;
  for (const auto& c : containers) width = std::max(width, c.name.size());
  std::mutex out_lock;
  auto printer = [&](const engine::Container& c, size_t i) {
    std::string prefix;
    if (o.prefix) {
      std::string name = c.name;
      name.resize(width, ' ');
      prefix = o.colour ? std::string(kColours[i % 7]) + name + "  |\033[0m " : name + "  | ";
    }
    return [&, prefix](const logs::Entry& e) {
      std::string line = e.log;
      if (o.timestamps) line = logs::format_time(e.time_ns) + " " + line;
      if (line.empty() || line.back() != '\n') line += '\n';
      std::lock_guard<std::mutex> g(out_lock);
      std::cout << prefix << line;
      std::cout.flush();
    };
  };
  if (!o.read.follow) {
    for (size_t i = 0; i < containers.size(); i++)
      logs::read(ctx.engine().log_path(containers[i].id), o.read, printer(containers[i], i));
    return;
  }
  std::vector<std::thread> readers;
  for (size_t i = 0; i < containers.size(); i++) {
    std::string path = ctx.engine().log_path(containers[i].id);
    std::string id = containers[i].id;
    readers.emplace_back([&, path, id, sink = printer(containers[i], i)]() {
      logs::read(path, o.read, sink, [&, id]() { return stopped(id); });
    });
  }
  for (auto& t : readers) t.join();
}

// Watches containers for the log readers, from one thread (the readers must not share the engine's
// database): every `period` it asks the engine which have stopped (or are gone) and records them
// for exited(id). after_poll, if given, runs on that thread after each round, told whether a
// container exited in it (compose up: Ctrl+C, --abort-on-container-exit). The thread ends once
// every container has exited (join() waits for that) or when the watcher is destroyed.
class ExitWatcher {
 public:
  ExitWatcher(Context& ctx, std::vector<engine::Container> containers, std::chrono::milliseconds period,
              std::function<void(bool newly_exited)> after_poll = {})
      : ctx_(ctx), containers_(std::move(containers)), period_(period), after_poll_(std::move(after_poll)) {
    thread_ = std::thread([this] { run(); });
  }
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;
  ~ExitWatcher() {
    {
      std::lock_guard<std::mutex> g(lock_);
      finished_ = true;
    }
    wake_.notify_all();
    join();
  }

  bool exited(const std::string& id) const {
    std::lock_guard<std::mutex> g(lock_);
    return exited_.count(id) > 0;
  }

  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    for (;;) {
      size_t exited = 0;
      bool newly_exited = false;
      for (const auto& c : containers_) {
        bool gone = true;
        try {
          gone = !ctx_.engine().get(c.id).running();
        } catch (const Error&) {
        }
        if (!gone) continue;
        exited++;
        std::lock_guard<std::mutex> g(lock_);
        newly_exited |= exited_.insert(c.id).second;
      }
      if (after_poll_) after_poll_(newly_exited);
      if (exited == containers_.size()) return;
      std::unique_lock<std::mutex> g(lock_);
      if (wake_.wait_for(g, period_, [this] { return finished_; })) return;
    }
  }

  Context& ctx_;
  const std::vector<engine::Container> containers_;
  const std::chrono::milliseconds period_;
  const std::function<void(bool)> after_poll_;
  mutable std::mutex lock_;
  std::condition_variable wake_;
  std::set<std::string> exited_;
  bool finished_ = false;
  std::thread thread_;
};

std::atomic<int> g_signals{0};
void on_signal(int) { g_signals++; }

int compose_up(Context& ctx, ComposeGlobals& g, const Invocation& inv) {
  CommandHelp help{
      "berth compose up [OPTIONS] [SERVICE...]",
      "Create and start containers",
      {{"detach", 'd', false, "Detached mode: Run containers in the background", ""},
       {"force-recreate", 0, false, "Recreate containers even if their configuration hasn't changed", ""},
       {"no-recreate", 0, false, "If containers already exist, don't recreate them", ""},
       {"no-deps", 0, false, "Don't start linked services", ""},
       {"no-start", 0, false, "Don't start the services after creating them", ""},
       {"remove-orphans", 0, false, "Remove containers for services not defined in the Compose file", ""},
       {"scale", 0, true, "Scale SERVICE to NUM instances", "scale"},
       {"wait", 0, false, "Wait for services to be running|healthy. Implies detached mode.", ""},
       {"wait-timeout", 0, true, "Maximum duration in seconds to wait for the project to be running|healthy", "int"},
       {"timeout", 't', true, "Use this timeout in seconds for container shutdown", "int"},
       {"abort-on-container-exit", 0, false, "Stops all containers if any container was stopped", ""},
       {"no-color", 0, false, "Produce monochrome output", ""},
       {"no-log-prefix", 0, false, "Don't print prefix in logs", ""},
       {"pull", 0, true, "Pull image before running (\"always\"|\"missing\"|\"never\")", "string"},
       {"quiet-pull", 0, false, "Pull without printing progress information", ""},
       {"build", 0, false, "Build images before starting containers", ""},
       {"no-build", 0, false, "Don't build an image, even if it's policy", ""}}};
  ParsedArgs a = parse_command(inv, help);
  if (a.has("force-recreate") && a.has("no-recreate"))
    throw UsageError("--force-recreate and --no-recreate are incompatible");
  compose::UpOptions o;
  o.services = a.positionals;
  o.force_recreate = a.has("force-recreate");
  o.no_recreate = a.has("no-recreate");
  o.no_deps = a.has("no-deps");
  o.no_start = a.has("no-start");
  o.remove_orphans = a.has("remove-orphans");
  o.build = a.has("build");
  for (const auto& s : a.all("scale")) {
    size_t eq = s.find('=');
    int n = -1;
    try {
      if (eq != std::string::npos) n = std::stoi(s.substr(eq + 1));
    } catch (const std::exception&) {
    }
    if (eq == std::string::npos || n < 0) throw UsageError("invalid --scale value \"" + s + "\": expected SERVICE=NUM");
    o.scale[s.substr(0, eq)] = n;
  }
  int wait_timeout = 0;
  if (a.has("wait-timeout")) {
    try {
      wait_timeout = std::stoi(a.get("wait-timeout"));
    } catch (const std::exception&) {
      throw UsageError("invalid argument \"" + a.get("wait-timeout") + "\" for \"--wait-timeout\" flag");
    }
  }
  std::string pull = a.get("pull", "missing");
  if (pull != "missing" && pull != "never" && pull != "always")
    throw UsageError("invalid --pull option \"" + pull + "\": must be one of always, missing or never");
  compose::Project project = load(g, a.positionals);
  for (const auto& [s, n] : o.scale)
    if (!project.has_service(s)) throw Error("no such service: " + s);
  o.wait_timeout_ns = static_cast<int64_t>(wait_timeout) * 1000000000;
  Backend b(ctx, pull);
  compose::up(b.backend, project, o);
  std::vector<std::string> services = o.services.empty() ? project.ordered_services() : o.services;
  if (a.has("wait")) {
    for (const auto& s : services) compose::wait_ready(b.backend, project, s, o.wait_timeout_ns);
    return 0;
  }
  if (a.has("detach") || o.no_start) return 0;

  // Attached: the services' logs until every container has stopped; Ctrl+C stops them.
  auto containers = compose::project_containers(ctx.engine(), project.name, services);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  LogOptions lo;
  lo.read.follow = true;
  lo.read.since_ns = 0;
  lo.prefix = !a.has("no-log-prefix");
  lo.colour = !a.has("no-color") && ::isatty(1);
  bool stopping = false;  // only the watcher's thread reads and writes it
  ExitWatcher watcher(ctx, containers, std::chrono::milliseconds(50), [&](bool newly_exited) {
    if (stopping) return;
    if (g_signals > 0) {
      std::cerr << "Gracefully stopping... (press Ctrl+C again to force)\n";
    } else if (newly_exited && a.has("abort-on-container-exit")) {
      std::cerr << "Aborting on container exit...\n";
    } else {
      return;
    }
    stopping = true;
    compose::stop(b.backend, project, services, timeout_flag(a));
  });
  print_logs(ctx, containers, lo, [&](const std::string& id) { return watcher.exited(id); });
  watcher.join();
  if (g_signals > 0) return 130;
  return 0;
}

int compose_down(Context& ctx, ComposeGlobals& g, const Invocation& inv) {
  CommandHelp help{"berth compose down [OPTIONS] [SERVICES]",
                   "Stop and remove containers, networks",
                   {{"volumes", 'v', false,
                     "Remove named volumes declared in the \"volumes\" section of the Compose file and anonymous "
                     "volumes attached to containers",
                     ""},
                    {"remove-orphans", 0, false, "Remove containers for services not defined in the Compose file", ""},
                    {"timeout", 't', true, "Specify a shutdown timeout in seconds", "int"},
                    {"rmi", 0, true, "Remove images used by services (\"local\"|\"all\")", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  if (a.has("rmi")) throw UsageError("--rmi is not supported by berth compose");
  compose::DownOptions o;
  o.volumes = a.has("volumes");
  o.remove_orphans = a.has("remove-orphans");
  o.timeout = timeout_flag(a);
  compose::Project project = load(g, {}, true);
  Backend b(ctx);
  compose::down(b.backend, project, o);
  return 0;
}

std::string ports_text(Context& ctx, const engine::Container& c) {
  std::string ports;
  if (!c.running()) return ports;
  for (const auto& p : ctx.engine().networks().ports(c.id))
    ports += (ports.empty() ? "" : ", ") + (p.host_ip.empty() ? std::string("0.0.0.0") : p.host_ip) + ":" +
             std::to_string(p.host_port) + "->" + std::to_string(p.container_port) + "/" + p.proto;
  return ports;
}

int compose_ps(Context& ctx, ComposeGlobals& g, const Invocation& inv) {
  CommandHelp help{"berth compose ps [OPTIONS] [SERVICE...]",
                   "List containers",
                   {{"all", 'a', false, "Show all stopped containers (including those created by the run command)", ""},
                    {"quiet", 'q', false, "Only display IDs", ""},
                    {"services", 0, false, "Display services", ""},
                    {"format", 0, true, "Format output using a custom template (table, json, TEMPLATE)", "string"},
                    {"status", 0, true, "Filter services by status", "stringArray"},
                    {"filter", 0, true, "Filter services by a property (status=running)", "string"},
                    {"no-trunc", 0, false, "Don't truncate output", ""}}};
  ParsedArgs a = parse_command(inv, help);
  compose::Project project = load_for_services(g, a.positionals);
  std::vector<std::string> statuses = a.all("status");
  if (a.has("filter")) {
    std::string f = a.get("filter");
    if (f.rfind("status=", 0) != 0) throw UsageError("invalid filter \"" + f + "\": only status= is supported");
    statuses.push_back(f.substr(7));
  }
  auto& engine = ctx.engine();
  auto containers = compose::project_containers(engine, project.name, a.positionals);
  if (a.has("all")) {
    auto oneoffs = compose::project_containers(engine, project.name, a.positionals, true);
    containers.insert(containers.end(), oneoffs.begin(), oneoffs.end());
  }
  std::vector<json> rows;
  std::set<std::string> services_seen;
  for (const auto& c : containers) {
    if (!a.has("all") && !c.running() && statuses.empty()) continue;
    if (!statuses.empty() && std::find(statuses.begin(), statuses.end(), c.state) == statuses.end()) continue;
    std::string command;
    for (const auto& arg : engine::container_args(engine, c)) command += (command.empty() ? "" : " ") + arg;
    if (!a.has("no-trunc") && command.size() > 20) command = command.substr(0, 19) + "…";
    std::string health = c.health.is_object() ? c.health.value("Status", "") : "";
    json labels = c.config["Config"].value("Labels", json::object());
    std::string label_text;
    for (auto& [k, v] : labels.items()) label_text += (label_text.empty() ? "" : ",") + k + "=" + v.get<std::string>();
    json publishers = json::array();
    if (c.running())
      for (const auto& p : engine.networks().ports(c.id))
        publishers.push_back({{"URL", p.host_ip.empty() ? "0.0.0.0" : p.host_ip},
                              {"TargetPort", p.container_port},
                              {"PublishedPort", p.host_port},
                              {"Protocol", p.proto}});
    std::string service = compose::service_of(c);
    services_seen.insert(service);
    rows.push_back({{"ID", c.id},
                    {"Name", c.name},
                    {"Names", c.name},
                    {"Image", c.image_name},
                    {"Command", "\"" + command + "\""},
                    {"Project", project.name},
                    {"Service", service},
                    {"CreatedAt", engine::time_string(c.created_ns)},
                    {"RunningFor", time_ago(c.created_ns / 1000000000)},
                    {"State", c.state},
                    {"Status", engine::status_text(c)},
                    {"Health", health},
                    {"ExitCode", c.exit_code},
                    {"Labels", label_text},
                    {"Publishers", publishers},
                    {"Ports", ports_text(ctx, c)},
                    {"LocalVolumes", "0"},
                    {"Mounts", ""},
                    {"Networks", ""},
                    {"Size", "0B"}});
  }
  if (a.has("services")) {
    for (const auto& s : services_seen) std::cout << s << "\n";
    return 0;
  }
  if (a.has("quiet")) {
    for (const auto& r : rows) std::cout << r["ID"].get<std::string>() << "\n";
    return 0;
  }
  std::string format = a.get("format", "table");
  if (format == "json") {
    for (auto& r : rows) {
      json out = r;
      out["Command"] = r["Command"].get<std::string>().substr(1, r["Command"].get<std::string>().size() - 2);
      std::cout << go_json(out) << "\n";
    }
    return 0;
  }
  std::cout << format_list(
      format, "table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}", rows,
      {{"Name", "NAME"},
       {"Names", "NAMES"},
       {"ID", "CONTAINER ID"},
       {"Image", "IMAGE"},
       {"Command", "COMMAND"},
       {"Service", "SERVICE"},
       {"Project", "PROJECT"},
       {"RunningFor", "CREATED"},
       {"CreatedAt", "CREATED"},
       {"State", "STATE"},
       {"Status", "STATUS"},
       {"Health", "HEALTH"},
       {"ExitCode", "EXIT CODE"},
       {"Ports", "PORTS"},
       {"Labels", "LABELS"}});
  return 0;
}

int compose_logs(Context& ctx, ComposeGlobals& g, const Invocation& inv) {
  CommandHelp help{
      "berth compose logs [OPTIONS] [SERVICE...]",
      "View output from containers",
      {{"follow", 'f', false, "Follow log output", ""},
       {"tail", 'n', true, "Number of lines to show from the end of the logs for each container", "string"},
       {"timestamps", 't', false, "Show timestamps", ""},
       {"since", 0, true, "Show logs since timestamp or relative (e.g. 42m for 42 minutes)", "string"},
       {"until", 0, true, "Show logs before a timestamp or relative (e.g. 42m for 42 minutes)", "string"},
       {"no-color", 0, false, "Produce monochrome output", ""},
       {"no-log-prefix", 0, false, "Don't print prefix in logs", ""},
       {"index", 0, true, "index of the container if service has multiple replicas", "int"}}};
  ParsedArgs a = parse_command(inv, help);
  compose::Project project = load_for_services(g, a.positionals);
  LogOptions o;
  int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (a.has("since")) o.read.since_ns = logs::parse_time_arg(a.get("since"), now);
  if (a.has("until")) o.read.until_ns = logs::parse_time_arg(a.get("until"), now);
  std::string tail = a.get("tail", "all");
  if (tail != "all") {
    try {
      o.read.tail = std::stoll(tail);
    } catch (const std::exception&) {
      throw UsageError("invalid argument \"" + tail + "\" for \"-n, --tail\" flag");
    }
  }
  o.read.follow = a.has("follow");
  o.timestamps = a.has("timestamps");
  o.prefix = !a.has("no-log-prefix");
  o.colour = !a.has("no-color") && ::isatty(1);
  auto containers = compose::project_containers(ctx.engine(), project.name, a.positionals);
  if (a.has("index")) {
    int index = std::stoi(a.get("index"));
    std::erase_if(containers, [&](const engine::Container& c) { return compose::number_of(c) != index; });
  }
  // Follow: a watcher thread polls the engine; the readers only look at its answers.
  std::optional<ExitWatcher> watcher;
  if (o.read.follow) watcher.emplace(ctx, containers, std::chrono::milliseconds(100));
  print_logs(ctx, containers, o, [&](const std::string& id) { return watcher && watcher->exited(id); });
  return 0;
}

int compose_simple(Context& ctx, ComposeGlobals& g, const Invocation& inv, const std::string& what) {
  CommandHelp help{"berth compose " + what + " [OPTIONS] [SERVICE...]", "", {}};
  if (what == "stop" || what == "restart")
    help.flags.push_back({"timeout", 't', true, "Specify a shutdown timeout in seconds", "int"});
  if (what == "rm") {
    help.flags = {{"force", 'f', false, "Don't ask to confirm removal", ""},
                  {"stop", 's', false, "Stop the containers, if required, before removing", ""},
                  {"volumes", 'v', false, "Remove any anonymous volumes attached to containers", ""}};
  }
  help.summary = what == "start"     ? "Start services"
                 : what == "stop"    ? "Stop services"
                 : what == "restart" ? "Restart service containers"
                                     : "Removes stopped service containers";
  ParsedArgs a = parse_command(inv, help);
  compose::Project project = load_for_services(g, a.positionals);
  Backend b(ctx);
  if (what == "start") compose::start(b.backend, project, a.positionals);
  if (what == "stop") compose::stop(b.backend, project, a.positionals, timeout_flag(a));
  if (what == "restart") compose::restart(b.backend, project, a.positionals, timeout_flag(a));
  if (what == "rm") {
    auto cs = compose::project_containers(ctx.engine(), project.name, a.positionals);
    std::vector<std::string> names;
    for (const auto& c : cs)
      if (!c.running() || a.has("stop")) names.push_back(c.name);
    if (names.empty()) {
      std::cerr << "No stopped containers\n";
      return 0;
    }
    if (!a.has("force")) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      if (!confirm("Going to remove " + list)) return 0;
    }
    compose::remove(b.backend, project, a.positionals, a.has("stop"), a.has("volumes"));
  }
  return 0;
}

int compose_exec(Context& ctx, ComposeGlobals& g, const Invocation& inv) {
  CommandHelp help{
      "berth compose exec [OPTIONS] SERVICE COMMAND [ARGS...]",
      "Execute a command in a running container",
      {{"detach", 'd', false, "Detached mode: Run command in the background", ""},
       {"no-TTY", 'T', false, "Disable pseudo-TTY allocation. By default `compose exec` allocates a TTY.", ""},
       {"env", 'e', true, "Set environment variables", "stringArray"},
       {"user", 'u', true, "Run the command as this user", "string"},
       {"workdir", 'w', true, "Path to workdir directory for this command", "string"},
       {"index", 0, true, "Index of the container if service has multiple replicas", "int"},
       {"privileged", 0, false, "Give extended privileges to the process", ""},
       {"interactive", 'i', false, "Keep STDIN open even if not attached (default true)", ""}}};
  ParsedArgs a = parse_command(inv, help, false);
  require_args(inv, a, 2, -1);
  compose::Project project = load(g, {}, true);
  engine::Container c = service_container(ctx, project, a.positionals[0], std::stoi(a.get("index", "1")));
  Invocation exec;
  exec.name = "exec";
  exec.args = {"exec"};
  exec.start = 1;
  bool tty = !a.has("no-TTY") && ::isatty(0) && ::isatty(1);
  if (a.has("detach"))
    exec.args.push_back("-d");
  else if (::isatty(0) || !a.has("no-TTY"))
    exec.args.push_back("-i");
  if (tty && !a.has("detach")) exec.args.push_back("-t");
  for (const auto& e : a.all("env")) exec.args.insert(exec.args.end(), {"-e", e});
  if (a.has("user")) exec.args.insert(exec.args.end(), {"-u", a.get("user")});
  if (a.has("workdir")) exec.args.insert(exec.args.end(), {"-w", a.get("workdir")});
  exec.args.push_back(c.id);
  exec.args.insert(exec.args.end(), a.positionals.begin() + 1, a.positionals.end());
  return cmd_exec(ctx, exec);
}

int compose_run(Context& ctx, ComposeGlobals& g, const Invocation& inv) {
  CommandHelp help{
      "berth compose run [OPTIONS] SERVICE [COMMAND] [ARGS...]",
      "Run a one-off command on a service",
      {{"rm", 0, false, "Automatically remove the container when it exits", ""},
       {"detach", 'd', false, "Run container in background and print container ID", ""},
       {"env", 'e', true, "Set environment variables", "stringArray"},
       {"label", 'l', true, "Add or override a label", "stringArray"},
       {"name", 0, true, "Assign a name to the container", "string"},
       {"entrypoint", 0, true, "Override the entrypoint of the image", "string"},
       {"user", 'u', true, "Run as specified username or uid", "string"},
       {"workdir", 'w', true, "Working directory inside the container", "string"},
       {"no-TTY", 'T', false, "Disable pseudo-TTY allocation (default: auto-detected)", ""},
       {"interactive", 'i', false, "Keep STDIN open even if not attached (default true)", ""},
       {"no-deps", 0, false, "Don't start linked services", ""},
       {"service-ports", 0, false, "Run command with all service's ports enabled and mapped to the host", ""},
       {"quiet-pull", 0, false, "Pull without printing progress information", ""}}};
  ParsedArgs a = parse_command(inv, help, false);
  require_args(inv, a, 1, -1);
  std::string service = a.positionals[0];
  compose::Project project = load(g, {service});
  if (!project.has_service(service)) throw Error("no such service: " + service);
  json overrides = json::object();
  if (a.positionals.size() > 1)
    overrides["Cmd"] = std::vector<std::string>(a.positionals.begin() + 1, a.positionals.end());
  if (a.has("entrypoint")) overrides["Entrypoint"] = json::array({a.get("entrypoint")});
  if (a.has("user")) overrides["User"] = a.get("user");
  if (a.has("workdir")) overrides["WorkingDir"] = a.get("workdir");
  json env = json::array();
  for (const auto& e : a.all("env")) env.push_back(e);
  if (!env.empty()) overrides["Env"] = env;
  json labels = json::object();
  for (const auto& l : a.all("label")) {
    size_t eq = l.find('=');
    labels[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  if (!labels.empty()) overrides["Labels"] = labels;
  bool tty = !a.has("no-TTY") && !a.has("detach") && ::isatty(0) && ::isatty(1);
  overrides["Tty"] = tty;
  overrides["OpenStdin"] = !a.has("detach");
  overrides["AttachStdin"] = !a.has("detach");
  std::string suffix;
  {
    static const char hex[] = "0123456789abcdef";
    std::srand(static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
    for (int i = 0; i < 12; i++) suffix += hex[std::rand() % 16];
  }
  overrides["Name"] = a.has("name") ? a.get("name") : project.name + "-" + service + "-run-" + suffix;
  Backend b(ctx);
  std::string id =
      compose::create_oneoff(b.backend, project, service, overrides, a.has("no-deps"), a.has("service-ports"));
  auto& engine = ctx.engine();
  if (a.has("detach")) {
    engine.start(id);
    std::cout << id << "\n";
    return 0;
  }
  engine::AttachIo io;
  io.stdin_fd = 0;
  io.tty = tty;
  io.proxy_signals = !tty;
  int status = engine.start_attached(id, io);
  if (a.has("rm")) engine.remove(id, true, true);
  return status;
}

int compose_config(Context&, ComposeGlobals& g, const Invocation& inv) {
  CommandHelp help{"berth compose config [OPTIONS] [SERVICE...]",
                   "Parse, resolve and render compose file in canonical format",
                   {{"quiet", 'q', false, "Only validate the configuration, don't print anything", ""},
                    {"services", 0, false, "Print the service names, one per line", ""},
                    {"volumes", 0, false, "Print the volume names, one per line", ""},
                    {"networks", 0, false, "Print the network names, one per line", ""},
                    {"profiles", 0, false, "Print the profile names, one per line", ""},
                    {"images", 0, false, "Print the image names, one per line", ""},
                    {"format", 0, true, "Format the output. Values: [yaml | json]", "string"},
                    {"output", 'o', true, "Save to file (default to stdout)", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  if (a.has("profiles")) {
    // Every profile any service names, whatever is active.
    ComposeGlobals all = g;
    all.load.profiles = {"*"};
    compose::Project p = load(all);
    std::set<std::string> names;
    for (auto& [n, s] : p.model["services"].items())
      if (s.contains("profiles"))
        for (const auto& pr : s["profiles"]) names.insert(pr.get<std::string>());
    for (const auto& n : names) std::cout << n << "\n";
    return 0;
  }
  compose::Project project = load(g, a.positionals);
  if (a.has("quiet")) return 0;
  const json& m = project.model;
  if (a.has("services")) {
    for (const auto& s : project.ordered_services()) std::cout << s << "\n";
    return 0;
  }
  if (a.has("volumes") || a.has("networks")) {
    for (auto& [k, v] : m[a.has("volumes") ? "volumes" : "networks"].items()) std::cout << k << "\n";
    return 0;
  }
  if (a.has("images")) {
    for (auto& [k, v] : m["services"].items()) std::cout << v.value("image", "") << "\n";
    return 0;
  }
  json out = m;
  if (!a.positionals.empty()) {
    json kept = json::object();
    for (const auto& s : project.with_dependencies(a.positionals)) kept[s] = m["services"][s];
    out["services"] = kept;
  }
  std::string format = a.get("format", "yaml");
  std::string text;
  if (format == "json")
    text = out.dump(2) + "\n";
  else if (format == "yaml")
    text = compose::json_to_yaml(out);
  else
    throw UsageError("unsupported format \"" + format + "\"");
  if (a.has("output")) {
    FILE* f = std::fopen(a.get("output").c_str(), "w");
    if (!f) throw_errno("open " + a.get("output"));
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  } else {
    std::cout << text;
  }
  return 0;
}

int compose_pull(Context& ctx, ComposeGlobals& g, const Invocation& inv) {
  CommandHelp help{"berth compose pull [OPTIONS] [SERVICE...]",
                   "Pull service images",
                   {{"quiet", 'q', false, "Pull without printing progress information", ""},
                    {"ignore-pull-failures", 0, false, "Pull what it can and ignores images with pull failures", ""},
                    {"include-deps", 0, false, "Also pull services declared as dependencies", ""}}};
  ParsedArgs a = parse_command(inv, help);
  compose::Project project = load(g, a.positionals);
  Backend b(ctx, "always");
  std::vector<std::string> services = a.has("include-deps") ? project.with_dependencies(a.positionals) : a.positionals;
  if (services.empty()) services = project.ordered_services();
  int status = 0;
  for (const auto& s : services) {
    try {
      b.backend.ensure_image(project.service(s).value("image", ""));
    } catch (const Error& e) {
      if (!a.has("ignore-pull-failures")) throw;
      std::cerr << " " << s << " Error " << e.what() << "\n";
      status = 0;
    }
  }
  return status;
}

int compose_build(Context& ctx, ComposeGlobals& g, const Invocation& inv) {
  CommandHelp help{"berth compose build [OPTIONS] [SERVICE...]",
                   "Build or rebuild services",
                   {{"no-cache", 0, false, "Do not use cache when building the image", ""},
                    {"pull", 0, false, "Always attempt to pull a newer version of the image", ""},
                    {"quiet", 'q', false, "Don't print anything to STDOUT", ""}}};
  ParsedArgs a = parse_command(inv, help);
  compose::Project project = load(g, a.positionals);
  compose::Backend b = compose_backend(ctx, a.has("pull") ? "always" : "missing", a.has("no-cache"));
  std::vector<std::string> services = a.positionals.empty() ? project.ordered_services() : a.positionals;
  for (const auto& s : services) compose::build_service(b, project, s);
  return 0;
}

int compose_ls(Context& ctx, ComposeGlobals&, const Invocation& inv) {
  CommandHelp help{"berth compose ls [OPTIONS]",
                   "List running compose projects",
                   {{"all", 'a', false, "Show all stopped Compose projects", ""},
                    {"quiet", 'q', false, "Only display IDs", ""},
                    {"format", 0, true, "Format the output. Values: [table | json]", "string"},
                    {"filter", 0, true, "Filter output based on conditions provided", "filter"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  struct Summary {
    std::map<std::string, int> states;
    std::string files;
  };
  std::map<std::string, Summary> projects;
  for (const auto& c : ctx.engine().list()) {
    json labels = c.config["Config"].value("Labels", json::object());
    if (!labels.is_object() || !labels.contains(compose::kProjectLabel)) continue;
    Summary& s = projects[labels[compose::kProjectLabel].get<std::string>()];
    s.states[c.state]++;
    if (labels.contains(compose::kConfigFilesLabel)) s.files = labels[compose::kConfigFilesLabel].get<std::string>();
  }
  std::vector<json> rows;
  for (auto& [name, s] : projects) {
    if (!a.has("all") && !s.states.count("running")) continue;
    if (a.has("filter")) {
      std::string f = a.get("filter");
      if (f.rfind("name=", 0) != 0) throw UsageError("invalid filter \"" + f + "\"");
      if (name.find(f.substr(5)) == std::string::npos) continue;
    }
    std::string status;
    for (auto& [state, n] : s.states) status += (status.empty() ? "" : ", ") + state + "(" + std::to_string(n) + ")";
    rows.push_back({{"Name", name}, {"Status", status}, {"ConfigFiles", s.files}});
  }
  if (a.has("quiet")) {
    for (const auto& r : rows) std::cout << r["Name"].get<std::string>() << "\n";
    return 0;
  }
  if (a.get("format", "table") == "json") {
    json arr = json::array();
    for (const auto& r : rows) arr.push_back(r);
    std::cout << go_json(arr) << "\n";
    return 0;
  }
  std::cout << format_list(a.get("format", "table"), "table {{.Name}}\t{{.Status}}\t{{.ConfigFiles}}", rows,
                           {{"Name", "NAME"}, {"Status", "STATUS"}, {"ConfigFiles", "CONFIG FILES"}});
  return 0;
}

// top, port: the container command for the service's container.
int compose_forward(Context& ctx, ComposeGlobals& g, const Invocation& inv, const std::string& what) {
  if (what == "port") {
    CommandHelp help{"berth compose port [OPTIONS] SERVICE PRIVATE_PORT",
                     "Print the public port for a port binding",
                     {{"index", 0, true, "Index of the container if service has multiple replicas", "int"},
                      {"protocol", 0, true, "tcp or udp", "string"}}};
    ParsedArgs a = parse_command(inv, help);
    require_args(inv, a, 2, 2);
    compose::Project project = load(g, {}, true);
    engine::Container c = service_container(ctx, project, a.positionals[0], std::stoi(a.get("index", "1")));
    Invocation port{"port", {"port", c.id, a.positionals[1] + "/" + a.get("protocol", "tcp")}, 1};
    return cmd_port(ctx, port);
  }
  CommandHelp help{"berth compose top [SERVICES...]", "Display the running processes", {}};
  ParsedArgs a = parse_command(inv, help);
  compose::Project project = load(g, {}, true);
  int status = 0;
  for (const auto& c : compose::project_containers(ctx.engine(), project.name, a.positionals)) {
    if (!c.running()) continue;
    std::cout << c.name << "\n";
    Invocation top{"top", {"top", c.id}, 1};
    status |= cmd_top(ctx, top);
    std::cout << "\n";
  }
  return status;
}

int compose_events(Context& ctx, ComposeGlobals& g, const Invocation& inv) {
  CommandHelp help{"berth compose events [OPTIONS] [SERVICE...]",
                   "Receive real time events from containers",
                   {{"json", 0, false, "Output events as a stream of json objects", ""},
                    {"since", 0, true, "Show all events created since timestamp", "string"},
                    {"until", 0, true, "Stream events until this timestamp", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  compose::Project project = load(g, {}, true);
  Invocation ev{
      "events", {"events", "--filter", std::string("label=") + compose::kProjectLabel + "=" + project.name}, 1};
  for (const auto& s : a.positionals)
    ev.args.insert(ev.args.end(), {"--filter", std::string("label=") + compose::kServiceLabel + "=" + s});
  if (a.has("since")) ev.args.insert(ev.args.end(), {"--since", a.get("since")});
  if (a.has("until")) ev.args.insert(ev.args.end(), {"--until", a.get("until")});
  // compose's JSON event: type, action, id, service, time and the name/image attributes only.
  if (a.has("json"))
    ev.args.insert(ev.args.end(),
                   {"--format",
                    "{\"action\":{{json .Action}},\"attributes\":{\"image\":{{json .Actor.Attributes.image}},"
                    "\"name\":{{json .Actor.Attributes.name}}},\"id\":{{json .Actor.ID}},\"service\":{{json (index "
                    ".Actor.Attributes \"com.docker.compose.service\")}},\"time\":{{json .time}},\"type\":{{json "
                    ".Type}}}"});
  return cmd_events(ctx, ev);
}

void print_compose_usage(std::ostream& out) {
  out << "\nUsage:  berth compose [OPTIONS] COMMAND\n\nDefine and run multi-container applications\n\nOptions:\n";
  for (const auto& f : kGlobalFlags) {
    std::string left = f.shorthand ? std::string("  -") + f.shorthand + ", " : std::string("      ");
    left += "--" + f.name + (f.takes_value ? " " + f.value_name : "");
    if (left.size() < 34) left.resize(34, ' ');
    out << left << " " << f.help << "\n";
  }
  out << "\nCommands:\n"
         "  build       Build or rebuild services\n"
         "  config      Parse, resolve and render compose file in canonical format\n"
         "  down        Stop and remove containers, networks\n"
         "  events      Receive real time events from containers\n"
         "  exec        Execute a command in a running container\n"
         "  kube        Write Kubernetes manifests for the project\n"
         "  logs        View output from containers\n"
         "  ls          List running compose projects\n"
         "  port        Print the public port for a port binding\n"
         "  ps          List containers\n"
         "  pull        Pull service images\n"
         "  restart     Restart service containers\n"
         "  rm          Removes stopped service containers\n"
         "  run         Run a one-off command on a service\n"
         "  start       Start services\n"
         "  stop        Stop services\n"
         "  top         Display the running processes\n"
         "  up          Create and start containers\n"
         "  version     Show the Compose version information\n";
}

}  // namespace

compose::Backend compose_backend(Context& ctx, const std::string& pull, bool no_cache) {
  compose::Backend b{ctx.engine(), ctx.volumes(), ctx.images(),
                     [&ctx, pull](const std::string& name) {
                       ensure_image_present(ctx, name, pull, [&name](const image::Reference&, bool pulled) {
                         std::cerr << " " << name << (pulled ? " Pulled\n" : " Pulling\n");
                       });
                     },
                     std::cerr};
  b.build_image = [&ctx, no_cache](const std::string& service, const json& build, const std::string& image) {
#ifdef BERTH_LIGHT
    (void)service, (void)build, (void)image, (void)no_cache;
    exec_full(ctx);  // the builder (libarchive) is in berth-full, which runs the whole command
#else
    build_for_compose(ctx, service, build, image, no_cache);
#endif
  };
  return b;
}

int cmd_compose(Context& ctx, const Invocation& inv) {
  ParsedArgs a = parse_args(inv.args, inv.start, kGlobalFlags, false);
  size_t sub_at = inv.args.size() - a.positionals.size();
  bool help = a.has("help");
  if (a.positionals.empty() || help) {
    print_compose_usage(help ? std::cout : std::cerr);
    return help ? 0 : 125;
  }
  ComposeGlobals g;
  g.load.files = a.all("file");
  g.load.project_name = a.get("project-name");
  g.load.project_directory = a.get("project-directory");
  g.load.env_files = a.all("env-file");
  g.load.profiles = a.all("profile");
  Invocation sub;
  sub.name = "compose " + a.positionals[0];
  sub.args = std::vector<std::string>(inv.args.begin() + static_cast<long>(sub_at), inv.args.end());
  sub.start = 1;
  const std::string& what = a.positionals[0];
  if (what == "up") return compose_up(ctx, g, sub);
  if (what == "down") return compose_down(ctx, g, sub);
  if (what == "ps") return compose_ps(ctx, g, sub);
  if (what == "logs") return compose_logs(ctx, g, sub);
  if (what == "start" || what == "stop" || what == "restart" || what == "rm") return compose_simple(ctx, g, sub, what);
  if (what == "exec") return compose_exec(ctx, g, sub);
  if (what == "run") return compose_run(ctx, g, sub);
  if (what == "config" || what == "convert") return compose_config(ctx, g, sub);
  if (what == "pull") return compose_pull(ctx, g, sub);
  if (what == "build") return compose_build(ctx, g, sub);
  if (what == "ls") return compose_ls(ctx, g, sub);
  if (what == "top" || what == "port") return compose_forward(ctx, g, sub, what);
  if (what == "events") return compose_events(ctx, g, sub);
  if (what == "kube") return compose_kube(g.load, sub);
  if (what == "version") {
    std::cout << "berth compose version 0.1.0 (compose specification)\n";
    return 0;
  }
  if (what == "help") {
    print_compose_usage(std::cout);
    return 0;
  }
  throw UsageError("unknown command \"" + what + "\" for \"berth compose\"");
}

}  // namespace berth::cli
