// Placeholder until the archive commands land (save, load, import).
#include "cli/handlers.hpp"

namespace berth::cli {

int cmd_save(Context&, const Invocation&) { throw Error("save: not implemented yet"); }
int cmd_load(Context&, const Invocation&) { throw Error("load: not implemented yet"); }
int cmd_import(Context&, const Invocation&) { throw Error("import: not implemented yet"); }

}  // namespace berth::cli
