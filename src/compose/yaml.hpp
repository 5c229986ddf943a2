// YAML documents as JSON values: compose files are read with yaml-cpp and handled as nlohmann::json.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace berth::compose {

// Parses one YAML document into JSON. Plain scalars resolve by the YAML 1.2 core schema (null, ~,
// true/false, decimal/0x/0o integers — and 0755 as octal, as docker compose reads it —, floats,
// .inf/.nan); quoted scalars and !!str stay strings.
// Anchors, aliases and merge keys (<<) are resolved; a duplicate mapping key is an error. An empty
// document is null. Errors are berth::Error("FILE: line L, column C: problem").
// tags (optional): where the document uses compose's merge tags !reset and !override, as key
// paths from the root (array positions as decimal text).
struct YamlTag {
  std::vector<std::string> path;
  std::string tag;
};
nlohmann::json yaml_to_json(std::string_view text, const std::string& file, std::vector<YamlTag>* tags = nullptr);

// Every document of a multi-document stream ("---" separated), as yaml_to_json reads one; an
// empty document is null. For Kubernetes manifests.
std::vector<nlohmann::json> yaml_documents(std::string_view text, const std::string& file);

// JSON as YAML text (block style, keys in the JSON's order), as `compose config` prints it.
std::string json_to_yaml(const nlohmann::json& value);

}  // namespace berth::compose
