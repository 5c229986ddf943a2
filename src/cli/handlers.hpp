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
int cmd_commit(Context&, const Invocation&);

// build_cmds.cpp
int cmd_build(Context&, const Invocation&);

// volume_cmds.cpp
int cmd_volume_create(Context&, const Invocation&);
int cmd_volume_ls(Context&, const Invocation&);
int cmd_volume_inspect(Context&, const Invocation&);
int cmd_volume_rm(Context&, const Invocation&);
int cmd_volume_prune(Context&, const Invocation&);

// network_cmds.cpp
int cmd_network_create(Context&, const Invocation&);
int cmd_network_ls(Context&, const Invocation&);
int cmd_network_inspect(Context&, const Invocation&);
int cmd_network_rm(Context&, const Invocation&);
int cmd_network_prune(Context&, const Invocation&);
int cmd_network_connect(Context&, const Invocation&);
int cmd_network_disconnect(Context&, const Invocation&);
int cmd_network_dns_serve(Context&, const Invocation&);
int cmd_network_cleanup(Context&, const Invocation&);
int cmd_port(Context&, const Invocation&);

// compose_cmds.cpp
int cmd_compose(Context&, const Invocation&);

// kube_cmds.cpp (`compose kube` is in kube_cmds.hpp)
int cmd_kube_play(Context&, const Invocation&);
int cmd_kube_down(Context&, const Invocation&);

// container_cmds.cpp
int cmd_create(Context&, const Invocation&);
int cmd_run(Context&, const Invocation&);
int cmd_start(Context&, const Invocation&);
int cmd_stop(Context&, const Invocation&);
int cmd_restart(Context&, const Invocation&);
int cmd_kill(Context&, const Invocation&);
int cmd_rm(Context&, const Invocation&);
int cmd_wait(Context&, const Invocation&);
int cmd_rename(Context&, const Invocation&);
int cmd_pause(Context&, const Invocation&);
int cmd_update(Context&, const Invocation&);
int cmd_unpause(Context&, const Invocation&);
int cmd_ps(Context&, const Invocation&);
int cmd_inspect(Context&, const Invocation&);
int cmd_logs(Context&, const Invocation&);
int cmd_exec(Context&, const Invocation&);

// system_cmds.cpp
int cmd_version(Context&, const Invocation&);
int cmd_system_boot(Context&, const Invocation&);

// container_more_cmds.cpp
int cmd_cp(Context&, const Invocation&);
int cmd_diff(Context&, const Invocation&);
int cmd_top(Context&, const Invocation&);
int cmd_stats(Context&, const Invocation&);
int cmd_attach(Context&, const Invocation&);
int cmd_container_prune(Context&, const Invocation&);
int cmd_events(Context&, const Invocation&);
int cmd_serve(Context&, const Invocation&);
int cmd_info(Context&, const Invocation&);

}  // namespace berth::cli
