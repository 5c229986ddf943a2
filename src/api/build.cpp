// POST /build (docker's legacy builder protocol: a tar context in, a JSON stream out) and
// POST /commit.
#include <sys/mman.h>
#include <unistd.h>

#include <mutex>

#include <nlohmann/json.hpp>

#include "api/http.hpp"
#include "api/server.hpp"
#include "build/build.hpp"
#include "engine/commit.hpp"
#include "engine/engine.hpp"
#include "image/oci.hpp"
#include "image/pull.hpp"
#include "image/reference.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

namespace berth::api {

namespace {

using json = nlohmann::json;

// A JSON object of strings from a query parameter (buildargs, labels); null values are skipped
// (docker: an ARG given without a value and unset in the client's environment).
std::map<std::string, std::string> string_map(const Request& req, const std::string& key) {
  std::map<std::string, std::string> out;
  std::string raw = req.q(key);
  if (raw.empty()) return out;
  json j = json::parse(raw, nullptr, false);
  if (!j.is_object()) throw HttpError(400, "invalid " + key + ": " + raw);
  for (const auto& [k, v] : j.items()) {
    if (v.is_string())
      out[k] = v.get<std::string>();
    else if (!v.is_null())
      throw HttpError(400, "invalid " + key + ": " + k + " must be a string");
  }
  return out;
}

void build(Call& c) {
  const Request& req = c.req;
  if (!req.q("remote").empty())
    throw HttpError(400, "berth builds from the request body only, not from remote " + req.q("remote"));
  if (!req.q("platform").empty()) {
    image::Platform want = image::parse_platform(req.q("platform"));
    image::Platform host = image::host_platform();
    if (want.os != host.os || want.architecture != host.architecture)
      throw HttpError(400, "berth builds for this machine's platform only (" + host.os + "/" + host.architecture +
                               "), not " + req.q("platform"));
  }
  build::BuildOptions o;
  o.dockerfile = req.q("dockerfile");
  for (auto [it, end] = req.query.equal_range("t"); it != end; ++it)
    if (!it->second.empty()) o.tags.push_back(it->second);
  for (const auto& t : o.tags) {
    try {
      image::Reference r = image::parse_reference(t);
      if (!r.digest.empty()) throw Error("a tag cannot carry a digest");
    } catch (const Error& e) {
      throw HttpError(400, "invalid reference format: " + t + ": " + e.what());
    }
  }
  o.build_args = string_map(req, "buildargs");
  o.labels = string_map(req, "labels");
  o.target = req.q("target");
  o.no_cache = req.flag("nocache");
  std::string network = req.q("networkmode");
  if (!network.empty() && network != "default") o.network = network;
  o.remove_intermediate = req.flag("rm", true);
  o.force_remove = req.flag("forcerm");
  bool quiet = req.flag("q");
  bool pull = req.flag("pull");

  // The context: the body, a tar (plain or compressed), unpacked into a private directory.
  engine::Engine& eng = c.engine();
  image::ImageStore& images = c.images();
  build::ScratchDir scratch(images.root());
  std::string context_dir = scratch.path() + "/context";
  mkdir_p(context_dir, 0700);
  {
    int fd = ::memfd_create("build-context", MFD_CLOEXEC);
    if (fd < 0) throw_errno("memfd_create");
    UniqueFd body(fd);
    write_all(fd, req.body, "the build context");
    ::lseek(fd, 0, SEEK_SET);
    try {
      build::extract_context(fd, context_dir);
    } catch (const Error& e) {
      throw HttpError(400, e.what());
    }
  }
  o.context_dir = context_dir;

  std::mutex mu;
  bool streaming = false;
  auto begin = [&] {
    if (!streaming) {
      c.conn.begin_chunked(200, "application/json");
      streaming = true;
    }
  };
  auto send = [&](const json& j) {
    std::lock_guard<std::mutex> lock(mu);
    begin();
    c.conn.chunk(j.dump() + "\r\n");
  };
  build::Output out = [&](std::string_view text) {
    if (quiet) return;
    send({{"stream", std::string(text)}});
  };
  // A base image that is missing (or any, with pull=1) is pulled, as docker's builder does.
  build::BaseResolver resolve = [&](const std::string& ref) {
    auto img = images.find(ref);
    if (img && !pull) return *img;
    try {
      image::Reference r = image::parse_reference(ref);
      image::PullOptions opts;
      opts.registry = registry_options(c, r);
      return image::pull_image(images, r, opts).image;
    } catch (const std::exception& e) {
      if (img) return *img;
      throw build::BuildError("pull access denied for " + ref + ": " + e.what());
    }
  };
  build::BuildResult r;
  try {
    r = build::build_image(eng, images, o, out, resolve);
  } catch (const build::BuildError& e) {
    // Before any step ran (a bad Dockerfile, a bad argument), docker answers with an error status.
    if (!streaming) throw HttpError(400, e.what());
    json detail = {{"message", e.what()}};
    if (e.exit_code()) detail["code"] = e.exit_code();
    send({{"errorDetail", detail}, {"error", e.what()}});
    c.conn.end_chunked();
    return;
  } catch (const std::exception& e) {
    if (!streaming) throw;
    send({{"errorDetail", {{"message", e.what()}}}, {"error", e.what()}});
    c.conn.end_chunked();
    return;
  }
  send({{"aux", {{"ID", r.image_id}}}});
  // docker's CLI prints what a quiet build streams: the image ID alone.
  if (quiet) send({{"stream", r.image_id + "\n"}});
  if (!quiet) {
    send({{"stream", "Successfully built " + image::short_id(r.image_id) + "\n"}});
    for (const auto& t : r.tags)
      send({{"stream", "Successfully tagged " + image::parse_reference(t).familiar() + "\n"}});
  }
  c.conn.end_chunked();
}

// POST /commit?container=…&repo=…&tag=…: the body is a container config whose fields override the
// container's.
void commit(Call& c) {
  const Request& req = c.req;
  engine::CommitRequest r;
  r.container = req.q("container");
  if (r.container.empty()) throw HttpError(400, "container is required");
  std::string repo = req.q("repo");
  if (!repo.empty()) {
    std::string tag = req.q("tag");
    r.reference = tag.empty() ? repo : repo + ":" + tag;
    try {
      image::parse_reference(r.reference);
    } catch (const std::exception& e) {
      throw HttpError(400, e.what());
    }
  }
  r.author = req.q("author");
  r.message = req.q("comment");
  r.pause = req.flag("pause", true);
  for (auto [it, end] = req.query.equal_range("changes"); it != end; ++it) r.changes.push_back(it->second);
  if (!req.body.empty()) {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) throw HttpError(400, "invalid JSON body");
    if (body.is_object()) r.config = body;
  }
  try {
    image::apply_changes(image::empty_container_config(), r.changes);
  } catch (const std::exception& e) {
    throw HttpError(400, e.what());
  }
  std::string id = engine::commit(c.engine(), c.images(), r);
  c.conn.json(201, {{"Id", id}});
}

}  // namespace

// POST /build/prune: the classic builder's cache is build_cache's rows (its images stay images).
void build_prune(Call& c) {
  c.images().clear_build_cache();
  c.conn.json(200, {{"CachesDeleted", json::array()}, {"SpaceReclaimed", 0}});
}

std::vector<Route> build_routes() {
  return {{"POST", "/build", build}, {"POST", "/commit", commit}, {"POST", "/build/prune", build_prune}};
}

}  // namespace berth::api
