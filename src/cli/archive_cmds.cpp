// Image archive commands: save, load, import, commit.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <optional>

#include "cli/handlers.hpp"
#include "engine/commit.hpp"
#include "engine/engine.hpp"
#include "image/archive.hpp"
#include "image/reference.hpp"
#include "image/store.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

namespace berth::cli {

namespace {

// The output file of `save -o`: written under a temporary name in the same directory and renamed
// over FILE only when complete (docker's CopyToFile), so a failed save leaves FILE as it was.
class AtomicOutput {
 public:
  explicit AtomicOutput(const std::string& path) : path_(path) {
    size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    tmp_ = dir + "/.berth_temp_XXXXXX";
    int fd = ::mkostemp(tmp_.data(), O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      tmp_.clear();
      throw_errno("create a temporary file next to " + path, err);
    }
    fd_.reset(fd);
  }
  ~AtomicOutput() {
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
  }
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;
  int fd() const { return fd_.get(); }
  void commit() {
    if (::fsync(fd_.get()) < 0) throw_errno("fsync " + tmp_);
    fd_.reset();
    if (::rename(tmp_.c_str(), path_.c_str()) < 0) throw_errno("rename " + tmp_ + " to " + path_);
    tmp_.clear();
  }

 private:
  std::string path_, tmp_;
  UniqueFd fd_;
};

bool is_url(const std::string& s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

}  // namespace

int cmd_save(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth save [OPTIONS] IMAGE [IMAGE...]",
                   "Save one or more images to a tar archive (streamed to STDOUT by default)",
                   {{"output", 'o', true, "Write to a file, instead of STDOUT", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  std::string out = a.get("output");
  if (out.empty()) {
    if (::isatty(STDOUT_FILENO)) throw Error("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    image::save_images(ctx.images(), a.positionals, [] { return STDOUT_FILENO; });
    return 0;
  }
  std::optional<AtomicOutput> file;
  image::save_images(ctx.images(), a.positionals, [&] {
    file.emplace(out);
    return file->fd();
  });
  file->commit();
  return 0;
}

int cmd_load(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth load [OPTIONS]",
                   "Load an image from a tar archive or STDIN",
                   {{"input", 'i', true, "Read from tar archive file, instead of STDIN", "string"},
                    {"quiet", 'q', false, "Suppress the load output", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  std::string in = a.get("input");
  UniqueFd file;
  int fd = STDIN_FILENO;
  if (!in.empty()) {
    file = open_or_throw(in, O_RDONLY);
    fd = file.get();
  } else if (::isatty(STDIN_FILENO)) {
    throw Error("requested load from stdin, but stdin is empty");
  }
  std::vector<image::LoadedImage> loaded = image::load_images(ctx.images(), fd);
  for (const auto& img : loaded) {
    for (const auto& [tag, old] : img.replaced)
      std::cout << "The image " << image::parse_reference(tag).familiar() << " already exists, renaming the old one "
                << "with ID " << old << " to empty string\n";
    for (const auto& t : img.tags) std::cout << "Loaded image: " << image::parse_reference(t).familiar() << "\n";
    if (img.tags.empty()) std::cout << "Loaded image ID: " << img.id << "\n";
  }
  return 0;
}

int cmd_import(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                   "Import the contents from a tarball to create a filesystem image",
                   {{"change", 'c', true, "Apply Dockerfile instruction to the created image", "list"},
                    {"message", 'm', true, "Set commit message for imported image", "string"},
                    {"platform", 0, true, "Set platform if server is multi-platform capable", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 2);
  image::ImportOptions o;
  o.changes = a.all("change");
  o.message = a.get("message");
  if (a.has("platform") && !a.get("platform").empty()) o.platform = image::parse_platform(a.get("platform"));
  if (a.positionals.size() > 1) o.reference = a.positionals[1];
  const std::string& source = a.positionals[0];
  if (is_url(source))
    throw Error("importing from a URL is not supported (" + source + "): download it and import the file");
  // o.source stays "-" for a file too: docker's client streams the file as "-" to the daemon.
  UniqueFd file;
  int fd = STDIN_FILENO;
  if (source != "-") {
    file = open_or_throw(source, O_RDONLY);
    fd = file.get();
    o.input_name = source;
  }
  image::ImageRecord rec = image::import_image(ctx.images(), fd, o);
  std::cout << rec.id << "\n";
  return 0;
}

int cmd_commit(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                   "Create a new image from a container's changes",
                   {{"author", 'a', true, "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")", "string"},
                    {"change", 'c', true, "Apply Dockerfile instruction to the created image", "list"},
                    {"message", 'm', true, "Commit message", "string"},
                    {"pause", 'p', false, "Pause container during commit (default true)", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 2);
  engine::CommitRequest r;
  r.container = a.positionals[0];
  if (a.positionals.size() > 1) r.reference = a.positionals[1];
  r.author = a.get("author");
  r.message = a.get("message");
  r.changes = a.all("change");
  for (size_t i = inv.start; i < inv.args.size(); i++) {  // a default-true bool: only "=false" turns it off
    const std::string& arg = inv.args[i];
    if (arg.rfind("--pause=", 0) == 0) r.pause = parse_bool(arg.substr(8), "--pause");
    if (arg.rfind("-p=", 0) == 0) r.pause = parse_bool(arg.substr(3), "--pause");
  }
  std::cout << engine::commit(ctx.engine(), ctx.images(), r) << "\n";
  return 0;
}

}  // namespace berth::cli
