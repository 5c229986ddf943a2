// version and system boot.
#include <sys/utsname.h>

#include <iostream>

#include "cli/format.hpp"
#include "cli/handlers.hpp"
#include "engine/engine.hpp"

namespace berth::cli {

using nlohmann::json;

namespace {

constexpr const char* kVersion = "0.1.0";
// The Docker Engine API version berth's answers are shaped after.
constexpr const char* kApiVersion = "1.41";

}  // namespace

int cmd_version(Context&, const Invocation& inv) {
  CommandHelp help{"berth version [OPTIONS]",
                   "Show the berth version information",
                   {{"format", 'f', true, "Format output using a custom template", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  utsname u{};
  ::uname(&u);
  std::string arch = u.machine;
  if (arch == "x86_64") arch = "amd64";
  if (arch == "aarch64") arch = "arm64";
  json client = {{"Platform", {{"Name", "berth"}}},
                 {"Version", kVersion},
                 {"ApiVersion", kApiVersion},
                 {"Os", "linux"},
                 {"Arch", arch},
                 {"Experimental", false}};
  json server = {{"Platform", {{"Name", "berth"}}},
                 {"Version", kVersion},
                 {"ApiVersion", kApiVersion},
                 {"MinAPIVersion", "1.24"},
                 {"Os", "linux"},
                 {"Arch", arch},
                 {"KernelVersion", u.release},
                 {"Components", json::array({{{"Name", "Engine"}, {"Version", kVersion}}})}};
  json all = {{"Client", client}, {"Server", server}};
  if (a.has("format")) {
    std::cout << render_template(a.get("format"), all, MissingKey::Error) << "\n";
    return 0;
  }
  std::cout << "Client:\n"
            << " Version:           " << kVersion << "\n"
            << " API version:       " << kApiVersion << "\n"
            << " OS/Arch:           linux/" << arch << "\n\n"
            << "Server: berth\n"
            << " Engine:\n"
            << "  Version:          " << kVersion << "\n"
            << "  API version:      " << kApiVersion << " (minimum version 1.24)\n"
            << "  OS/Arch:          linux/" << arch << "\n"
            << "  Kernel:           " << u.release << "\n";
  return 0;
}

int cmd_system_boot(Context& ctx, const Invocation& inv) {
  CommandHelp help{
      "berth system boot", "Reconcile after a reboot and start the containers whose restart policy says so", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  for (const auto& id : ctx.engine().boot()) std::cout << id << "\n";
  return 0;
}

}  // namespace berth::cli
