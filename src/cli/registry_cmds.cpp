// Registry commands: pull, push, login, logout.
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <mutex>

#include "cli/handlers.hpp"
#include "image/auth_config.hpp"
#include "image/inspect.hpp"
#include "image/pull.hpp"
#include "image/push.hpp"
#include "image/reference.hpp"
#include "image/registry.hpp"
#include "image/store.hpp"
#include "util/humanize.hpp"

namespace berth::cli {

namespace {

// Docker's pull output: plain status lines when stdout is not a terminal, one live line
// per layer when it is.
class PullPrinter {
 public:
  explicit PullPrinter(bool quiet) : quiet_(quiet), tty_(isatty(STDOUT_FILENO)) {}

  void event(const image::PullEvent& e) {
    if (quiet_) return;
    using K = image::PullEvent::Kind;
    switch (e.kind) {
      case K::Resolved:
        return;
      case K::LayerExists:
        line(e.layer, "Already exists");
        return;
      case K::LayerWaiting:
        line(e.layer, "Pulling fs layer");
        return;
      case K::LayerBytes:
        if (tty_) line(e.layer, "Downloading  " + bar(e.current, e.total));
        return;
      case K::LayerDone:
        line(e.layer, "Pull complete");
        return;
    }
  }

 private:
  void line(const std::string& id, const std::string& status) {
    if (!tty_) {
      std::cout << id << ": " << status << "\n" << std::flush;
      return;
    }
    auto it = rows_.find(id);
    if (it == rows_.end()) {
      rows_[id] = order_.size();
      order_.push_back(id);
      std::cout << id << ": " << status << "\n" << std::flush;
      return;
    }
    size_t up = order_.size() - it->second;
    // Up to the layer's line, rewrite it, back down.
    std::cout << "\033[" << up << "A\r\033[2K" << id << ": " << status << "\r\033[" << up << "B" << std::flush;
  }

  // Docker's progress bar: [=====>     ] 12.3MB/45.6MB.
  static std::string bar(int64_t current, int64_t total) {
    constexpr int kWidth = 50;
    int filled = total > 0 ? static_cast<int>(kWidth * std::min(current, total) / total) : 0;
    std::string b = "[" + std::string(static_cast<size_t>(filled), '=');
    if (filled < kWidth) b += ">" + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
    return b + "] " + human_size(double(current), 3) + "/" + human_size(double(total), 3);
  }

  bool quiet_, tty_;
  std::map<std::string, size_t> rows_;
  std::vector<std::string> order_;
};

std::string read_password_from_tty(const std::string& prompt) {
  std::cerr << prompt << std::flush;
  termios old{};
  bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
  if (tty) {
    termios t = old;
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
  }
  std::string pw;
  std::getline(std::cin, pw);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
  }
  return pw;
}

// docker login SERVER takes a bare host ("localhost:5000") or a URL ("https://host/v1/").
std::string server_domain(const std::string& server) {
  std::string s = server;
  for (const char* scheme : {"https://", "http://"})
    if (s.rfind(scheme, 0) == 0) s = s.substr(std::string(scheme).size());
  s = s.substr(0, s.find('/'));
  if (s == "index.docker.io" || s == "registry-1.docker.io") s = "docker.io";
  if (s.empty()) throw UsageError("invalid registry address \"" + server + "\"");
  return s;
}

}  // namespace

image::RegistryOptions Context::registry_options(const image::Reference& ref) const {
  image::RegistryOptions o;
  o.insecure_registries = insecure_registries;
  o.credentials = image::load_credentials(ref.domain, auth_config_path());
  return o;
}

