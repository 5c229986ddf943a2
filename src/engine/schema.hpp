// The engine's tables, in the same state.db as the image store (one transaction can then create a
// container row and its image_users row together).
#pragma once

namespace berth::sql {
class Db;
}

namespace berth::engine {

// Creates the tables when missing and sets synchronous=FULL on this connection (the engine's
// records must survive power loss, not just a crash). Idempotent and cheap: the statements run only
// when state.db does not record this version of them (sql::Db::apply_schema).
//
//   containers(id, name UNIQUE, image_id, image_name, created_ns, state, config, mounts, pid,
//              exit_code, started_at, finished_at, restart_count, error, manually_stopped)
//     manually_stopped: set by stop/kill, cleared by start (restart=unless-stopped at boot)
//     state: creating | created | running | paused | restarting | exited | dead | removing
//     (creating and removing are intents: reconcile() finishes or undoes them);
//     config: docker's create body {"Config":{…},"HostConfig":{…}} as create normalised it;
//     mounts: JSON array in docker inspect's Mounts[] shape.
//   container_volumes(container_id, volume, anonymous): which containers use which volumes.
//   volumes(name, driver, created_ns, labels, options, anonymous, state)
//     labels/options: JSON objects; state: creating | ready | removing (intents as above).
//   events(seq, time_ns, type, action, actor_id, attributes): docker's events, attributes JSON.
void ensure_schema(sql::Db& db);

}  // namespace berth::engine
