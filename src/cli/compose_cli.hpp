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
compose::Backend compose_backend(Context& ctx, const std::string& pull = "missing");

// Defined in kube_cmds.cpp.
int compose_kube(const compose::LoadOptions& load, const Invocation& inv);

}  // namespace berth::cli
