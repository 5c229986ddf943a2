// Validation of a compose document against the compose specification's JSON schema.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace berth::compose {

// A JSON schema (the keywords the compose schema uses: type, properties, patternProperties,
// additionalProperties, required, items, enum, const, oneOf, anyOf, allOf, not, $ref to #/$defs or
// #/definitions, minimum, maximum, minItems, maxItems, uniqueItems, minLength, pattern; format,
// description, deprecated and other annotations are ignored).
class JsonSchema {
 public:
  explicit JsonSchema(nlohmann::json schema);
  // The problems found, each "key.path: problem" ("services.web.ports.0: must be a string or number",
  // "services.web: additional property 'imgae' is not allowed"); empty when the value is valid.
  std::vector<std::string> problems(const nlohmann::json& value) const;

 private:
  nlohmann::json schema_;
};

// Validates an interpolated compose document against the embedded compose-spec.json; throws
// berth::Error("FILE: key.path: problem") for the first problem.
void validate_compose(const nlohmann::json& doc, const std::string& file);

}  // namespace berth::compose
