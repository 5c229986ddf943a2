#include "cli/commands.hpp"

#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/context.hpp"
#include "cli/handlers.hpp"
#include "engine/engine.hpp"

namespace berth::cli {

// Commands that need libcurl or libarchive run in berth-full: the light `berth` starts without
// loading those libraries and their ~40 dependencies (most of a dynamic binary's start time).
#ifdef BERTH_LIGHT
#define HEAVY(handler) cmd_exec_full
#else
#define HEAVY(handler) handler
#endif

namespace {

struct Entry {
  std::vector<std::string> words;  // {"image", "ls"}
  Handler handler;
  std::string summary;  // empty: an alias, not listed
};

int cmd_completion(Context&, const Invocation& inv);

const std::vector<Entry>& table() {
  static const std::vector<Entry> t = {
      {{"pull"}, HEAVY(cmd_pull), "Download an image from a registry"},
      {{"compose"}, cmd_compose, "Define and run multi-container applications"},
      {{"kube", "play"}, cmd_kube_play, "Run Kubernetes objects from YAML on this machine"},
      {{"kube", "down"}, cmd_kube_down, "Remove what kube play runs for the YAML"},
      {{"push"}, HEAVY(cmd_push), "Upload an image to a registry"},
      {{"images"}, cmd_images, "List images"},
      {{"tag"}, cmd_tag, "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"},
      {{"rmi"}, cmd_rmi, "Remove one or more images"},
      {{"history"}, cmd_history, "Show the history of an image"},
      {{"save"}, HEAVY(cmd_save), "Save one or more images to a tar archive"},
      {{"load"}, HEAVY(cmd_load), "Load an image from a tar archive"},
      {{"import"}, HEAVY(cmd_import), "Import the contents from a tarball to create a filesystem image"},
      {{"login"}, HEAVY(cmd_login), "Log in to a registry"},
      {{"logout"}, HEAVY(cmd_logout), "Log out from a registry"},
      {{"image", "ls"}, cmd_images, "List images"},
      {{"image", "list"}, cmd_images, ""},
      {{"image", "pull"}, HEAVY(cmd_pull), "Download an image from a registry"},
      {{"image", "push"}, HEAVY(cmd_push), "Upload an image to a registry"},
      {{"image", "inspect"}, cmd_image_inspect, "Display detailed information on one or more images"},
      {{"image", "tag"}, cmd_tag, "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"},
      {{"image", "rm"}, cmd_rmi, "Remove one or more images"},
      {{"image", "remove"}, cmd_rmi, ""},
      {{"image", "prune"}, cmd_image_prune, "Remove unused images"},
      {{"image", "history"}, cmd_history, "Show the history of an image"},
      {{"image", "mount"}, cmd_image_mount, "Mount an image's root filesystem read-only"},
      {{"image", "unmount"}, cmd_image_unmount, "Unmount an image mounted with 'berth image mount'"},
      {{"image", "save"}, HEAVY(cmd_save), "Save one or more images to a tar archive"},
      {{"image", "load"}, HEAVY(cmd_load), "Load an image from a tar archive"},
      {{"image", "import"}, HEAVY(cmd_import), "Import the contents from a tarball to create a filesystem image"},
      {{"commit"}, HEAVY(cmd_commit), "Create a new image from a container's changes"},
      {{"container", "commit"}, HEAVY(cmd_commit), "Create a new image from a container's changes"},
      {{"build"}, HEAVY(cmd_build), "Build an image from a Dockerfile"},
      {{"image", "build"}, HEAVY(cmd_build), "Build an image from a Dockerfile"},
      {{"builder", "build"}, HEAVY(cmd_build), ""},
      {{"create"}, cmd_create, "Create a new container"},
      {{"run"}, cmd_run, "Create and run a new container from an image"},
      {{"start"}, cmd_start, "Start one or more stopped containers"},
      {{"stop"}, cmd_stop, "Stop one or more running containers"},
      {{"restart"}, cmd_restart, "Restart one or more containers"},
      {{"kill"}, cmd_kill, "Kill one or more running containers"},
      {{"rm"}, cmd_rm, "Remove one or more containers"},
      {{"wait"}, cmd_wait, "Block until one or more containers stop, then print their exit codes"},
      {{"rename"}, cmd_rename, "Rename a container"},
      {{"pause"}, cmd_pause, "Pause all processes within one or more containers"},
      {{"update"}, cmd_update, "Update configuration of one or more containers"},
      {{"unpause"}, cmd_unpause, "Unpause all processes within one or more containers"},
      {{"ps"}, cmd_ps, "List containers"},
      {{"inspect"}, cmd_inspect, "Return low-level information on Docker objects"},
      {{"logs"}, cmd_logs, "Fetch the logs of a container"},
      {{"exec"}, cmd_exec, "Execute a command in a running container"},
      {{"container", "exec"}, cmd_exec, "Execute a command in a running container"},
      {{"cp"}, HEAVY(cmd_cp), "Copy files/folders between a container and the local filesystem"},
      {{"diff"}, cmd_diff, "Inspect changes to files or directories on a container's filesystem"},
      {{"top"}, cmd_top, "Display the running processes of a container"},
      {{"stats"}, cmd_stats, "Display a live stream of container(s) resource usage statistics"},
      {{"attach"}, cmd_attach, "Attach local standard input, output, and error streams to a running container"},
      {{"events"}, cmd_events, "Get real time events from the server"},
      {{"serve"}, HEAVY(cmd_serve), "Serve the Docker Engine API on a unix socket"},
      {{"info"}, cmd_info, "Display system-wide information"},
      {{"container", "cp"}, HEAVY(cmd_cp), "Copy files/folders between a container and the local filesystem"},
      {{"container", "diff"}, cmd_diff, "Inspect changes to files or directories on a container's filesystem"},
      {{"container", "top"}, cmd_top, "Display the running processes of a container"},
      {{"container", "stats"}, cmd_stats, "Display a live stream of container(s) resource usage statistics"},
      {{"container", "attach"},
       cmd_attach,
       "Attach local standard input, output, and error streams to a running container"},
      {{"container", "prune"}, cmd_container_prune, "Remove all stopped containers"},
      {{"system", "events"}, cmd_events, "Get real time events from the server"},
      {{"system", "info"}, cmd_info, "Display system-wide information"},
      {{"container", "create"}, cmd_create, "Create a new container"},
      {{"container", "run"}, cmd_run, "Create and run a new container from an image"},
      {{"container", "start"}, cmd_start, "Start one or more stopped containers"},
      {{"container", "stop"}, cmd_stop, "Stop one or more running containers"},
      {{"container", "restart"}, cmd_restart, "Restart one or more containers"},
      {{"container", "kill"}, cmd_kill, "Kill one or more running containers"},
      {{"container", "rm"}, cmd_rm, "Remove one or more containers"},
      {{"container", "remove"}, cmd_rm, ""},
      {{"container", "wait"}, cmd_wait, "Block until one or more containers stop, then print their exit codes"},
      {{"container", "rename"}, cmd_rename, "Rename a container"},
      {{"container", "pause"}, cmd_pause, "Pause all processes within one or more containers"},
      {{"container", "update"}, cmd_update, "Update configuration of one or more containers"},
      {{"container", "unpause"}, cmd_unpause, "Unpause all processes within one or more containers"},
      {{"container", "ls"}, cmd_ps, "List containers"},
      {{"container", "list"}, cmd_ps, ""},
      {{"container", "ps"}, cmd_ps, ""},
      {{"container", "inspect"}, cmd_inspect, "Display detailed information on one or more containers"},
      {{"container", "logs"}, cmd_logs, "Fetch the logs of a container"},
      {{"volume", "create"}, cmd_volume_create, "Create a volume"},
      {{"volume", "ls"}, cmd_volume_ls, "List volumes"},
      {{"volume", "list"}, cmd_volume_ls, ""},
      {{"volume", "inspect"}, cmd_volume_inspect, "Display detailed information on one or more volumes"},
      {{"volume", "rm"}, cmd_volume_rm, "Remove one or more volumes"},
      {{"volume", "remove"}, cmd_volume_rm, ""},
      {{"volume", "prune"}, cmd_volume_prune, "Remove unused local volumes"},
      {{"network", "create"}, cmd_network_create, "Create a network"},
      {{"network", "ls"}, cmd_network_ls, "List networks"},
      {{"network", "list"}, cmd_network_ls, ""},
      {{"network", "inspect"}, cmd_network_inspect, "Display detailed information on one or more networks"},
      {{"network", "rm"}, cmd_network_rm, "Remove one or more networks"},
      {{"network", "remove"}, cmd_network_rm, ""},
      {{"network", "prune"}, cmd_network_prune, "Remove all unused networks"},
      {{"network", "connect"}, cmd_network_connect, "Connect a container to a network"},
      {{"network", "disconnect"}, cmd_network_disconnect, "Disconnect a container from a network"},
      {{"network", "dns-serve"}, cmd_network_dns_serve, ""},
      {{"network", "cleanup"}, cmd_network_cleanup, ""},
      {{"port"}, cmd_port, "List port mappings or a specific mapping for the container"},
      {{"container", "port"}, cmd_port, "List port mappings or a specific mapping for the container"},
      {{"version"}, cmd_version, "Show the berth version information"},
      {{"system", "boot"}, cmd_system_boot, "Start the containers whose restart policy says so (at boot)"},
      {{"completion"}, cmd_completion, "Generate the autocompletion script for the specified shell"},
  };
  return t;
}

// Shell completion: command words from the table (flags come from each command's --help).
int cmd_completion(Context&, const Invocation& inv) {
  if (inv.args.size() != inv.start + 1)
    throw UsageError("\"berth completion\" requires exactly 1 argument: bash, zsh or fish");
  std::string shell = inv.args[inv.start];
  std::set<std::string> top;
  std::map<std::string, std::set<std::string>> sub;
  for (const auto& e : table()) {
    top.insert(e.words[0]);
    if (e.words.size() > 1) sub[e.words[0]].insert(e.words[1]);
  }
  top.insert("runtime");
  auto join = [](const std::set<std::string>& s) {
    std::string out;
    for (const auto& w : s) out += (out.empty() ? "" : " ") + w;
    return out;
  };
  if (shell == "bash") {
    std::cout << "# bash completion for berth\n_berth() {\n  local cur=${COMP_WORDS[COMP_CWORD]}\n"
                 "  if [ $COMP_CWORD -eq 1 ]; then\n    COMPREPLY=($(compgen -W \""
              << join(top) << "\" -- \"$cur\"))\n    return\n  fi\n  case ${COMP_WORDS[1]} in\n";
    for (const auto& [group, words] : sub)
      std::cout << "    " << group << ") [ $COMP_CWORD -eq 2 ] && COMPREPLY=($(compgen -W \"" << join(words)
                << "\" -- \"$cur\")) ;;\n";
    std::cout << "  esac\n}\ncomplete -F _berth berth\n";
  } else if (shell == "zsh") {
    std::cout << "#compdef berth\n_berth() {\n  if (( CURRENT == 2 )); then\n    compadd " << join(top)
              << "\n    return\n  fi\n  case $words[2] in\n";
    for (const auto& [group, words] : sub)
      std::cout << "    " << group << ") (( CURRENT == 3 )) && compadd " << join(words) << " ;;\n";
    std::cout << "  esac\n}\ncompdef _berth berth\n";
  } else if (shell == "fish") {
    std::cout << "# fish completion for berth\ncomplete -c berth -f -n __fish_use_subcommand -a \"" << join(top)
              << "\"\n";
    for (const auto& [group, words] : sub)
      std::cout << "complete -c berth -f -n \"__fish_seen_subcommand_from " << group << "\" -a \"" << join(words)
                << "\"\n";
  } else {
    throw UsageError("unsupported shell \"" + shell + "\": bash, zsh or fish");
  }
  return 0;
}

void print_usage(std::ostream& out, const std::string& group = "") {
  out << "Usage:  berth [OPTIONS] COMMAND\n\n"
         "A container engine that keeps your data.\n\n"
         "Options:\n"
         "      --root string                Data root (default $BERTH_ROOT or /var/lib/berth)\n"
         "      --config string              Location of client config files (default ~/.docker)\n"
         "      --insecure-registry string   Registry allowed over plain HTTP (repeatable)\n"
         "  -D, --debug                      Enable debug output\n\n"
         "Commands:\n";
  for (const auto& e : table()) {
    if (e.summary.empty()) continue;
    if (!group.empty() && e.words[0] != group) continue;
    if (group.empty() && e.words.size() > 1) continue;
    std::string name = e.words.back();
    out << "  " << name << std::string(name.size() < 10 ? 10 - name.size() : 1, ' ') << e.summary << "\n";
  }
  if (group.empty())
    out << "\nManagement Commands:\n"
           "  container Manage containers\n"
           "  image     Manage images\n"
           "  network   Manage networks\n"
           "  volume    Manage volumes\n"
           "  system    Manage berth\n"
           "  runtime   The runc-compatible OCI runtime (also installed as berth-runtime)\n";
  out << "\nRun 'berth COMMAND --help' for more information on a command.\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  Context ctx;
  ctx.argv = args;
  const char* env_root = std::getenv("BERTH_ROOT");
  ctx.root = env_root && *env_root ? env_root : "/var/lib/berth";
  if (const char* insecure = std::getenv("BERTH_INSECURE_REGISTRIES")) {
    std::string s = insecure;
    size_t pos = 0;
    while (pos <= s.size()) {
      size_t comma = s.find(',', pos);
      std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      if (!item.empty()) ctx.insecure_registries.push_back(item);
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  std::string invocation_name;
  try {
    // Global flags come before the command.
    std::vector<FlagSpec> globals = {
        {"root", 0, true, "", ""},     {"config", 0, true, "", ""},  {"insecure-registry", 0, true, "", ""},
        {"debug", 'D', false, "", ""}, {"help", 'h', false, "", ""}, {"version", 'v', false, "", ""}};
    ParsedArgs g = parse_args(args, 1, globals, false);
    if (g.has("root")) ctx.root = g.get("root");
    if (g.has("config")) ctx.docker_config = g.get("config");
    for (const auto& r : g.all("insecure-registry")) ctx.insecure_registries.push_back(r);
    ctx.debug = g.has("debug");
    if (g.has("version")) {
      std::cout << "berth version 0.1.0\n";
      return 0;
    }
    size_t cmd_at = args.size() - g.positionals.size();
    if (g.positionals.empty()) {
      print_usage(g.has("help") ? std::cout : std::cerr);
      return g.has("help") ? 0 : 125;
    }
    std::string first = args[cmd_at];
    if (first == "help") {
      print_usage(std::cout);
      return 0;
    }
    const Entry* best = nullptr;
    for (const auto& e : table()) {
      if (cmd_at + e.words.size() > args.size()) continue;
      bool match = true;
      for (size_t i = 0; i < e.words.size(); i++) match = match && args[cmd_at + i] == e.words[i];
      if (match && (!best || e.words.size() > best->words.size())) best = &e;
    }
    if (!best) {
      bool is_group = false;
      for (const auto& e : table()) is_group = is_group || (e.words.size() > 1 && e.words[0] == first);
      if (is_group) {
        bool help = cmd_at + 1 >= args.size() || args[cmd_at + 1] == "--help" || args[cmd_at + 1] == "-h";
        if (help) {
          print_usage(cmd_at + 1 < args.size() ? std::cout : std::cerr, first);
          return cmd_at + 1 < args.size() ? 0 : 125;
        }
        throw UsageError("unknown command \"" + args[cmd_at + 1] + "\" for \"berth " + first + "\"");
      }
      throw UsageError("unknown command \"" + first + "\" for \"berth\"");
    }
    Invocation inv;
    for (const auto& w : best->words) inv.name += (inv.name.empty() ? "" : " ") + w;
    invocation_name = inv.name;
    inv.args = std::vector<std::string>(args.begin() + static_cast<long>(cmd_at), args.end());
    inv.start = best->words.size();
    return best->handler(ctx, inv);
  } catch (const UsageError& e) {
    std::cerr << "berth: " << e.what() << "\n";
    std::cerr << "See 'berth " << (invocation_name.empty() ? "" : invocation_name + " ") << "--help'.\n";
    return 125;
  } catch (const engine::StatusError& e) {
    std::cerr << "berth: " << e.what() << "\n";
    return e.status();
  } catch (const std::exception& e) {
    std::cerr << "berth: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace berth::cli
