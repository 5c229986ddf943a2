#include "cli/context.hpp"

#include <unistd.h>

#include <cstdlib>

#include "engine/engine.hpp"
#include "engine/process.hpp"
#include "engine/schema.hpp"
#include "engine/volumes.hpp"
#include "image/auth_config.hpp"
#include "image/reference.hpp"
#include "image/store.hpp"
#include "util/fs.hpp"

namespace berth::cli {

Context::Context() = default;
Context::~Context() = default;

image::ImageStore& Context::images() {
  if (!images_) {
    mkdir_p(root, 0711);
    images_ = std::make_unique<image::ImageStore>(root);
  }
  return *images_;
}

engine::VolumeStore& Context::volumes() {
  if (!volumes_) {
    engine::ensure_schema(images().db());
    volumes_ = std::make_unique<engine::VolumeStore>(images().db(), root);
    // Every volume command also reconciles containers (which reconciles volumes): a container
    // half-created by a crash must not keep a volume "in use".
    engine();
  }
  return *volumes_;
}

engine::Engine& Context::engine() {
  if (!engine_) {
    engine_ = std::make_unique<engine::Engine>(root, images(), volumes());
    if (reconcile) engine_->reconcile();
  }
  return *engine_;
}

std::string Context::auth_config_path() const {
  if (!docker_config.empty()) return docker_config + "/config.json";
  return "";  // auth_config's default: $DOCKER_CONFIG or ~/.docker
}

ParsedArgs parse_command(const Invocation& inv, const CommandHelp& help, bool interspersed) {
  std::vector<FlagSpec> specs = help.flags;
  specs.push_back({"help", 'h', false, "Print usage", ""});
  ParsedArgs p = parse_args(inv.args, inv.start, specs, interspersed);
  if (p.has("help")) {
    std::cout << "\nUsage:  " << help.usage << "\n\n" << help.summary << "\n";
    if (!help.flags.empty()) {
      std::cout << "\nOptions:\n";
      for (const auto& f : help.flags) {
        std::string left = f.shorthand ? std::string("  -") + f.shorthand + ", " : std::string("      ");
        left += "--" + f.name;
        if (f.takes_value) left += " " + (f.value_name.empty() ? std::string("string") : f.value_name);
        if (left.size() < 30) left.resize(30, ' ');
        std::cout << left << " " << f.help << "\n";
      }
    }
    std::exit(0);
  }
  return p;
}

void require_args(const Invocation& inv, const ParsedArgs& args, int min, int max) {
  int n = static_cast<int>(args.positionals.size());
  if (n >= min && (max < 0 || n <= max)) return;
  std::string want;
  if (min == max)
    want = "exactly " + std::to_string(min) + (min == 1 ? " argument" : " arguments");
  else if (max < 0)
    want = "at least " + std::to_string(min) + (min == 1 ? " argument" : " arguments");
  else
    want = "at least " + std::to_string(min) + " and at most " + std::to_string(max) + " arguments";
  throw UsageError("\"berth " + inv.name + "\" requires " + want);
}

void exec_full(const Context& ctx) {
  std::string full = engine::self_dir() + "berth-full";
  std::vector<std::string> args = ctx.argv;
  if (args.empty()) args.push_back("berth");
  args[0] = full;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  ::execv(full.c_str(), argv.data());
  throw_errno("exec " + full);
}

int cmd_exec_full(Context& ctx, const Invocation&) { exec_full(ctx); }

}  // namespace berth::cli