int cmd_pull(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth pull [OPTIONS] NAME[:TAG|@DIGEST]",
                   "Download an image from a registry",
                   {{"all-tags", 'a', false, "Download all tagged images in the repository (not supported)", ""},
                    {"platform", 0, true, "Set platform if server is multi-platform capable", "string"},
                    {"quiet", 'q', false, "Suppress verbose output", ""},
                    {"disable-content-trust", 0, false, "Skip image verification (default true)", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  if (a.has("all-tags")) throw UsageError("--all-tags is not supported by berth");
  image::Reference ref = image::parse_reference(a.positionals[0]);
  image::PullOptions opts;
  opts.registry = ctx.registry_options(ref);
  if (a.has("platform")) opts.platform = image::parse_platform(a.get("platform"));
  bool quiet = a.has("quiet");
  if (!quiet) {
    std::string path = ref.familiar_name();
    if (ref.domain == "docker.io" && path.find('/') == std::string::npos) path = "library/" + path;
    std::cout << (ref.digest.empty() ? ref.tag : ref.digest) << ": Pulling from " << path << "\n" << std::flush;
  }
  PullPrinter printer(quiet);
  image::PullResult r =
      image::pull_image(ctx.images(), ref, opts, [&](const image::PullEvent& e) { printer.event(e); });
  if (!quiet) {
    std::cout << "Digest: " << r.digest << "\n";
    std::cout << "Status: " << (r.downloaded ? "Downloaded newer image for " : "Image is up to date for ")
              << ref.familiar() << "\n";
  }
  std::cout << ref.str() << "\n";
  return 0;
}

int cmd_push(Context& ctx, const Invocation& inv) {
  CommandHelp help{
      "berth push [OPTIONS] NAME[:TAG]",
      "Upload an image to a registry",
      {{"all-tags", 'a', false, "Push all tags of an image to the repository (not supported)", ""},
       {"quiet", 'q', false, "Suppress verbose output", ""},
       {"chunk-size", 0, true, "Upload blobs in chunks of this many bytes (default: one request)", "bytes"},
       {"disable-content-trust", 0, false, "Skip image signing (default true)", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  if (a.has("all-tags")) throw UsageError("--all-tags is not supported by berth");
  image::Reference ref = image::parse_reference(a.positionals[0]);
  auto img = ctx.images().find(a.positionals[0]);
  if (!img) throw Error("An image does not exist locally with the tag: " + ref.familiar_name());
  image::PushOptions opts;
  opts.registry = ctx.registry_options(ref);
  if (a.has("chunk-size")) {
    try {
      opts.chunk_size = std::stoull(a.get("chunk-size"));
    } catch (...) {
      throw UsageError("invalid --chunk-size \"" + a.get("chunk-size") + "\"");
    }
  }
  bool quiet = a.has("quiet");
  if (!quiet) std::cout << "The push refers to repository [" << ref.name() << "]\n" << std::flush;
  image::PushResult r = image::push_image(ctx.images(), *img, ref, opts, [&](const image::PushEvent& e) {
    if (quiet || e.kind == image::PushEvent::Kind::Preparing) return;
    std::cout << e.layer << ": " << (e.kind == image::PushEvent::Kind::Exists ? "Layer already exists" : "Pushed")
              << "\n"
              << std::flush;
  });
  if (quiet)
    std::cout << ref.str() << "\n";
  else
    std::cout << (ref.digest.empty() ? ref.tag : ref.digest) << ": digest: " << r.digest << " size: " << r.size << "\n";
  return 0;
}

int cmd_login(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth login [OPTIONS] [SERVER]",
                   "Log in to a registry",
                   {{"username", 'u', true, "Username", "string"},
                    {"password", 'p', true, "Password", "string"},
                    {"password-stdin", 0, false, "Take the password from stdin", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 1);
  std::string domain = a.positionals.empty() ? "docker.io" : server_domain(a.positionals[0]);
  image::Credentials creds;
  creds.username = a.get("username");
  if (a.has("password") && a.has("password-stdin"))
    throw UsageError("--password and --password-stdin are mutually exclusive");
  if (a.has("password-stdin")) {
    if (creds.username.empty()) throw UsageError("Must provide --username with --password-stdin");
    std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    while (!all.empty() && (all.back() == '\n' || all.back() == '\r')) all.pop_back();
    creds.password = all;
  } else if (a.has("password")) {
    creds.password = a.get("password");
    std::cerr << "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n";
  }
  if (creds.username.empty()) {
    auto stored = image::load_credentials(domain, ctx.auth_config_path());
    std::cerr << "Username" << (stored ? " (" + stored->username + ")" : "") << ": " << std::flush;
    std::getline(std::cin, creds.username);
    if (creds.username.empty() && stored) creds.username = stored->username;
  }
  if (creds.username.empty()) throw Error("Non-null Username Required");
  if (creds.password.empty()) creds.password = read_password_from_tty("Password: ");
  if (creds.password.empty()) throw Error("Non-null Password Required");
  image::Reference probe = image::parse_reference(domain + "/berth-login-probe");
  image::RegistryOptions opts;
  opts.insecure_registries = ctx.insecure_registries;
  opts.credentials = creds;
  image::RegistryClient client(probe, opts);
  client.check_auth();
  image::store_credentials(domain, creds, ctx.auth_config_path());
  std::cout << "Login Succeeded\n";
  return 0;
}

int cmd_logout(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth logout [SERVER]", "Log out from a registry", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 1);
  std::string domain = a.positionals.empty() ? "docker.io" : server_domain(a.positionals[0]);
  std::string key = image::auth_server_key(domain);
  if (!image::erase_credentials(domain, ctx.auth_config_path())) {
    std::cout << "Not logged in to " << key << "\n";
    return 0;
  }
  std::cout << "Removing login credentials for " << key << "\n";
  return 0;
}

}  // namespace berth::cli
