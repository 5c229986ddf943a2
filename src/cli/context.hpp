// What every `berth` command handler gets: global options and lazily opened stores.
#pragma once

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/flags.hpp"

namespace berth::image {
class ImageStore;
struct Reference;
struct RegistryOptions;
}  // namespace berth::image

namespace berth::engine {
class Engine;
class VolumeStore;
}  // namespace berth::engine

namespace berth::cli {

struct Context {
  std::string root;                              // --root, $BERTH_ROOT, /var/lib/berth
  std::vector<std::string> insecure_registries;  // --insecure-registry, $BERTH_INSECURE_REGISTRIES (comma-separated)
  std::string docker_config;                     // --config, $DOCKER_CONFIG: the dir holding config.json
  bool debug = false;
  // Whether the first engine() call reconciles (off for commands the engine itself runs in the
  // background, which must not race a user's command over another container's leftovers).
  bool reconcile = true;
  std::vector<std::string> argv;  // the command line as given (exec_full re-runs it)

  image::ImageStore& images();
  // The volume store on images()'s state.db; opening it reconciles crashed volume changes.
  engine::VolumeStore& volumes();
  // The container engine; the first call reconciles what crashed commands left.
  engine::Engine& engine();
  // Registry options for ref: insecure registries and the stored credentials for its registry.
  image::RegistryOptions registry_options(const image::Reference& ref) const;
  // Path of the credentials file (config.json in docker's format).
  std::string auth_config_path() const;

  Context();
  ~Context();

 private:
  std::unique_ptr<image::ImageStore> images_;
  std::unique_ptr<engine::VolumeStore> volumes_;  // after images_: destroyed first, it uses its db
  std::unique_ptr<engine::Engine> engine_;
};

// One command invocation: args[0..start) are the command words ("image", "ls").
struct Invocation {
  std::string name;  // "image ls"
  std::vector<std::string> args;
  size_t start = 0;
};

struct CommandHelp {
  std::string usage;    // "berth image ls [OPTIONS] [REPOSITORY[:TAG]]"
  std::string summary;  // one line
  std::vector<FlagSpec> flags;
};

// Parses the invocation's flags (adding --help); prints help and exits 0 on --help.
ParsedArgs parse_command(const Invocation& inv, const CommandHelp& help, bool interspersed = true);
// Throws UsageError unless the positional count is within [min, max] (max < 0: unbounded).
void require_args(const Invocation& inv, const ParsedArgs& args, int min, int max);

using Handler = int (*)(Context&, const Invocation&);

// Re-runs this command line with berth-full (next to this binary), which has the registry client
// and archive code; does not return.
[[noreturn]] void exec_full(const Context& ctx);
int cmd_exec_full(Context& ctx, const Invocation&);

}  // namespace berth::cli
