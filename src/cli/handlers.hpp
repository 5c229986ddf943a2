// Command handlers, one function each, grouped in files by topic (image_cmds.cpp, archive_cmds.cpp…).
#pragma once

#include "cli/context.hpp"

namespace berth::cli {

// image_cmds.cpp
int cmd_pull(Context&, const Invocation&);
int cmd_push(Context&, const Invocation&);
int cmd_images(Context&, const Invocation&);
int cmd_image_inspect(Context&, const Invocation&);
int cmd_tag(Context&, const Invocation&);
int cmd_rmi(Context&, const Invocation&);
int cmd_image_prune(Context&, const Invocation&);
int cmd_history(Context&, const Invocation&);
int cmd_image_mount(Context&, const Invocation&);
int cmd_image_unmount(Context&, const Invocation&);
int cmd_login(Context&, const Invocation&);
int cmd_logout(Context&, const Invocation&);

// archive_cmds.cpp
int cmd_save(Context&, const Invocation&);
int cmd_load(Context&, const Invocation&);
int cmd_import(Context&, const Invocation&);

}  // namespace berth::cli
