// Compose's variable interpolation: ${VAR}, $VAR and their default, error and alternative forms.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace berth::compose {

// The value of a variable, or nullopt when it is unset.
using VariableLookup = std::function<std::optional<std::string>(const std::string& name)>;
// Called once per unset variable used without a default ("The \"X\" variable is not set…").
using VariableWarning = std::function<void(const std::string& name)>;

// Replaces, in s: $$ → $, $VAR and ${VAR} → the value ("" when unset, with a warning),
// ${VAR:-default} (unset or empty) and ${VAR-default} (unset), ${VAR:?message} / ${VAR?message}
// (berth::Error "WHERE: required variable VAR is missing a value: message"), ${VAR:+alt} / ${VAR+alt}.
// Defaults and alternatives may themselves hold ${…}. A malformed reference ("${", "${A B}") is an
// error naming where and the text: "WHERE: invalid interpolation format for \"${\"".
std::string interpolate_string(std::string_view s, const VariableLookup& lookup, const std::string& where,
                               const VariableWarning& warn = {});

// interpolate_string applied to every string value (not to mapping keys) of doc; `where` in errors
// is "FILE: key.path" (e.g. "compose.yaml: services.web.image", list items by index).
nlohmann::json interpolate(const nlohmann::json& doc, const VariableLookup& lookup, const std::string& file,
                           const VariableWarning& warn = {});

}  // namespace berth::compose
