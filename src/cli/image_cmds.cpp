// Local image commands: images, image inspect, tag, rmi, image prune, history.
#include <fnmatch.h>
#include <unistd.h>

#include <ctime>
#include <iostream>
#include <set>

#include "cli/cli_util.hpp"
#include "cli/filters.hpp"
#include "cli/format.hpp"
#include "cli/handlers.hpp"
#include "image/digest.hpp"
#include "image/inspect.hpp"
#include "image/reference.hpp"
#include "image/store.hpp"
#include "storage/overlay.hpp"
#include "util/humanize.hpp"

namespace berth::cli {

using image::ImageRecord;
using nlohmann::json;

namespace {

struct NameTag {
  std::string repository, tag;
};

// "docker.io/library/busybox:latest" → {"busybox", "latest"}; digest refs → {"busybox", "<none>"}.
NameTag split_ref(const std::string& full) {
  try {
    image::Reference r = image::parse_reference(full);
    return {r.familiar_name(), r.tag.empty() ? "<none>" : r.tag};
  } catch (...) {
    return {full, "<none>"};
  }
}

// What the list filters need from an image config, parsed once per image.
struct ImageMeta {
  json labels = json::object();
  int64_t created = 0;
};

ImageMeta image_meta(const ImageRecord& img) {
  ImageMeta m;
  json cfg = json::parse(img.config, nullptr, false);
  if (!cfg.is_object()) return m;
  m.created = image::parse_rfc3339(cfg.value("created", ""));
  if (cfg.contains("config") && cfg["config"].is_object() && cfg["config"].contains("Labels") &&
      cfg["config"]["Labels"].is_object())
    m.labels = cfg["config"]["Labels"];
  return m;
}

bool reference_matches(const std::string& pattern, const std::string& full) {
  NameTag nt = split_ref(full);
  std::string familiar = image::familiar_ref(full);
  return fnmatch(pattern.c_str(), familiar.c_str(), FNM_PATHNAME) == 0 ||
         fnmatch(pattern.c_str(), nt.repository.c_str(), FNM_PATHNAME) == 0;
}

std::string display_id(const std::string& id, bool no_trunc) { return no_trunc ? id : image::short_id(id); }

}  // namespace

int cmd_images(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth images [OPTIONS] [REPOSITORY[:TAG]]",
                   "List images",
                   {{"all", 'a', false, "Show all images (default hides intermediate images)", ""},
                    {"digests", 0, false, "Show digests", ""},
                    {"filter", 'f', true, "Filter output based on conditions provided", "filter"},
                    {"format", 0, true, "Format output using a custom template", "string"},
                    {"no-trunc", 0, false, "Don't truncate output", ""},
                    {"quiet", 'q', false, "Only show image IDs", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 1);
  bool no_trunc = a.has("no-trunc");
  std::vector<std::string> ref_patterns, label_filters;
  std::optional<bool> dangling;
  std::optional<int64_t> before, since;
  auto image_time = [&](const std::string& name) {
    auto img = ctx.images().find(name);
    if (!img) throw Error("No such image: " + name);
    return img->added;
  };
  for (const auto& f : a.all("filter")) {
    auto eq = f.find('=');
    if (eq == std::string::npos) throw UsageError("bad format of filter (expected name=value): " + f);
    std::string k = f.substr(0, eq), v = f.substr(eq + 1);
    if (k == "dangling") {
      if (v != "true" && v != "false" && v != "1" && v != "0")
        throw Error("invalid filter 'dangling=" + v + "': must be true or false");
      dangling = v == "true" || v == "1";
    } else if (k == "reference") {
      ref_patterns.push_back(v);
    } else if (k == "label") {
      label_filters.push_back(v);
    } else if (k == "before") {
      before = image_time(v);
    } else if (k == "since") {
      since = image_time(v);
    } else {
      throw Error("invalid filter '" + k + "'");
    }
  }
  if (!a.positionals.empty()) ref_patterns.push_back(a.positionals[0]);

  std::vector<json> rows;
  std::vector<std::string> quiet_ids;
  for (const auto& img : ctx.images().list()) {
    bool is_dangling = img.repo_tags.empty() && img.repo_digests.empty();
    // A build's intermediate images (untagged, with children) show only with -a, as docker's.
    if (is_dangling && !a.has("all") && !ctx.images().children(img.id).empty()) continue;
    if (dangling && *dangling != img.repo_tags.empty()) continue;
    if (before && img.added >= *before) continue;
    if (since && img.added <= *since) continue;
    ImageMeta meta = image_meta(img);
    bool labels_ok = true;
    for (const auto& lf : label_filters) labels_ok = labels_ok && label_matches(meta.labels, lf);
    if (!labels_ok) continue;
    int64_t created = meta.created;
    auto make_row = [&](const std::string& repo, const std::string& tag, const std::string& digest) {
      json r = {{"ID", display_id(img.id, no_trunc)},
                {"Repository", repo},
                {"Tag", tag},
                {"Digest", digest},
                {"CreatedSince", time_ago(created)},
                {"CreatedAt", created_at(created)},
                {"Size", human_size(static_cast<double>(img.size), 3)},
                {"VirtualSize", human_size(static_cast<double>(img.size), 3)},
                {"SharedSize", "N/A"},
                {"UniqueSize", "N/A"},
                {"Containers", "N/A"}};
      rows.push_back(r);
    };
    size_t before_rows = rows.size();
    std::set<std::string> repos_with_tags;
    for (const auto& t : img.repo_tags) {
      if (!ref_patterns.empty()) {
        bool ok = false;
        for (const auto& p : ref_patterns) ok = ok || reference_matches(p, t);
        if (!ok) continue;
      }
      NameTag nt = split_ref(t);
      repos_with_tags.insert(nt.repository);
      std::string digest = "<none>";
      for (const auto& d : img.repo_digests)
        if (split_ref(d).repository == nt.repository) digest = d.substr(d.find('@') + 1);
      make_row(nt.repository, nt.tag, digest);
    }
    // Pulled by digest only: one <none> tag row per repository.
    for (const auto& d : img.repo_digests) {
      NameTag nt = split_ref(d);
      if (repos_with_tags.count(nt.repository)) continue;
      if (!ref_patterns.empty()) {
        bool ok = false;
        for (const auto& p : ref_patterns) ok = ok || reference_matches(p, d);
        if (!ok) continue;
      }
      repos_with_tags.insert(nt.repository);
      make_row(nt.repository, "<none>", d.substr(d.find('@') + 1));
    }
    if (is_dangling && ref_patterns.empty()) make_row("<none>", "<none>", "<none>");
    if (rows.size() > before_rows) quiet_ids.push_back(display_id(img.id, no_trunc));
  }
  if (a.has("quiet")) {
    std::set<std::string> seen;
    for (const auto& id : quiet_ids)
      if (seen.insert(id).second) std::cout << id << "\n";
    return 0;
  }
  std::string def = a.has("digests")
                        ? "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                        : "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
  std::cout << format_list(a.get("format"), def, rows,
                           {{"ID", "IMAGE ID"},
                            {"Repository", "REPOSITORY"},
                            {"Tag", "TAG"},
                            {"Digest", "DIGEST"},
                            {"CreatedSince", "CREATED"},
                            {"CreatedAt", "CREATED AT"},
                            {"Size", "SIZE"},
                            {"VirtualSize", "VIRTUAL SIZE"},
                            {"SharedSize", "SHARED SIZE"},
                            {"UniqueSize", "UNIQUE SIZE"},
                            {"Containers", "CONTAINERS"}});
  return 0;
}

int cmd_image_inspect(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth image inspect [OPTIONS] IMAGE [IMAGE...]",
                   "Display detailed information on one or more images",
                   {{"format", 'f', true, "Format output using a custom template", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  std::vector<json> items;
  std::vector<std::string> missing;
  for (const auto& name : a.positionals) {
    auto img = ctx.images().find(name);
    if (!img)
      missing.push_back(name);
    else
      items.push_back(image::inspect_json(*img, ctx.root));
  }
  std::cout << format_inspect(a.get("format"), items);
  if (!missing.empty()) {
    for (const auto& m : missing) std::cerr << "berth: No such image: " << m << "\n";
    return 1;
  }
  return 0;
}

int cmd_tag(Context& ctx, const Invocation& inv) {
  CommandHelp help{
      "berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 2, 2);
  image::Reference target = image::parse_reference(a.positionals[1]);
  if (!target.digest.empty()) throw Error("refusing to create a tag with a digest reference");
  auto img = ctx.images().find(a.positionals[0]);
  if (!img) throw Error("No such image: " + a.positionals[0]);
  ctx.images().add_ref(img->id, target.name() + ":" + target.tag, false);
  return 0;
}

namespace {

// Removes one image argument like docker's ImageDelete; prints what it did. Returns false on error.
bool remove_image(Context& ctx, const std::string& name, bool force, bool no_prune) {
  auto& store = ctx.images();
  auto img = store.find(name);
  if (!img) {
    std::cerr << "berth: No such image: " << name << "\n";
    return false;
  }
  // Was it named by a reference (untag) or by ID (delete)?
  std::string full_ref;
  if (!image::is_sha256_digest(name)) {
    try {
      image::Reference r = image::parse_reference(name);
      std::string candidate = r.digest.empty() ? r.name() + ":" + r.tag : r.name() + "@" + r.digest;
      for (const auto& t : img->repo_tags)
        if (t == candidate) full_ref = t;
      for (const auto& d : img->repo_digests)
        if (d == candidate) full_ref = d;
    } catch (const Error&) {
    }
  }
  // An image under a container is never deleted (its layers are the container's lowerdirs):
  // the last name can go only with -f, and the image then stays, untagged. Docker deletes it
  // with -f; berth keeps it so the container keeps working.
  std::vector<std::string> users = store.image_users(img->id);
  bool last_name = full_ref.empty() || img->repo_tags.size() + img->repo_digests.size() <= 1 ||
                   (full_ref.find('@') == std::string::npos && img->repo_tags.size() == 1);
  if (!users.empty() && last_name && !force) {
    if (!full_ref.empty())
      std::cerr << "berth: conflict: unable to remove repository reference \"" << name << "\" (must force) - container "
                << image::short_id(users.front()) << " is using its referenced image " << image::short_id(img->id)
                << "\n";
    else
      std::cerr << "berth: conflict: unable to delete " << image::short_id(img->id)
                << " (must be forced) - image is being used by container " << image::short_id(users.front()) << "\n";
    return false;
  }
  if (!users.empty() && force) {
    std::vector<std::string> names = full_ref.empty() ? img->repo_tags : std::vector<std::string>{full_ref};
    if (full_ref.empty()) names.insert(names.end(), img->repo_digests.begin(), img->repo_digests.end());
    for (const auto& n : names) {
      store.remove_ref(n);
      std::cout << "Untagged: " << image::familiar_ref(n) << "\n";
    }
    // With the last tag go the digest references, as on the path that deletes.
    ImageRecord now = store.get(img->id);
    if (now.repo_tags.empty())
      for (const auto& d : now.repo_digests) {
        store.remove_ref(d);
        std::cout << "Untagged: " << image::familiar_ref(d) << "\n";
      }
    return true;
  }
  if (!full_ref.empty()) {
    store.remove_ref(full_ref);
    std::cout << "Untagged: " << image::familiar_ref(full_ref) << "\n";
    ImageRecord now = store.get(img->id);
    if (!now.repo_tags.empty()) return true;
    // Digest references of the same repositories go with the last tag, like docker.
    if (full_ref.find('@') == std::string::npos)
      for (const auto& d : now.repo_digests) {
        store.remove_ref(d);
        std::cout << "Untagged: " << image::familiar_ref(d) << "\n";
      }
    if (!store.get(img->id).repo_digests.empty()) return true;
  } else {
    if (!store.children(img->id).empty()) {
      std::cerr << "berth: conflict: unable to delete " << image::short_id(img->id)
                << " (cannot be forced) - image has dependent child images\n";
      return false;
    }
    if (img->repo_tags.size() > 1 && !force) {
      std::cerr << "berth: conflict: unable to delete " << image::short_id(img->id)
                << " (must be forced) - image is referenced in multiple repositories\n";
      return false;
    }
    for (const auto& t : img->repo_tags) {
      store.remove_ref(t);
      std::cout << "Untagged: " << image::familiar_ref(t) << "\n";
    }
    for (const auto& d : img->repo_digests) {
      store.remove_ref(d);
      std::cout << "Untagged: " << image::familiar_ref(d) << "\n";
    }
  }
  // An image with children (a build's parent) goes only with them; by tag it was just untagged.
  if (!store.children(img->id).empty()) {
    if (!full_ref.empty()) return true;
    std::cerr << "berth: conflict: unable to delete " << image::short_id(img->id)
              << " (cannot be forced) - image has dependent child images\n";
    return false;
  }
  for (const auto& id : store.delete_image_and_parents(img->id, !no_prune)) std::cout << "Deleted: " << id << "\n";
  return true;
}

}  // namespace

int cmd_rmi(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth rmi [OPTIONS] IMAGE [IMAGE...]",
                   "Remove one or more images",
                   {{"force", 'f', false, "Force removal of the image", ""},
                    {"no-prune", 0, false, "Do not delete untagged parents", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  bool ok = true;
  for (const auto& name : a.positionals) ok = remove_image(ctx, name, a.has("force"), a.has("no-prune")) && ok;
  return ok ? 0 : 1;
}

int cmd_image_prune(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth image prune [OPTIONS]",
                   "Remove unused images",
                   {{"all", 'a', false, "Remove all unused images, not just dangling ones", ""},
                    {"filter", 0, true, "Provide filter values (e.g. \"until=<timestamp>\")", "filter"},
                    {"force", 'f', false, "Do not prompt for confirmation", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  std::vector<std::string> label_filters;
  std::optional<int64_t> until;
  for (const auto& f : a.all("filter")) {
    auto eq = f.find('=');
    std::string k = f.substr(0, eq), v = eq == std::string::npos ? "" : f.substr(eq + 1);
    if (k == "label") {
      label_filters.push_back(v);
    } else if (k == "until") {
      try {
        until = std::stoll(v);
      } catch (...) {
        until = image::parse_rfc3339(v);
        if (!*until) throw Error("invalid filter 'until=" + v + "': want a unix timestamp or RFC 3339 time");
      }
    } else {
      throw Error("invalid filter '" + k + "'");
    }
  }
  bool all = a.has("all");
  if (!a.has("force") &&
      !confirm(all ? "WARNING! This will remove all images without at least one container associated to them."
                   : "WARNING! This will remove all dangling images."))
    return 0;
  auto [deleted, reclaimed] = ctx.images().prune_images([&](const ImageRecord& img) {
    if (!all && !(img.repo_tags.empty() && img.repo_digests.empty())) return false;  // dangling: no names
    if (until && img.added >= *until) return false;
    json labels = image_meta(img).labels;
    for (const auto& lf : label_filters)
      if (!label_matches(labels, lf)) return false;
    return true;
  });
  std::vector<std::string> lines;
  for (const auto& img : deleted) {
    for (const auto& t : img.repo_tags) lines.push_back("untagged: " + image::familiar_ref(t));
    for (const auto& d : img.repo_digests) lines.push_back("untagged: " + image::familiar_ref(d));
    lines.push_back("deleted: " + img.id);
  }
  if (!lines.empty()) {
    std::cout << "Deleted Images:\n";
    for (const auto& l : lines) std::cout << l << "\n";
    std::cout << "\n";
  }
  std::cout << "Total reclaimed space: " << human_size(static_cast<double>(reclaimed)) << "\n";
  return 0;
}

int cmd_history(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth history [OPTIONS] IMAGE",
                   "Show the history of an image",
                   {{"format", 0, true, "Format output using a custom template", "string"},
                    {"human", 'H', true, "Print sizes and dates in human readable format (default true)", "bool"},
                    {"no-trunc", 0, false, "Don't truncate output", ""},
                    {"quiet", 'q', false, "Only show image IDs", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  auto img = ctx.images().find(a.positionals[0]);
  if (!img) throw Error("No such image: " + a.positionals[0]);
  bool human = !a.has("human") || parse_bool(a.get("human"), "--human");
  bool no_trunc = a.has("no-trunc");
  std::vector<json> rows;
  for (const auto& h : image::history(*img)) {
    if (a.has("quiet")) {
      std::cout << (h.id == "<missing>" ? h.id : display_id(h.id, no_trunc)) << "\n";
      continue;
    }
    std::string by = h.created_by;
    if (!no_trunc && by.size() > 45) by = by.substr(0, 44) + "…";
    std::string created = human ? time_ago(h.created) : std::to_string(h.created);
    rows.push_back({{"ID", h.id == "<missing>" ? h.id : display_id(h.id, no_trunc)},
                    {"CreatedSince", created},
                    {"CreatedAt", created_at(h.created)},
                    {"CreatedBy", by},
                    {"Size", human ? human_size(static_cast<double>(h.size), 3) : std::to_string(h.size)},
                    {"Comment", h.comment}});
  }
  if (a.has("quiet")) return 0;
  std::cout << format_list(a.get("format"), "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
                           rows,
                           {{"ID", "IMAGE"},
                            {"CreatedSince", "CREATED"},
                            {"CreatedAt", "CREATED AT"},
                            {"CreatedBy", "CREATED BY"},
                            {"Size", "SIZE"},
                            {"Comment", "COMMENT"}});
  return 0;
}

}  // namespace berth::cli

namespace berth::cli {

int cmd_image_mount(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth image mount IMAGE TARGET",
                   "Mount an image's root filesystem read-only at TARGET (an overlay of its layers)",
                   {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 2, 2);
  auto img = ctx.images().find(a.positionals[0]);
  if (!img) throw Error("No such image: " + a.positionals[0]);
  if (img->layers.empty()) throw Error("image " + a.positionals[0] + " has no layers to mount");
  std::vector<std::string> lowers;
  for (size_t i = img->layers.size(); i-- > 0;) lowers.push_back(ctx.images().layer_dir(img->layers[i].chain_id));
  storage::mount_overlay(lowers, "", "", a.positionals[1]);
  std::cout << a.positionals[1] << "\n";
  return 0;
}

int cmd_image_unmount(Context&, const Invocation& inv) {
  CommandHelp help{"berth image unmount TARGET", "Unmount an image mounted with 'berth image mount'", {}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, 1);
  storage::unmount_overlay(a.positionals[0]);
  return 0;
}

}  // namespace berth::cli
