// `berth build`: docker build's command line over build::build_image.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "build/build.hpp"
#include "cli/cli_util.hpp"
#include "cli/compose_cli.hpp"
#include "cli/handlers.hpp"
#include "image/oci.hpp"
#include "image/reference.hpp"
#include "image/store.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

namespace berth::cli {

namespace {

std::string read_all(int fd) {
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read standard input");
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::map<std::string, std::string> key_values(const std::vector<std::string>& list, bool from_env) {
  std::map<std::string, std::string> out;
  for (const auto& kv : list) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      // --build-arg NAME: the value of NAME in this environment, or nothing when unset.
      if (!from_env) {
        out[kv] = "";
        continue;
      }
      if (const char* v = std::getenv(kv.c_str())) out[kv] = v;
      continue;
    }
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

}  // namespace

int cmd_build(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth build [OPTIONS] PATH | -",
                   "Build an image from a Dockerfile",
                   {{"tag", 't', true, "Name and optionally a tag in the \"name:tag\" format", "list"},
                    {"file", 'f', true, "Name of the Dockerfile (Default is \"PATH/Dockerfile\")", "string"},
                    {"build-arg", 0, true, "Set build-time variables", "list"},
                    {"target", 0, true, "Set the target build stage to build", "string"},
                    {"no-cache", 0, false, "Do not use cache when building the image", ""},
                    {"pull", 0, false, "Always attempt to pull a newer version of the image", ""},
                    {"label", 0, true, "Set metadata for an image", "list"},
                    {"quiet", 'q', false, "Suppress the build output and print image ID on success", ""},
                    {"progress", 0, true, "Set type of progress output (auto, plain, tty)", "string"},
                    {"iidfile", 0, true, "Write the image ID to the file", "string"},
                    {"platform", 0, true, "Set platform if server is multi-platform capable", "string"},
                    {"network", 0, true, "Set the networking mode for the RUN instructions during build", "string"},
                    {"rm", 0, false, "Remove intermediate containers after a successful build (default true)", ""},
                    {"force-rm", 0, false, "Always remove intermediate containers", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  std::string progress = a.get("progress", "auto");
  if (progress != "auto" && progress != "plain" && progress != "tty")
    throw UsageError("invalid --progress \"" + progress + "\": use auto, plain or tty");
  if (a.has("platform") && !a.get("platform").empty()) {
    image::Platform want = image::parse_platform(a.get("platform"));
    image::Platform host = image::host_platform();
    if (want.os != host.os || want.architecture != host.architecture)
      throw UsageError("--platform " + a.get("platform") + ": berth builds for this machine's platform only (" +
                       host.os + "/" + host.architecture + ")");
  }
  build::BuildOptions o;
  o.tags = a.all("tag");
  for (const auto& t : o.tags) {
    try {
      image::Reference r = image::parse_reference(t);
      if (!r.digest.empty()) throw Error("a tag cannot carry a digest");
    } catch (const Error& e) {
      throw UsageError("invalid argument \"" + t + "\" for \"-t, --tag\" flag: " + e.what());
    }
  }
  o.build_args = key_values(a.all("build-arg"), true);
  o.labels = key_values(a.all("label"), false);
  o.target = a.get("target");
  o.no_cache = a.has("no-cache");
  if (a.has("network") && !a.get("network").empty()) o.network = a.get("network");
  o.force_remove = a.has("force-rm");
  for (size_t i = inv.start; i < inv.args.size(); i++)  // a default-true bool: only "=false" turns it off
    if (inv.args[i].rfind("--rm=", 0) == 0) o.remove_intermediate = parse_bool(inv.args[i].substr(5), "--rm");
  bool quiet = a.has("quiet");

  const std::string& path = a.positionals[0];
  // A context read from a tar is unpacked into the build's scratch directory.
  std::optional<build::ScratchDir> scratch;
  std::string temp_context;
  std::string dockerfile = a.get("file");
  auto make_temp = [&] {
    scratch.emplace(ctx.root);
    temp_context = scratch->path() + "/context";
    mkdir_p(temp_context, 0700);
    return temp_context;
  };
  if (path == "-") {
    if (dockerfile == "-") throw UsageError("invalid argument: can't use stdin for both build context and dockerfile");
    std::string head(512, '\0');
    size_t got = 0;
    while (got < head.size()) {
      ssize_t n = ::read(STDIN_FILENO, head.data() + got, head.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    head.resize(got);
    if (build::is_archive(head)) {
      // Put the bytes already read back in front of the rest through a pipe-less temp file.
      std::string tar_path = make_temp() + ".tar";
      {
        UniqueFd out = open_or_throw(tar_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        write_all(out.get(), head, tar_path);
        char buf[65536];
        for (ssize_t n; (n = ::read(STDIN_FILENO, buf, sizeof buf)) != 0;) {
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) throw_errno("read standard input");
          write_all(out.get(), std::string_view(buf, static_cast<size_t>(n)), tar_path);
        }
      }
      UniqueFd in = open_or_throw(tar_path, O_RDONLY | O_CLOEXEC);
      ::unlink(tar_path.c_str());
      build::extract_context(in.get(), temp_context);
      o.context_dir = temp_context;
    } else {
      o.dockerfile_text = head + read_all(STDIN_FILENO);
      o.context_dir = make_temp();
    }
  } else {
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0) throw Error("unable to prepare context: path \"" + path + "\" not found");
    if (S_ISDIR(st.st_mode)) {
      o.context_dir = path;
    } else {
      UniqueFd in = open_or_throw(path, O_RDONLY | O_CLOEXEC);
      build::extract_context(in.get(), make_temp());
      o.context_dir = temp_context;
    }
  }
  if (dockerfile == "-") {
    o.dockerfile_text = read_all(STDIN_FILENO);
  } else if (!dockerfile.empty()) {
    if (temp_context.empty() || path == "-") {
      // -f names a file on this machine (relative to the working directory), as docker's CLI reads it.
      auto text = read_file_if_exists(dockerfile);
      if (!text)
        throw Error("unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat " + dockerfile +
                    ": no such file or directory");
      o.dockerfile_text = *text;
    } else {
      o.dockerfile = dockerfile;  // a path inside the tarball
    }
  }

  std::string pull_policy = a.has("pull") ? "always" : "missing";
  build::Output out = [&](std::string_view text) {
    if (quiet) return;
    std::cout.write(text.data(), static_cast<std::streamsize>(text.size()));
    std::cout.flush();
  };
  build::BaseResolver resolve = [&](const std::string& ref) {
    ensure_image_present(ctx, ref, pull_policy, [](const image::Reference&, bool) {});
    auto img = ctx.images().find(ref);
    if (!img) throw build::BuildError("pull access denied for " + ref + ": no such image here");
    return *img;
  };
  build::BuildResult r;
  try {
    r = build::build_image(ctx.engine(), ctx.images(), o, out, resolve);
  } catch (const build::BuildError& e) {
    std::cerr << e.what() << "\n";
    return e.exit_code() ? e.exit_code() : 1;
  }
  if (quiet) {
    std::cout << r.image_id << "\n";
  } else {
    std::cout << "Successfully built " << image::short_id(r.image_id) << "\n";
    for (const auto& t : r.tags) std::cout << "Successfully tagged " << image::parse_reference(t).familiar() << "\n";
  }
  if (a.has("iidfile") && !a.get("iidfile").empty())
    write_file(a.get("iidfile"), r.image_id, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  return 0;
}

void build_for_compose(Context& ctx, const std::string& service, const nlohmann::json& build, const std::string& image,
                       bool no_cache) {
  build::BuildOptions o;
  o.context_dir = build.value("context", ".");
  if (o.context_dir.find("://") != std::string::npos)
    throw Error("service \"" + service + "\": berth builds from a local context only, not " + o.context_dir);
  if (build.contains("dockerfile_inline")) o.dockerfile_text = build.value("dockerfile_inline", "");
  o.dockerfile = build.value("dockerfile", "");
  o.target = build.value("target", "");
  o.no_cache = no_cache || build.value("no_cache", false);
  if (build.contains("network") && build["network"].is_string()) o.network = build["network"].get<std::string>();
  for (const char* key : {"args", "labels"})
    if (build.contains(key) && build[key].is_object())
      for (const auto& [k, v] : build[key].items())
        if (v.is_string()) (std::string(key) == "args" ? o.build_args : o.labels)[k] = v.get<std::string>();
  o.tags = {image};
  std::cerr << " " << service << " Building\n";
  build::Output out = [](std::string_view text) {
    std::cerr.write(text.data(), static_cast<std::streamsize>(text.size()));
  };
  build::BaseResolver resolve = [&](const std::string& ref) {
    ensure_image_present(ctx, ref, "missing", [](const image::Reference&, bool) {});
    auto img = ctx.images().find(ref);
    if (!img) throw build::BuildError("pull access denied for " + ref + ": no such image here");
    return *img;
  };
  try {
    build::build_image(ctx.engine(), ctx.images(), o, out, resolve);
  } catch (const build::BuildError& e) {
    throw Error("service \"" + service + "\" failed to build: " + e.what());
  }
  std::cerr << " " << service << " Built\n";
}

}  // namespace berth::cli
