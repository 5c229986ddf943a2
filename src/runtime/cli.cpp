// `berth runtime`: runc's command line. Hand-written rather than CLI11 because
// runc's (urfave/cli) shape matters to its callers: global flags before the
// command, `exec` stopping at the first positional, `--flag=value` and
// `--flag value`, and runc's exit codes (1 on any error).
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "runtime/runtime.hpp"
#include "runtime/state.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

namespace berth::runtime {
namespace {

char** g_full_argv = nullptr;

struct FlagSpec {
  std::vector<std::string> names;  // "--bundle", "-b"
  bool takes_value = false;
  bool repeatable = false;
};

struct Parsed {
  std::map<std::string, std::vector<std::string>> values;  // canonical name → values
  std::set<std::string> bools;
  std::vector<std::string> positionals;

  bool flag(const std::string& name) const { return bools.count(name) > 0; }
  std::string value(const std::string& name, const std::string& def = "") const {
    auto it = values.find(name);
    return it == values.end() || it->second.empty() ? def : it->second.back();
  }
  std::vector<std::string> all(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? std::vector<std::string>{} : it->second;
  }
};

class UsageError : public Error {
 public:
  using Error::Error;
};

bool truthy(const std::string& v) {
  return v == "true" || v == "1" || v == "t" || v == "T" || v == "TRUE" || v == "True";
}

// Parses args[i..]. stop_at_positional: everything after the first positional is positional (exec, ps).
Parsed parse_flags(const std::vector<std::string>& args, size_t start, const std::vector<FlagSpec>& specs,
                   bool stop_at_positional) {
  Parsed p;
  bool only_positionals = false;
  for (size_t i = start; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positionals || a.size() < 2 || a[0] != '-') {
      p.positionals.push_back(a);
      if (stop_at_positional) only_positionals = true;
      continue;
    }
    if (a == "--") {
      only_positionals = true;
      continue;
    }
    std::string name = a, inline_value;
    bool has_inline = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      inline_value = a.substr(eq + 1);
      has_inline = true;
    }
    // urfave accepts -flag as well as --flag.
    std::string alt = name.rfind("--", 0) == 0 ? name.substr(1) : "-" + name;
    const FlagSpec* spec = nullptr;
    for (const auto& s : specs)
      for (const auto& n : s.names)
        if (n == name || n == alt) spec = &s;
    if (!spec) throw UsageError("flag provided but not defined: " + name);
    const std::string& canonical = spec->names.front();
    if (spec->takes_value) {
      std::string v;
      if (has_inline) {
        v = inline_value;
      } else {
        if (i + 1 >= args.size()) throw UsageError("flag needs an argument: " + name);
        v = args[++i];
      }
      p.values[canonical].push_back(v);
    } else {
      if (!has_inline || truthy(inline_value)) p.bools.insert(canonical);
    }
  }
  return p;
}

void require_args(const Parsed& p, size_t n, const std::string& cmd, const std::string& usage) {
  if (p.positionals.size() < n)
    throw UsageError("\"" + cmd + "\" requires " +
                     (n == 1 ? "exactly 1 argument" : "at least " + std::to_string(n) + " arguments") +
                     "; usage: " + usage);
}

int to_int(const std::string& v, const std::string& flag) {
  try {
    size_t pos;
    int n = std::stoi(v, &pos);
    if (pos != v.size()) throw 1;
    return n;
  } catch (...) {
    throw UsageError("invalid value \"" + v + "\" for flag " + flag);
  }
}

std::string pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }

// runc prints tables with Go's tabwriter(minwidth 12, padding 3).
void print_table(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], std::max<size_t>(r[i].size() + 3, 12));
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) line += i + 1 == r.size() ? r[i] : pad(r[i], width[i]);
    std::cout << line << "\n";
  }
}

