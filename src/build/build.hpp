// `berth build`: images from Dockerfiles, as docker's legacy builder makes them — one image per
// step, each the parent of the next, RUN steps in containers of the engine, COPY/ADD written into
// an overlay of the step's image in a private mount namespace, and a cache of steps keyed by
// their parent image, the instruction, the build args and (COPY/ADD) the content of the files.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/store.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

namespace berth::engine {
class Engine;
}

namespace berth::build {

struct BuildOptions {
  std::string context_dir;                        // the build context, a directory (read, never changed)
  std::string dockerfile;                         // path of the Dockerfile inside the context; "" → "Dockerfile"
  std::optional<std::string> dockerfile_text;     // the Dockerfile itself (CLI -f outside the context, -f -)
  std::vector<std::string> tags;                  // -t, as given ("app", "app:1", "reg:5000/app:2")
  std::map<std::string, std::string> build_args;  // --build-arg K=V
  std::map<std::string, std::string> labels;      // --label K=V, added to the final image
  std::string target;                             // --target: the last stage built
  bool no_cache = false;
  std::string network = "none";     // RUN containers' network mode
  bool remove_intermediate = true;  // --rm: remove a RUN's container after a successful step
  bool force_remove = false;        // --force-rm: also after a failed one
};

// What a build tells its user, as docker's legacy builder's stream: "Step 1/3 : FROM busybox\n",
// " ---> Using cache\n", a RUN's output, "Successfully built …\n".
using Output = std::function<void(std::string_view text)>;

// Finds (or pulls) a base image named in FROM; throws when there is none.
using BaseResolver = std::function<image::ImageRecord(const std::string& reference)>;

// A build that failed: a RUN that exited non-zero (exit_code set), a bad Dockerfile, a missing file.
class BuildError : public Error {
 public:
  BuildError(const std::string& message, int exit_code = 0) : Error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

struct BuildResult {
  std::string image_id;           // "sha256:…"
  std::vector<std::string> tags;  // the full names it was tagged with
};

// Builds and tags the image. Nothing is tagged when a step fails.
BuildResult build_image(engine::Engine& engine, image::ImageStore& images, const BuildOptions& options,
                        const Output& out, const BaseResolver& resolve_base);

// <root>/build/<random>: a build's private directory (its steps' upper and work directories, a
// context read from a tar), held with a flock while it lives and removed when destroyed. Making
// one removes those whose builder died (kill -9): their lock is free.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& root);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  // A fresh directory for one step: upper/, work/, merged/, from/.
  std::string step_dir();

 private:
  static void sweep(const std::string& base);
  std::string path_;
  UniqueFd lock_;
  int steps_ = 0;
};

// Whether bytes that start a file or stream are an archive: a tar, plain or gzip/bzip2/xz/zstd
// compressed (a context on stdin, a file ADD extracts).
bool is_archive(std::string_view head);

// Extracts a build context tar (plain or compressed) from fd into dir (existing, empty), refusing
// absolute paths, ".." and links that point out. Returns the number of bytes of file content.
int64_t extract_context(int fd, const std::string& dir);

}  // namespace berth::build
