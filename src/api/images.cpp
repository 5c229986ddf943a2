// /images/…: list, inspect, pull (POST /images/create), tag, remove.
#include <mutex>

#include "api/server.hpp"
#include "image/auth_config.hpp"
#include "image/digest.hpp"
#include "image/inspect.hpp"
#include "image/pull.hpp"
#include "image/push.hpp"
#include "image/reference.hpp"
#include "image/registry.hpp"
#include "image/store.hpp"

namespace berth::api {

using nlohmann::json;

namespace {

image::ImageRecord find_image(Call& call, const std::string& name) {
  auto img = call.images().find(name);
  if (!img) throw HttpError(404, "No such image: " + name);
  return *img;
}

void list(Call& call) {
  auto& store = call.images();
  json out = json::array();
  bool all = call.req.flag("all");
  for (const auto& img : store.list()) {
    // A build's intermediate images (untagged, with children) show only with all=1, as docker's.
    if (!all && img.repo_tags.empty() && img.repo_digests.empty() && !store.children(img.id).empty()) continue;
    json cfg = json::parse(img.config, nullptr, false);
    int64_t created = cfg.is_object() && cfg.contains("created") && cfg["created"].is_string()
                          ? image::parse_rfc3339(cfg["created"].get<std::string>())
                          : img.added;
    json labels = cfg.is_object() && cfg.contains("config") && cfg["config"].is_object()
                      ? cfg["config"].value("Labels", json(nullptr))
                      : json(nullptr);
    json tags = json::array(), digests = json::array();
    for (const auto& t : img.repo_tags) tags.push_back(image::familiar_ref(t));
    for (const auto& d : img.repo_digests) digests.push_back(image::familiar_ref(d));
    out.push_back({{"Id", img.id},
                   {"ParentId", img.parent},
                   {"RepoTags", tags},
                   {"RepoDigests", digests},
                   {"Created", created},
                   {"Size", img.size},
                   {"SharedSize", -1},
                   {"VirtualSize", img.size},
                   {"Labels", labels.is_object() ? labels : json::object()},
                   {"Containers", -1}});
  }
  call.conn.json(200, out);
}

void inspect(Call& call) {
  image::ImageRecord img = find_image(call, call.params[0]);
  json j = image::inspect_json(img, call.images().root());
  // API 1.41 has these (docker-compose 1.x reads ContainerConfig when it recreates a service).
  if (!j.contains("ContainerConfig")) j["ContainerConfig"] = j.value("Config", json::object());
  if (!j.contains("Container")) j["Container"] = "";
  if (!j.contains("VirtualSize")) j["VirtualSize"] = j.value("Size", 0);
  call.conn.json(200, j);
}

// X-Registry-Auth: base64url JSON {"username","password","serveraddress"}.
std::optional<image::Credentials> header_credentials(const Request& req) {
  std::string h = req.header("x-registry-auth");
  if (h.empty()) return std::nullopt;
  std::string std64 = h;
  for (auto& ch : std64) {
    if (ch == '-') ch = '+';
    if (ch == '_') ch = '/';
  }
  while (std64.size() % 4) std64.push_back('=');
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string decoded;
  int val = 0, bits = -8;
  for (char ch : std64) {
    if (ch == '=') break;
    size_t pos = alphabet.find(ch);
    if (pos == std::string::npos) return std::nullopt;
    val = (val << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      decoded.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  json j = json::parse(decoded, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  std::string user = j.value("username", ""), pass = j.value("password", "");
  if (user.empty() && pass.empty()) return std::nullopt;
  return image::Credentials{user, pass};
}

}  // namespace

image::RegistryOptions registry_options(const Call& call, const image::Reference& ref) {
  image::RegistryOptions o;
  o.insecure_registries = call.server.options().insecure_registries;
  o.credentials = header_credentials(call.req);
  if (!o.credentials) {
    std::string cfg = call.server.options().docker_config;
    o.credentials = image::load_credentials(ref.domain, cfg.empty() ? "" : cfg + "/config.json");
  }
  return o;
}

namespace {

std::string progress_bar(int64_t current, int64_t total) {
  if (total <= 0) return "";
  int width = 50;
  int filled = static_cast<int>(current * width / total);
  std::string bar = "[";
  for (int i = 0; i < width; i++) bar += i < filled ? "=" : (i == filled ? ">" : " ");
  bar += "] ";
  auto size = [](int64_t b) {
    char buf[32];
    if (b >= 1000000)
      std::snprintf(buf, sizeof buf, "%.1fMB", static_cast<double>(b) / 1e6);
    else
      std::snprintf(buf, sizeof buf, "%.1fkB", static_cast<double>(b) / 1e3);
    return std::string(buf);
  };
  return bar + size(current) + "/" + size(total);
}

// POST /images/create?fromImage=NAME&tag=TAG: a pull, reported as docker's JSON progress stream.
void create(Call& call) {
  std::string from = call.req.q("fromImage");
  if (from.empty()) {
    if (!call.req.q("fromSrc").empty()) return import_from_body(call);
    throw HttpError(400, "fromImage or fromSrc is required");
  }
  std::string tag = call.req.q("tag");
  std::string text = from;
  if (!tag.empty()) text += (tag.rfind("sha256:", 0) == 0 ? "@" : ":") + tag;
  image::Reference ref;
  try {
    ref = image::parse_reference(text);
  } catch (const std::exception& e) {
    throw HttpError(400, e.what());
  }
  image::PullOptions opts;
  opts.registry = registry_options(call, ref);
  if (!call.req.q("platform").empty()) opts.platform = image::parse_platform(call.req.q("platform"));
  call.conn.begin_chunked(200, "application/json");
  std::mutex mu;
  auto send = [&](const json& j) {
    std::lock_guard lock(mu);
    call.conn.chunk(j.dump() + "\r\n");
  };
  std::string path = ref.familiar_name();
  if (ref.domain == "docker.io" && path.find('/') == std::string::npos) path = "library/" + path;
  send({{"status", "Pulling from " + path}, {"id", ref.tag_or_digest()}});
  try {
    image::PullResult r = image::pull_image(call.images(), ref, opts, [&](const image::PullEvent& e) {
      using K = image::PullEvent::Kind;
      switch (e.kind) {
        case K::Resolved:
          break;
        case K::LayerWaiting:
          send({{"status", "Pulling fs layer"}, {"progressDetail", json::object()}, {"id", e.layer}});
          break;
        case K::LayerExists:
          send({{"status", "Already exists"}, {"progressDetail", json::object()}, {"id", e.layer}});
          break;
        case K::LayerBytes:
          send({{"status", "Downloading"},
                {"progressDetail", {{"current", e.current}, {"total", e.total}}},
                {"progress", progress_bar(e.current, e.total)},
                {"id", e.layer}});
          break;
        case K::LayerDone:
          send({{"status", "Pull complete"}, {"progressDetail", json::object()}, {"id", e.layer}});
          break;
      }
    });
    send({{"status", "Digest: " + r.digest}});
    send({{"status",
           std::string(r.downloaded ? "Status: Downloaded newer image for " : "Status: Image is up to date for ") +
               ref.familiar()}});
  } catch (const std::exception& e) {
    send({{"errorDetail", {{"message", e.what()}}}, {"error", e.what()}});
  }
  call.conn.end_chunked();
}

void tag(Call& call) {
  image::ImageRecord img = find_image(call, call.params[0]);
  std::string repo = call.req.q("repo");
  if (repo.empty()) throw HttpError(400, "repository name must have at least one component");
  std::string t = call.req.q("tag", "latest");
  if (t.empty()) t = "latest";
  image::Reference ref;
  try {
    ref = image::parse_reference(repo + ":" + t);
  } catch (const std::exception& e) {
    throw HttpError(400, e.what());
  }
  call.images().add_ref(img.id, ref.name() + ":" + ref.tag, false);
  call.conn.respond(201, "application/json", "");
}

void remove(Call& call) {
  auto& store = call.images();
  const std::string& name = call.params[0];
  image::ImageRecord img = find_image(call, name);
  bool force = call.req.flag("force");
  std::string full_ref;
  if (!image::is_sha256_digest(name)) {
    try {
      image::Reference r = image::parse_reference(name);
      std::string candidate = r.digest.empty() ? r.name() + ":" + r.tag : r.name() + "@" + r.digest;
      for (const auto& t : img.repo_tags)
        if (t == candidate) full_ref = t;
      for (const auto& d : img.repo_digests)
        if (d == candidate) full_ref = d;
    } catch (const std::exception&) {
    }
  }
  std::vector<std::string> users = store.image_users(img.id);
  json out = json::array();
  size_t names = img.repo_tags.size() + img.repo_digests.size();
  if (!full_ref.empty() && (img.repo_tags.size() > 1 && full_ref.find('@') == std::string::npos)) {
    store.remove_ref(full_ref);
    out.push_back({{"Untagged", image::familiar_ref(full_ref)}});
    call.conn.json(200, out);
    return;
  }
  if (!users.empty()) {
    if (!force) {
      if (!full_ref.empty())
        throw HttpError(409, "conflict: unable to remove repository reference \"" + name +
                                 "\" (must force) - container " + image::short_id(users.front()) +
                                 " is using its referenced image " + image::short_id(img.id));
      throw HttpError(409, "conflict: unable to delete " + image::short_id(img.id) +
                               " (must be forced) - image is being used by stopped container " +
                               image::short_id(users.front()));
    }
    // berth keeps an image under a container (its layers are the container's): untag only.
    for (const auto& n : img.repo_tags) {
      store.remove_ref(n);
      out.push_back({{"Untagged", image::familiar_ref(n)}});
    }
    for (const auto& n : img.repo_digests) {
      store.remove_ref(n);
      out.push_back({{"Untagged", image::familiar_ref(n)}});
    }
    call.conn.json(200, out);
    return;
  }
  if (full_ref.empty() && names > 1 && !force)
    throw HttpError(409, "conflict: unable to delete " + image::short_id(img.id) +
                             " (must be forced) - image is referenced in multiple repositories");
  bool has_children = !store.children(img.id).empty();
  if (has_children && full_ref.empty())
    throw HttpError(409, "conflict: unable to delete " + image::short_id(img.id) +
                             " (cannot be forced) - image has dependent child images");
  for (const auto& n : img.repo_tags) {
    out.push_back({{"Untagged", image::familiar_ref(n)}});
    if (has_children) store.remove_ref(n);
  }
  for (const auto& n : img.repo_digests) {
    out.push_back({{"Untagged", image::familiar_ref(n)}});
    if (has_children) store.remove_ref(n);
  }
  // An image with children (a build's parent) stays, untagged, while they exist.
  if (!has_children)
    for (const auto& id : store.delete_image_and_parents(img.id, !call.req.flag("noprune")))
      out.push_back({{"Deleted", id}});
  call.conn.json(200, out);
}

// POST /images/prune?filters={"dangling":["false"],"until":[…],"label":[…]}
void prune(Call& call) {
  auto filters = call.req.filters();
  bool dangling_only = true;
  std::optional<int64_t> until;
  std::vector<std::pair<std::string, bool>> labels;  // filter, wanted
  for (const auto& [key, values] : filters) {
    for (const auto& v : values) {
      if (key == "dangling") {
        if (v != "true" && v != "false" && v != "1" && v != "0")
          throw HttpError(400, "invalid filter 'dangling=" + v + "'");
        dangling_only = v == "true" || v == "1";
      } else if (key == "until") {
        int64_t t = 0;
        try {
          t = std::stoll(v);
        } catch (const std::exception&) {
          t = image::parse_rfc3339(v);
        }
        if (t == 0) throw HttpError(400, "invalid filter 'until=" + v + "'");
        until = t;
      } else if (key == "label" || key == "label!") {
        labels.emplace_back(v, key == "label");
      } else {
        throw HttpError(400, "invalid filter '" + key + "'");
      }
    }
  }
  auto [deleted, reclaimed] = call.images().prune_images([&](const image::ImageRecord& img) {
    if (dangling_only && !(img.repo_tags.empty() && img.repo_digests.empty())) return false;
    if (until && img.added >= *until) return false;
    json cfg = json::parse(img.config, nullptr, false);
    json have = cfg.is_object() && cfg.contains("config") && cfg["config"].is_object()
                    ? cfg["config"].value("Labels", json::object())
                    : json::object();
    for (const auto& [f, wanted] : labels) {
      size_t eq = f.find('=');
      std::string k = f.substr(0, eq);
      bool match = have.is_object() && have.contains(k) &&
                   (eq == std::string::npos || (have[k].is_string() && have[k].get<std::string>() == f.substr(eq + 1)));
      if (match != wanted) return false;
    }
    return true;
  });
  json out = json::array();
  for (const auto& img : deleted) {
    for (const auto& t : img.repo_tags) out.push_back({{"Untagged", image::familiar_ref(t)}});
    for (const auto& d : img.repo_digests) out.push_back({{"Untagged", image::familiar_ref(d)}});
    out.push_back({{"Deleted", img.id}});
  }
  call.conn.json(200, {{"ImagesDeleted", out.empty() ? json(nullptr) : out}, {"SpaceReclaimed", reclaimed}});
}

void history(Call& call) {
  image::ImageRecord img = find_image(call, call.params[0]);
  json out = json::array();
  for (const auto& h : image::history(img))
    out.push_back({{"Id", h.id},
                   {"Created", h.created},
                   {"CreatedBy", h.created_by},
                   {"Tags", nullptr},
                   {"Size", h.size},
                   {"Comment", h.comment}});
  if (!out.empty()) {
    json tags = json::array();
    for (const auto& t : img.repo_tags) tags.push_back(image::familiar_ref(t));
    out[0]["Tags"] = tags;
  }
  call.conn.json(200, out);
}

// GET /images/search: berth searches no registry index; an empty result, as docker allows.
void search(Call& call) {
  if (call.req.q("term").empty()) throw HttpError(400, "term is required");
  call.conn.json(200, json::array());
}

// POST /images/{name}/push?tag=T, with docker's JSON progress stream.
void push(Call& call) {
  std::string name = call.params[0];
  std::string tag = call.req.q("tag");
  image::Reference ref;
  try {
    ref = image::parse_reference(tag.empty() ? name : name + ":" + tag);
  } catch (const std::exception& e) {
    throw HttpError(400, e.what());
  }
  image::ImageRecord img = find_image(call, ref.str());
  image::PushOptions opts;
  opts.registry = registry_options(call, ref);
  call.conn.begin_chunked(200, "application/json");
  auto send = [&](const json& j) { call.conn.chunk(j.dump() + "\r\n"); };
  send({{"status", "The push refers to repository [" + ref.name() + "]"}});
  try {
    image::PushResult r = image::push_image(call.images(), img, ref, opts, [&](const image::PushEvent& e) {
      using K = image::PushEvent::Kind;
      const char* status = e.kind == K::Preparing ? "Preparing"
                           : e.kind == K::Exists  ? "Layer already exists"
                                                  : "Pushed";
      send({{"status", status}, {"progressDetail", json::object()}, {"id", e.layer}});
    });
    // As docker: the digest line, then the aux message (which clients consume without printing).
    send({{"status", ref.tag + ": digest: " + r.digest + " size: " + std::to_string(r.size)}});
    send({{"progressDetail", json::object()}, {"aux", {{"Tag", ref.tag}, {"Digest", r.digest}, {"Size", r.size}}}});
  } catch (const std::exception& e) {
    send({{"errorDetail", {{"message", e.what()}}}, {"error", e.what()}});
  }
  call.conn.end_chunked();
}

}  // namespace

std::vector<Route> image_routes() {
  return {
      {"POST", "/images/prune", prune},   {"GET", "/images/json", list},        {"POST", "/images/create", create},
      {"GET", "/images/search", search},  {"GET", "/images/{*}/json", inspect}, {"GET", "/images/{*}/history", history},
      {"POST", "/images/{*}/push", push}, {"POST", "/images/{*}/tag", tag},     {"DELETE", "/images/{*}", remove}};
}

}  // namespace berth::api