std::vector<FlagSpec> create_flags() {
  return {{{"--bundle", "-b"}, true},  {{"--console-socket"}, true},  {{"--pid-file"}, true},
          {{"--no-pivot"}, false},     {{"--no-new-keyring"}, false}, {{"--preserve-fds"}, true},
          {{"--detach", "-d"}, false}, {{"--keep"}, false},           {{"--no-subreaper"}, false}};
}

CreateOptions create_options(const Parsed& p) {
  CreateOptions o;
  o.id = p.positionals.at(0);
  o.bundle = p.value("--bundle", ".");
  o.console_socket = p.value("--console-socket");
  o.pid_file = p.value("--pid-file");
  o.no_pivot = p.flag("--no-pivot");
  if (!p.value("--preserve-fds").empty()) o.preserve_fds = to_int(p.value("--preserve-fds"), "--preserve-fds");
  if (o.preserve_fds < 0) throw UsageError("--preserve-fds must not be negative");
  return o;
}

const char* kUsage =
    "usage: berth runtime [global options] command [command options] [arguments...]\n"
    "\n"
    "A runc-compatible OCI runtime.\n"
    "\n"
    "commands:\n"
    "  spec      create a new specification file (config.json)\n"
    "  create    create a container\n"
    "  start     executes the user defined process in a created container\n"
    "  run       create and run a container\n"
    "  state     output the state of a container\n"
    "  kill      kill sends the specified signal (default: SIGTERM) to the container's init process\n"
    "  delete    delete any resources held by the container\n"
    "  exec      execute new process inside the container\n"
    "  list      lists containers started by berth with the given root\n"
    "  ps        ps displays the processes running inside a container\n"
    "  pause     pause suspends all processes inside the container\n"
    "  resume    resumes all processes that have been previously paused\n"
    "  update    update container resource constraints\n"
    "  features  show the enabled features\n"
    "\n"
    "global options:\n"
    "  --root value        root directory for storage of container state (default: /run/berth-runtime)\n"
    "  --log value         set the log file to write runtime logs to (default: stderr)\n"
    "  --log-format value  set the log format ('text' (default), or 'json')\n"
    "  --debug             enable debug logging\n"
    "  --systemd-cgroup    accepted for compatibility; cgroupfs is the driver\n"
    "  --version, -v       print the version\n";

