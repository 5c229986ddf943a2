// More container commands: cp, diff, top, stats, attach, container prune, events, info.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <dirent.h>
#include <chrono>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "cli/filters.hpp"
#include "cli/format.hpp"
#include "cli/handlers.hpp"
#include "engine/cp.hpp"
#include "engine/diff.hpp"
#include "engine/engine.hpp"
#include "engine/events.hpp"
#include "engine/inspect.hpp"
#include "engine/process.hpp"
#include "engine/stats.hpp"
#include "image/store.hpp"
#include "logs/json_file.hpp"
#include "util/fs.hpp"
#include "util/humanize.hpp"
#include "util/sqlite.hpp"
#include "util/strings.hpp"

namespace berth::cli {

using nlohmann::json;

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The image's layer directories, top-most first (overlayfs order).
#ifndef BERTH_LIGHT
std::vector<std::string> layer_dirs(Context& ctx, const engine::Container& c) {
  std::vector<std::string> out;
  auto image = ctx.images().get(c.image_id);
  for (size_t i = image.layers.size(); i-- > 0;) out.push_back(ctx.images().layer_dir(image.layers[i].chain_id));
  return out;
}
#endif

// go-units BytesSize: binary units, %.4g.
std::string bytes_size(double size) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
  size_t i = 0;
  while (size >= 1024.0 && i + 1 < sizeof kUnits / sizeof kUnits[0]) {
    size /= 1024.0;
    i++;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g%s", size, kUnits[i]);
  return buf;
}

// Go's text/tabwriter with the given minimum cell width and padding of 3 spaces; the text after a
// line's last tab is not padded.
std::string tabwrite_min(const std::vector<std::vector<std::string>>& rows, size_t minwidth) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t j = 0; j + 1 < r.size(); j++) {
      if (width.size() <= j) width.resize(j + 1, 0);
      width[j] = std::max(width[j], std::max(minwidth, r[j].size() + 3));
    }
  std::string out;
  for (const auto& r : rows) {
    for (size_t j = 0; j < r.size(); j++) {
      out += r[j];
      if (j + 1 < r.size()) out += std::string(width[j] - r[j].size(), ' ');
    }
    out += "\n";
  }
  return out;
}

volatile sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

// SIGINT/SIGTERM end a following loop (events, stats) cleanly.
void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

void sleep_ms(int ms) {
  for (int i = 0; i < ms / 20 && !g_interrupted; i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

int64_t upper_size(const std::string& dir) {
  int64_t total = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  std::vector<std::string> subdirs;
  while (struct dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n == "." || n == "..") continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
    if (S_ISDIR(st.st_mode))
      subdirs.push_back(dir + "/" + n);
    else if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))
      total += st.st_size;
  }
  ::closedir(d);
  for (const auto& s : subdirs) total += upper_size(s);
  return total;
}

}  // namespace

// ---- cp ----

