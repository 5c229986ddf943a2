// What compose_cmds.cpp and kube_cmds.cpp share: the engine pieces for the compose module, and
// `berth compose kube`, which `berth compose` dispatches with its global options (-f, -p, …).
#pragma once

#include <string>

#include "cli/context.hpp"
#include "compose/compose.hpp"
#include "compose/model.hpp"

namespace berth::cli {

// The engine, volumes and images of ctx; images are pulled under `pull` (missing, always, never),
// progress lines on stderr. Defined in compose_cmds.cpp.
compose::Backend compose_backend(Context& ctx, const std::string& pull = "missing", bool no_cache = false);

// Builds a compose service's image (its build section, long form) and tags it image; the build's
// output goes to stderr. Defined in build_cmds.cpp (berth-full only).
void build_for_compose(Context& ctx, const std::string& service, const nlohmann::json& build, const std::string& image,
                       bool no_cache);

// Defined in kube_cmds.cpp.
int compose_kube(const compose::LoadOptions& load, const Invocation& inv);

}  // namespace berth::cli