int dispatch(const std::vector<std::string>& args, size_t cmd_index, GlobalOptions& g) {
  const std::string& cmd = args[cmd_index];
  size_t rest = cmd_index + 1;
  std::vector<FlagSpec> help = {{{"--help", "-h"}, false}};

  auto with_help = [&](std::vector<FlagSpec> specs) {
    specs.push_back(help.front());
    return specs;
  };

  if (cmd == "spec") {
    Parsed p = parse_flags(args, rest, with_help({{{"--bundle", "-b"}, true}, {{"--rootless"}, false}}), false);
    std::string bundle = p.value("--bundle", ".");
    std::string path = path_join(bundle, "config.json");
    if (path_exists(path)) throw Error("File " + path + " exists. Remove it first");
    write_file(path, default_spec_json(p.flag("--rootless")).dump(1, '\t') + "\n", O_WRONLY | O_CREAT | O_EXCL, 0666);
    return 0;
  }
  if (cmd == "create") {
    Parsed p = parse_flags(args, rest, with_help(create_flags()), false);
    require_args(p, 1, cmd, "berth runtime create [--bundle B] <container-id>");
    ensure_sealed_self(g_full_argv);
    create_container(g, create_options(p));
    return 0;
  }
  if (cmd == "run") {
    Parsed p = parse_flags(args, rest, with_help(create_flags()), false);
    require_args(p, 1, cmd, "berth runtime run [--bundle B] <container-id>");
    ensure_sealed_self(g_full_argv);
    return run_container(g, create_options(p), p.flag("--detach"), p.flag("--keep"));
  }
  if (cmd == "start" || cmd == "state" || cmd == "pause" || cmd == "resume") {
    Parsed p = parse_flags(args, rest, help, false);
    require_args(p, 1, cmd, "berth runtime " + cmd + " <container-id>");
    const std::string& id = p.positionals[0];
    if (cmd == "start") start_container(g, id);
    if (cmd == "state") std::cout << container_state(g, id).dump(2) << "\n";
    if (cmd == "pause") pause_container(g, id);
    if (cmd == "resume") resume_container(g, id);
    return 0;
  }
  if (cmd == "kill") {
    Parsed p = parse_flags(args, rest, with_help({{{"--all", "-a"}, false}}), false);
    require_args(p, 1, cmd, "berth runtime kill [--all] <container-id> [signal]");
    int sig = parse_signal(p.positionals.size() > 1 ? p.positionals[1] : "SIGTERM");
    kill_container(g, p.positionals[0], sig, p.flag("--all"));
    return 0;
  }
  if (cmd == "delete") {
    Parsed p = parse_flags(args, rest, with_help({{{"--force", "-f"}, false}}), false);
    require_args(p, 1, cmd, "berth runtime delete [--force] <container-id>");
    for (const auto& id : p.positionals) delete_container(g, id, p.flag("--force"));
    return 0;
  }
  if (cmd == "list") {
    Parsed p = parse_flags(args, rest, with_help({{{"--format", "-f"}, true}, {{"--quiet", "-q"}, false}}), false);
    nlohmann::json list = list_containers(g);
    std::string format = p.value("--format", "table");
    if (p.flag("--quiet")) {
      for (auto& c : list) std::cout << c["id"].get<std::string>() << "\n";
    } else if (format == "json") {
      std::cout << (list.empty() ? "null" : list.dump()) << "\n";
    } else if (format == "table") {
      std::vector<std::vector<std::string>> rows = {{"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"}};
      for (auto& c : list)
        rows.push_back(
            {c["id"], std::to_string(c["pid"].get<int>()), c["status"], c["bundle"], c["created"], c["owner"]});
      print_table(rows);
    } else {
      throw UsageError("invalid format option: " + format);
    }
    return 0;
  }
  if (cmd == "ps") {
    Parsed p = parse_flags(args, rest, with_help({{{"--format", "-f"}, true}}), true);
    require_args(p, 1, cmd, "berth runtime ps [--format table|json] <container-id> [ps options]");
    std::vector<pid_t> pids = container_pids(g, p.positionals[0]);
    std::string format = p.value("--format", "table");
    if (format == "json") {
      std::cout << nlohmann::json(pids).dump() << "\n";
      return 0;
    }
    if (format != "table") throw UsageError("invalid format option: " + format);
    std::string cmdline = "ps";
    if (p.positionals.size() > 1) {
      for (size_t i = 1; i < p.positionals.size(); ++i) {
        const std::string& a = p.positionals[i];
        if (a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=,%") !=
            std::string::npos)
          throw UsageError("invalid ps option: " + a);
        cmdline += " " + a;
      }
    } else {
      cmdline += " -ef";
    }
    FILE* f = ::popen(cmdline.c_str(), "r");
    if (!f) throw_errno("run " + cmdline);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    if (::pclose(f) != 0) throw Error(cmdline + " failed");
    std::vector<std::string> lines;
    size_t pos = 0;
    while (pos < out.size()) {
      size_t nl = out.find('\n', pos);
      if (nl == std::string::npos) nl = out.size();
      lines.push_back(out.substr(pos, nl - pos));
      pos = nl + 1;
    }
    if (lines.empty()) return 0;
    // Find the PID column in the header.
    std::vector<std::string> header;
    {
      std::istringstream hs(lines[0]);
      std::string w;
      while (hs >> w) header.push_back(w);
    }
    auto col = std::find(header.begin(), header.end(), "PID");
    if (col == header.end()) throw Error("couldn't find PID field in ps output");
    size_t idx = static_cast<size_t>(col - header.begin());
    std::cout << lines[0] << "\n";
    std::set<pid_t> want(pids.begin(), pids.end());
    for (size_t i = 1; i < lines.size(); ++i) {
      std::istringstream ls(lines[i]);
      std::string w;
      for (size_t k = 0; k <= idx && (ls >> w); ++k) {
      }
      try {
        if (want.count(std::stoi(w))) std::cout << lines[i] << "\n";
      } catch (...) {
      }
    }
    return 0;
  }
  if (cmd == "exec") {
    Parsed p = parse_flags(args, rest,
                           with_help({{{"--console-socket"}, true},
                                      {{"--cwd"}, true},
                                      {{"--env", "-e"}, true, true},
                                      {{"--tty", "-t"}, false},
                                      {{"--user", "-u"}, true},
                                      {{"--additional-gids", "-g"}, true, true},
                                      {{"--process", "-p"}, true},
                                      {{"--detach", "-d"}, false},
                                      {{"--pid-file"}, true},
                                      {{"--process-label"}, true},
                                      {{"--apparmor"}, true},
                                      {{"--no-new-privs"}, false},
                                      {{"--cap", "-c"}, true, true},
                                      {{"--preserve-fds"}, true},
                                      {{"--cgroup"}, true, true},
                                      {{"--ignore-paused"}, false}}),
                           true);
    require_args(p, 1, cmd, "berth runtime exec [options] <container-id> <command> [args...]");
    ExecOptions o;
    o.id = p.positionals[0];
    o.args.assign(p.positionals.begin() + 1, p.positionals.end());
    o.process_file = p.value("--process");
    o.env = p.all("--env");
    o.cwd = p.value("--cwd");
    o.user = p.value("--user");
    for (const auto& gid : p.all("--additional-gids"))
      o.additional_gids.push_back(static_cast<uint32_t>(to_int(gid, "--additional-gids")));
    o.caps = p.all("--cap");
    o.tty = p.flag("--tty");
    o.detach = p.flag("--detach");
    o.no_new_privs = p.flag("--no-new-privs");
    o.console_socket = p.value("--console-socket");
    o.pid_file = p.value("--pid-file");
    o.apparmor = p.value("--apparmor");
    o.process_label = p.value("--process-label");
    o.ignore_paused = p.flag("--ignore-paused");
    if (!p.value("--preserve-fds").empty()) o.preserve_fds = to_int(p.value("--preserve-fds"), "--preserve-fds");
    if (o.process_file.empty() && o.args.empty()) throw UsageError("exec: no command given (args or --process)");
    ensure_sealed_self(g_full_argv);
    try {
      return exec_in_container(g, o);
    } catch (const std::exception& e) {
      // runc exits 255 when exec fails, whatever the reason; callers rely on it.
      log::error(e.what());
      std::cerr << "berth: " << e.what() << "\n";
      return 255;
    }
  }
  if (cmd == "update") {
    Parsed p = parse_flags(args, rest,
                           with_help({{{"--resources", "-r"}, true},
                                      {{"--memory"}, true},
                                      {{"--memory-swap"}, true},
                                      {{"--memory-reservation"}, true},
                                      {{"--cpu-shares"}, true},
                                      {{"--cpu-quota"}, true},
                                      {{"--cpu-period"}, true},
                                      {{"--cpuset-cpus"}, true},
                                      {{"--cpuset-mems"}, true},
                                      {{"--pids-limit"}, true},
                                      {{"--blkio-weight"}, true},
                                      {{"--kernel-memory"}, true},
                                      {{"--kernel-memory-tcp"}, true},
                                      {{"--l3-cache-schema"}, true},
                                      {{"--mem-bw-schema"}, true}}),
                           false);
    require_args(p, 1, cmd, "berth runtime update [options] <container-id>");
    nlohmann::json doc = nlohmann::json::object();
    std::string res = p.value("--resources");
    if (!res.empty()) {
      std::string text;
      if (res == "-") {
        char buf[4096];
        ssize_t n;
        while ((n = ::read(0, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
      } else {
        text = read_file(res);
      }
      try {
        doc = nlohmann::json::parse(text);
      } catch (const nlohmann::json::parse_error& e) {
        throw Error("resources: invalid JSON: " + std::string(e.what()));
      }
    }
    auto num = [&](const char* flag, const char* section, const char* key) {
      std::string v = p.value(flag);
      if (v.empty()) return;
      try {
        doc[section][key] = std::stoll(v);
      } catch (...) {
        throw UsageError("invalid value \"" + v + "\" for flag " + flag);
      }
    };
    num("--memory", "memory", "limit");
    num("--memory-swap", "memory", "swap");
    num("--memory-reservation", "memory", "reservation");
    num("--cpu-shares", "cpu", "shares");
    num("--cpu-quota", "cpu", "quota");
    num("--cpu-period", "cpu", "period");
    num("--pids-limit", "pids", "limit");
    num("--blkio-weight", "blockIO", "weight");
    if (!p.value("--cpuset-cpus").empty()) doc["cpu"]["cpus"] = p.value("--cpuset-cpus");
    if (!p.value("--cpuset-mems").empty()) doc["cpu"]["mems"] = p.value("--cpuset-mems");
    update_container(g, p.positionals[0], parse_resources(doc, "resources"));
    return 0;
  }
  if (cmd == "features") {
    parse_flags(args, rest, help, false);
    std::cout << runtime_features().dump(4) << "\n";
    return 0;
  }
  if (cmd == "checkpoint" || cmd == "restore" || cmd == "events") throw Error(cmd + " is not supported by berth");
  throw UsageError("No help topic for '" + cmd + "'");
}

}  // namespace

void set_reexec_argv(char** argv) { g_full_argv = argv; }

int runtime_main(int argc, char** argv) {
  if (!g_full_argv) g_full_argv = argv;
  std::vector<std::string> args(argv, argv + argc);
  GlobalOptions g;
  std::string log_path, log_format = "text";
  bool debug = false;
  size_t i = 1;
  try {
    std::vector<FlagSpec> globals = {{{"--root"}, true},
                                     {{"--log"}, true},
                                     {{"--log-format"}, true},
                                     {{"--debug"}, false},
                                     {{"--systemd-cgroup"}, false},
                                     {{"--rootless"}, true},
                                     {{"--criu"}, true},
                                     {{"--help", "-h"}, false},
                                     {{"--version", "-v"}, false}};
    // Global flags end at the first positional: the command; everything after it is the command's.
    Parsed gp = parse_flags(args, 1, globals, true);
    i = args.size() - gp.positionals.size();
    if (!gp.value("--root").empty()) g.root = gp.value("--root");
    log_path = gp.value("--log");
    log_format = gp.value("--log-format", "text");
    debug = gp.flag("--debug");
    g.systemd_cgroup = gp.flag("--systemd-cgroup");
    if (log_format != "text" && log_format != "json") throw UsageError("invalid log-format: " + log_format);
    log::configure(log_path, log_format == "json" ? log::Format::Json : log::Format::Text, debug);
    if (gp.flag("--version")) {
      std::cout << "berth runtime version 0.1.0\nspec: 1.2.0\n";
      return 0;
    }
    if (gp.flag("--help") || i >= args.size() || args[i] == "help") {
      std::cout << kUsage;
      return i >= args.size() && !gp.flag("--help") ? 1 : 0;
    }
    // A relative root would change meaning once we chdir; pin it now.
    if (!g.root.empty() && g.root[0] != '/') {
      char cwd[4096];
      if (::getcwd(cwd, sizeof cwd)) g.root = path_join(cwd, g.root);
    }
    for (size_t k = i + 1; k < args.size(); ++k) {
      if (args[k] == "--") break;
      if (args[k] == "--help" || args[k] == "-h") {
        std::cout << kUsage;
        return 0;
      }
      if (args[i] == "exec" || args[i] == "ps") break;
    }
    return dispatch(args, i, g);
  } catch (const std::exception& e) {
    log::error(e.what());
    std::cerr << "berth: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace berth::runtime