#ifndef BERTH_LIGHT
int cmd_cp(Context& ctx, const Invocation& inv) {
  CommandHelp help{
      "berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
      "Copy files/folders between a container and the local filesystem",
      {{"archive", 'a', false, "Archive mode (copy all uid/gid information)", ""},
       {"follow-link", 'L', false, "Always follow symbol link in SRC_PATH", ""},
       {"quiet", 'q', false,
        "Suppress progress output during copy. Progress output is automatically suppressed if no "
        "terminal is attached",
        ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 2, 2);
  // libarchive converts entry names through the locale's charset; in the "C" locale a UTF-8 name
  // does not convert and libarchive 3.6's tar writer crashes. (The API server does this per thread.)
  if (!::setlocale(LC_CTYPE, "C.UTF-8")) ::setlocale(LC_CTYPE, "C.utf8");
  // docker's splitCpArg: an absolute path or one starting with "." is local; else CONTAINER:PATH.
  auto split = [](const std::string& arg) -> std::pair<std::string, std::string> {
    if (arg.empty() || arg[0] == '/' || arg[0] == '.') return {"", arg};
    size_t colon = arg.find(':');
    if (colon == std::string::npos) return {"", arg};
    return {arg.substr(0, colon), arg.substr(colon + 1)};
  };
  auto [src_container, src_path] = split(a.positionals[0]);
  auto [dst_container, dst_path] = split(a.positionals[1]);
  if (src_path.empty()) throw Error("source can not be empty");
  if (dst_path.empty()) throw Error("destination can not be empty");
  if (!src_container.empty() && !dst_container.empty()) throw Error("copying between containers is not supported");
  if (src_container.empty() && dst_container.empty()) throw Error("must specify at least one container source");
  engine::cp::Options options;
  options.archive = a.has("archive");
  options.follow_link = a.has("follow-link");
  auto& engine = ctx.engine();
  engine::Container c = engine.get(src_container.empty() ? dst_container : src_container);
  auto tree = engine::cp::container_tree(engine, c, layer_dirs(ctx, c));
  int64_t bytes;
  std::string shown;
  if (!src_container.empty()) {
    bytes = engine::cp::copy_from(*tree, src_path, dst_path, options, 1);
    shown = dst_path;
  } else {
    bytes = engine::cp::copy_to(src_path, *tree, dst_path, a.positionals[1], options, 0);
    shown = a.positionals[1];
  }
  if (!a.has("quiet") && dst_path != "-" && ::isatty(2))
    std::cerr << "Successfully copied " << human_size(static_cast<double>(bytes)) << " to " << shown << "\n";
  return 0;
}

// ---- diff ----

#endif  // BERTH_LIGHT

int cmd_diff(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth diff CONTAINER", "Inspect changes to files or directories on a container's filesystem", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  auto& engine = ctx.engine();
  engine::Container c = engine.get(a.positionals[0]);
  auto changes = engine::changes_of(engine, ctx.images(), c);
  std::string out;
  for (const auto& ch : changes) out += std::string(1, ch.kind) + " " + ch.path + "\n";
  std::cout << out;
  return 0;
}

// ---- top ----

int cmd_top(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth top CONTAINER [ps OPTIONS]", "Display the running processes of a container", {}};
  ParsedArgs a = parse_command(inv, help, false);
  require_args(inv, a, 1, -1);
  auto& engine = ctx.engine();
  engine::Container c = engine.get(a.positionals[0]);
  if (!c.running()) throw Error("container " + c.id + " is not running");
  engine::ProcessTable table =
      engine::container_top(c.id, std::vector<std::string>(a.positionals.begin() + 1, a.positionals.end()));
  std::vector<std::vector<std::string>> rows = {table.titles};
  rows.insert(rows.end(), table.processes.begin(), table.processes.end());
  std::cout << tabwrite_min(rows, 20);
  return 0;
}

// ---- stats ----

namespace {

json stats_row(const engine::Container& c, const std::string& shown, const engine::StatsSample& before,
               const engine::StatsSample& after, bool trunc) {
  char buf[64];
  double cpu = 0.0;
  if (after.valid && before.valid && after.cpu_ns > before.cpu_ns && after.system_ns > before.system_ns)
    cpu = static_cast<double>(after.cpu_ns - before.cpu_ns) / static_cast<double>(after.system_ns - before.system_ns) *
          after.online_cpus * 100.0;
  std::snprintf(buf, sizeof buf, "%.2f%%", cpu);
  std::string cpu_text = buf;
  double mem_perc =
      after.mem_limit ? static_cast<double>(after.mem_usage) / static_cast<double>(after.mem_limit) * 100.0 : 0.0;
  std::snprintf(buf, sizeof buf, "%.2f%%", mem_perc);
  std::string mem_perc_text = buf;
  return {{"Container", shown},
          {"ID", trunc ? c.id.substr(0, 12) : c.id},
          {"Name", c.name},
          {"CPUPerc", cpu_text},
          {"MemUsage",
           bytes_size(static_cast<double>(after.mem_usage)) + " / " + bytes_size(static_cast<double>(after.mem_limit))},
          {"MemPerc", mem_perc_text},
          {"NetIO",
           human_size(static_cast<double>(after.net_rx), 3) + " / " + human_size(static_cast<double>(after.net_tx), 3)},
          {"BlockIO", human_size(static_cast<double>(after.blk_read), 3) + " / " +
                          human_size(static_cast<double>(after.blk_write), 3)},
          {"PIDs", std::to_string(after.pids)}};
}

}  // namespace

int cmd_stats(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth stats [OPTIONS] [CONTAINER...]",
                   "Display a live stream of container(s) resource usage statistics",
                   {{"all", 'a', false, "Show all containers (default shows just running)", ""},
                    {"format", 0, true, "Format output using a custom template", "string"},
                    {"no-stream", 0, false, "Disable streaming stats and only pull the first result", ""},
                    {"no-trunc", 0, false, "Do not truncate output", ""}}};
  ParsedArgs a = parse_command(inv, help);
  auto& engine = ctx.engine();
  bool stream = !a.has("no-stream");
  bool trunc = !a.has("no-trunc");
  std::map<std::string, std::string> headers = {{"Container", "CONTAINER"},
                                                {"ID", "CONTAINER ID"},
                                                {"Name", "NAME"},
                                                {"CPUPerc", "CPU %"},
                                                {"MemUsage", "MEM USAGE / LIMIT"},
                                                {"MemPerc", "MEM %"},
                                                {"NetIO", "NET I/O"},
                                                {"BlockIO", "BLOCK I/O"},
                                                {"PIDs", "PIDS"}};
  const std::string table =
      "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
  // Which containers, each with the name it is shown by.
  auto targets = [&]() {
    std::vector<std::pair<engine::Container, std::string>> out;
    if (!a.positionals.empty()) {
      for (const auto& ref : a.positionals) {
        engine::Container c = engine.get(ref);
        out.emplace_back(c, ref);
      }
    } else {
      for (auto& c : engine.list())
        if (a.has("all") || c.running()) out.emplace_back(c, c.id.substr(0, 12));
    }
    return out;
  };
  std::map<std::string, engine::StatsSample> previous;
  auto sample_all = [&](const std::vector<std::pair<engine::Container, std::string>>& list) {
    std::map<std::string, engine::StatsSample> out;
    for (const auto& [c, shown] : list)
      out[c.id] = c.running() ? engine::sample_stats(c.id, c.state == "paused" ? 0 : c.pid) : engine::StatsSample{};
    return out;
  };
  if (stream) catch_interrupts();
  bool first = true;
  while (!g_interrupted) {
    auto list = targets();
    if (first) {
      previous = sample_all(list);
      sleep_ms(stream ? 200 : 500);
      first = false;
    }
    auto current = sample_all(list);
    std::vector<json> rows;
    for (const auto& [c, shown] : list) {
      engine::StatsSample before = previous.count(c.id) ? previous[c.id] : engine::StatsSample{};
      rows.push_back(stats_row(c, shown, before, current[c.id], trunc));
    }
    previous = current;
    std::string out = format_list(a.get("format"), table, rows, headers);
    if (stream) out = "\033[2J\033[H" + out;
    std::cout << out << std::flush;
    if (!stream) break;
    sleep_ms(1000);
  }
  return 0;
}

// ---- attach ----

int cmd_attach(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth attach [OPTIONS] CONTAINER",
                   "Attach local standard input, output, and error streams to a running container",
                   {{"detach-keys", 0, true, "Override the key sequence for detaching a container", "string"},
                    {"no-stdin", 0, false, "Do not attach STDIN", ""},
                    {"sig-proxy", 0, false, "Proxy all received signals to the process (default true)", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  bool sig_proxy = true;
  for (size_t i = inv.start; i < inv.args.size(); i++) {
    const std::string& arg = inv.args[i];
    if (arg.rfind("--sig-proxy=", 0) == 0) sig_proxy = parse_bool(arg.substr(12), "--sig-proxy");
  }
  auto& engine = ctx.engine();
  engine::Container c = engine.get(a.positionals[0]);
  if (c.state == "paused") throw Error("You cannot attach to a paused container, unpause it first");
  if (!c.running()) throw Error("You cannot attach to a stopped container, start it first");
  const json& config = c.config["Config"];
  engine::AttachIo io;
  io.stdin_fd = !a.has("no-stdin") && config.value("OpenStdin", false) ? 0 : -1;
  io.tty = config.value("Tty", false);
  io.proxy_signals = sig_proxy && !io.tty;
  return engine.attach(c.id, io);
}

// ---- container prune ----

int cmd_container_prune(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth container prune [OPTIONS]",
                   "Remove all stopped containers",
                   {{"filter", 0, true, "Provide filter values (e.g. \"until=<timestamp>\")", "filter"},
                    {"force", 'f', false, "Do not prompt for confirmation", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  int64_t now = now_ns();
  std::optional<int64_t> until;
  std::vector<std::string> labels, not_labels;
  for (const auto& f : a.all("filter")) {
    size_t eq = f.find('=');
    if (eq == std::string::npos) throw UsageError("bad format of filter (expected name=value)");
    std::string key = f.substr(0, eq), value = f.substr(eq + 1);
    if (key == "until") {
      until = logs::parse_time_arg(value, now);
    } else if (key == "label") {
      labels.push_back(value);
    } else if (key == "label!") {
      not_labels.push_back(value);
    } else {
      throw Error("invalid filter '" + key + "'");
    }
  }
  if (!a.has("force")) {
    std::cout << "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
              << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    std::string t(trim(answer));
    if (t != "y" && t != "Y" && t != "yes" && t != "Yes" && t != "YES") return 0;
  }
  auto& engine = ctx.engine();
  std::vector<std::string> deleted;
  int64_t reclaimed = 0;
  int status = 0;
  for (const auto& c : engine.list()) {
    if (c.running() || c.state == "removing" || c.state == "creating") continue;
    if (until && c.created_ns >= *until) continue;
    json cl = c.config.contains("Config") ? c.config["Config"].value("Labels", json::object()) : json::object();
    bool keep = true;
    for (const auto& l : labels) keep = keep && label_matches(cl, l);
    for (const auto& l : not_labels) keep = keep && !label_matches(cl, l);
    if (!keep) continue;
    int64_t size = upper_size(engine.container_dir(c.id) + "/upper");
    try {
      engine.remove(c.id, false, false);
      deleted.push_back(c.id);
      reclaimed += size;
    } catch (const engine::NotFound&) {
    } catch (const Error& e) {
      std::cerr << "Error response from daemon: " << e.what() << "\n";
      status = 1;
    }
  }
  if (!deleted.empty()) {
    std::string out = "Deleted Containers:\n";
    for (const auto& id : deleted) out += id + "\n";
    std::cout << out << "\n";
  }
  std::cout << "Total reclaimed space: " << human_size(static_cast<double>(reclaimed)) << "\n";
  return status;
}

// ---- events ----

namespace {

// docker's JSON field order (encoding/json follows the struct).
std::string event_json_line(const json& m) {
  nlohmann::ordered_json o;
  for (const char* k : {"status", "id", "from", "Type", "Action"})
    if (m.contains(k)) o[k] = m[k];
  nlohmann::ordered_json actor;
  actor["ID"] = m["Actor"]["ID"];
  actor["Attributes"] = m["Actor"]["Attributes"];
  o["Actor"] = actor;
  o["scope"] = m["scope"];
  o["time"] = m["time"];
  o["timeNano"] = m["timeNano"];
  return o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The template's data: Go's field names (Status, ID, From, Type, Action, Actor, Scope, Time, TimeNano).
json event_template_data(const json& m) {
  return {
      {"Status", m.value("status", "")}, {"ID", m.value("id", "")}, {"From", m.value("from", "")}, {"Type", m["Type"]},
      {"Action", m["Action"]},           {"Actor", m["Actor"]},     {"Scope", m["scope"]},         {"Time", m["time"]},
      {"TimeNano", m["timeNano"]}};
}

}  // namespace

int cmd_events(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth events [OPTIONS]",
                   "Get real time events from the server",
                   {{"filter", 'f', true, "Filter output based on conditions provided", "filter"},
                    {"format", 0, true, "Format output using a custom template", "string"},
                    {"since", 0, true, "Show all events created since timestamp", "string"},
                    {"until", 0, true, "Stream events until this timestamp", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  std::map<std::string, std::vector<std::string>> filters;
  static const std::set<std::string> known = {"config", "container", "daemon", "event",  "image",   "label", "network",
                                              "node",   "plugin",    "scope",  "secret", "service", "type",  "volume"};
  for (const auto& f : a.all("filter")) {
    size_t eq = f.find('=');
    if (eq == std::string::npos) throw UsageError("bad format of filter (expected name=value)");
    std::string key = f.substr(0, eq);
    if (!known.count(key)) throw Error("invalid filter '" + key + "'");
    filters[key].push_back(f.substr(eq + 1));
  }
  int64_t now = now_ns();
  std::optional<int64_t> since, until;
  if (a.has("since")) since = logs::parse_time_arg(a.get("since"), now);
  if (a.has("until")) until = logs::parse_time_arg(a.get("until"), now);
  if (since && until && *since > *until)
    throw Error("`since` time (" + a.get("since") + ") cannot be after `until` time (" + a.get("until") + ")");
  std::string format(trim(a.get("format")));
  bool json_lines = format == "json" || format == "{{json .}}";

  auto& db = ctx.engine().db();
  int64_t last_seq = 0;
  if (!since && !until) {
    // Only what happens from now on.
    last_seq = engine::last_event_seq(db);
  }
  bool follow = !until || *until > now;
  if (follow) catch_interrupts();
  for (;;) {
    bool past_until = false;
    std::vector<engine::EventRow> rows = engine::next_events(db, last_seq, since, until, filters, past_until);
    std::string out;
    for (const auto& e : rows) {
      json m = engine::event_message(e);
      if (json_lines) {
        out += event_json_line(m) + "\n";
      } else if (!format.empty()) {
        out += render_template(format, event_template_data(m)) + "\n";
      } else {
        out += rfc3339_nano_local(e.time_ns) + " " + e.type + " " + e.action + " " + e.actor;
        const json& attrs = m["Actor"]["Attributes"];
        if (!attrs.empty()) {
          std::string list;
          for (auto& [k, v] : attrs.items())  // nlohmann's object is sorted by key, as docker sorts
            list += (list.empty() ? "" : ", ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
          out += " (" + list + ")";
        }
        out += "\n";
      }
    }
    std::cout << out << std::flush;
    if (past_until || !follow || g_interrupted) break;
    if (until && now_ns() > *until) {
      follow = false;  // one last look for rows stamped before until
      continue;
    }
    sleep_ms(100);
    if (g_interrupted) break;
  }
  return 0;
}

// ---- info ----

namespace {}  // namespace

int cmd_info(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth info [OPTIONS]",
                   "Display system-wide information",
                   {{"format", 'f', true, "Format output using a custom template", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  json info = engine::system_info(ctx.engine(), ctx.images(), ctx.root, ctx.debug);
  if (a.has("format")) {
    std::string format = a.get("format");
    if (std::string(trim(format)) == "json") format = "{{json .}}";
    std::cout << render_template(format, info) << "\n";
    return 0;
  }
  std::ostringstream out;
  out << "Client:\n"
      << " Version:    0.1.0\n"
      << " Context:    default\n"
      << " Debug Mode: " << (ctx.debug ? "true" : "false") << "\n\n"
      << "Server:\n"
      << " Containers: " << info["Containers"] << "\n"
      << "  Running: " << info["ContainersRunning"] << "\n"
      << "  Paused: " << info["ContainersPaused"] << "\n"
      << "  Stopped: " << info["ContainersStopped"] << "\n"
      << " Images: " << info["Images"] << "\n"
      << " Server Version: 0.1.0\n"
      << " Storage Driver: overlay2\n"
      << "  Backing Filesystem: extfs\n"
      << "  Supports d_type: true\n"
      << "  Using metacopy: false\n"
      << "  Native Overlay Diff: true\n"
      << "  userxattr: false\n"
      << " Logging Driver: json-file\n"
      << " Cgroup Driver: cgroupfs\n"
      << " Cgroup Version: " << info["CgroupVersion"].get<std::string>() << "\n"
      << " Plugins:\n"
      << "  Volume: local\n"
      << "  Network: host null\n"
      << "  Log: json-file local\n"
      << " Swarm: inactive\n"
      << " Runtimes: berth-runtime\n"
      << " Default Runtime: berth-runtime\n"
      << " Init Binary: berth-init\n"
      << " Security Options:\n"
      << "  seccomp\n"
      << "   Profile: builtin\n"
      << " Kernel Version: " << info["KernelVersion"].get<std::string>() << "\n"
      << " Operating System: " << info["OperatingSystem"].get<std::string>() << "\n"
      << " OSType: linux\n"
      << " Architecture: " << info["Architecture"].get<std::string>() << "\n"
      << " CPUs: " << info["NCPU"] << "\n"
      << " Total Memory: " << bytes_size(info["MemTotal"].get<double>()) << "\n"
      << " Name: " << info["Name"].get<std::string>() << "\n"
      << " ID: " << info["ID"].get<std::string>() << "\n"
      << " Docker Root Dir: " << info["DockerRootDir"].get<std::string>() << "\n"
      << " Debug Mode: " << (ctx.debug ? "true" : "false") << "\n"
      << " Experimental: false\n"
      << " Live Restore Enabled: true\n\n";
  std::cout << out.str();
  return 0;
}

}  // namespace berth::cli
