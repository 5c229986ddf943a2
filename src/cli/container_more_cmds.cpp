// Placeholder: cp, diff, top, stats, attach, container prune, events, info land here.
#include "cli/handlers.hpp"

namespace berth::cli {

int cmd_cp(Context&, const Invocation&) { throw Error("cp: not built yet"); }
int cmd_diff(Context&, const Invocation&) { throw Error("diff: not built yet"); }
int cmd_top(Context&, const Invocation&) { throw Error("top: not built yet"); }
int cmd_stats(Context&, const Invocation&) { throw Error("stats: not built yet"); }
int cmd_attach(Context&, const Invocation&) { throw Error("attach: not built yet"); }
int cmd_container_prune(Context&, const Invocation&) { throw Error("container prune: not built yet"); }
int cmd_events(Context&, const Invocation&) { throw Error("events: not built yet"); }
int cmd_info(Context&, const Invocation&) { throw Error("info: not built yet"); }

}  // namespace berth::cli
