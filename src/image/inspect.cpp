#include "image/inspect.hpp"

#include <algorithm>
#include <ctime>

#include "image/reference.hpp"

namespace berth::image {

using nlohmann::json;

int64_t parse_rfc3339(const std::string& text) {
  struct tm tm {};
  const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return 0;
  int64_t t = timegm(&tm);
  while (*rest == '.' || (*rest >= '0' && *rest <= '9')) rest++;
  if (*rest == '+' || *rest == '-') {
    int sign = *rest == '+' ? 1 : -1, hh = 0, mm = 0;
    if (sscanf(rest + 1, "%d:%d", &hh, &mm) >= 1) t -= sign * (hh * 3600 + mm * 60);
  }
  return t;
}

std::string familiar_ref(const std::string& full) {
  try {
    return parse_reference(full).familiar();
  } catch (...) {
    return full;
  }
}

json inspect_json(const ImageRecord& image, const std::string& store_root) {
  json cfg = json::parse(image.config, nullptr, false);
  if (!cfg.is_object()) cfg = json::object();
  json c = cfg.contains("config") && cfg["config"].is_object() ? cfg["config"] : json::object();
  // Docker fills the whole container-config shape, defaults included.
  json config = {{"Hostname", ""},
                 {"Domainname", ""},
                 {"User", c.value("User", "")},
                 {"AttachStdin", false},
                 {"AttachStdout", false},
                 {"AttachStderr", false},
                 {"Tty", false},
                 {"OpenStdin", false},
                 {"StdinOnce", false},
                 {"Env", c.value("Env", json(nullptr))},
                 {"Cmd", c.value("Cmd", json(nullptr))},
                 {"Image", ""},
                 {"Volumes", c.value("Volumes", json(nullptr))},
                 {"WorkingDir", c.value("WorkingDir", "")},
                 {"Entrypoint", c.value("Entrypoint", json(nullptr))},
                 {"OnBuild", c.value("OnBuild", json(nullptr))},
                 {"Labels", c.value("Labels", json(nullptr))}};
  for (const char* k : {"ExposedPorts", "Healthcheck", "StopSignal", "ArgsEscaped", "Shell"})
    if (c.contains(k)) config[k] = c[k];
  json tags = json::array(), digests = json::array(), diff_ids = json::array();
  for (const auto& t : image.repo_tags) tags.push_back(familiar_ref(t));
  for (const auto& d : image.repo_digests) digests.push_back(familiar_ref(d));
  std::string lower;
  for (const auto& l : image.layers) diff_ids.push_back(l.diff_id);
  for (size_t i = image.layers.size(); i-- > 0;) {  // overlayfs order: top-most first
    if (!lower.empty()) lower += ":";
    lower += store_root + "/layers/" + image.layers[i].chain_id.substr(7);
  }
  json j = {{"Id", image.id},
            {"RepoTags", tags},
            {"RepoDigests", digests},
            {"Parent", image.parent},
            {"Comment", cfg.value("comment", "")},
            {"Created", cfg.value("created", "")},
            {"DockerVersion", cfg.value("docker_version", "")},
            {"Author", cfg.value("author", "")},
            {"Config", config},
            {"Architecture", cfg.value("architecture", "")},
            {"Os", cfg.value("os", "")},
            {"Size", image.size},
            {"GraphDriver", {{"Name", "overlay"}, {"Data", {{"LowerDir", lower}}}}},
            {"RootFS", {{"Type", "layers"}, {"Layers", diff_ids}}},
            {"Metadata", {{"LastTagTime", "0001-01-01T00:00:00Z"}}}};
  if (cfg.contains("variant")) j["Variant"] = cfg["variant"];
  if (cfg.contains("os.version")) j["OsVersion"] = cfg["os.version"];
  return j;
}

std::vector<HistoryRow> history(const ImageRecord& image) {
  json cfg = json::parse(image.config, nullptr, false);
  std::vector<HistoryRow> rows;
  size_t layer = 0;
  if (cfg.is_object() && cfg.contains("history") && cfg["history"].is_array()) {
    for (const auto& h : cfg["history"]) {
      if (!h.is_object()) continue;
      HistoryRow r;
      r.created = parse_rfc3339(h.value("created", ""));
      r.created_by = h.value("created_by", "");
      r.comment = h.value("comment", "");
      r.empty_layer = h.value("empty_layer", false);
      if (!r.empty_layer && layer < image.layers.size()) r.size = image.layers[layer++].size;
      rows.push_back(r);
    }
  }
  // Images without history (imports by other tools): one row per layer.
  if (rows.empty())
    for (const auto& l : image.layers) {
      HistoryRow r;
      r.created = parse_rfc3339(cfg.is_object() ? cfg.value("created", "") : "");
      r.size = l.size;
      rows.push_back(r);
    }
  std::reverse(rows.begin(), rows.end());
  for (size_t i = 0; i < rows.size(); i++) rows[i].id = i == 0 ? image.id : "<missing>";
  return rows;
}

}  // namespace berth::image
