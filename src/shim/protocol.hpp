// The contract between the engine (berth) and berth-shim, the per-container parent process.
// Header-only: the engine includes it without linking the shim.
//
// Starting. The engine runs
//   berth-shim --id ID --bundle DIR --runtime PATH --runtime-root DIR --state-dir DIR
//              --status-file FILE --sync-fd N
//              [--log-path FILE --log-max-size BYTES --log-max-file N]
//              [--tty] [--stdin] [--stdin-once] [--wait-attach]
//              [--restart no|always|unless-stopped|on-failure[:N]]
//              [--exit-command PATH [--exit-arg ARG]... [--removal-claim FILE]]
//              [--health-process FILE --health-interval NS …] (see "Health checks" below)
//              [--builtin-runtime]
// (--builtin-runtime: RUNTIME is berth's own; start and delete run its library in a forked
// child instead of exec'ing `RUNTIME start` / `RUNTIME delete`.)
// with fd N the write end of a pipe. The shim detaches (setsid, forks: the process the engine
// started exits at once, so waitpid on it returns quickly), becomes PR_SET_CHILD_SUBREAPER, takes
// an exclusive flock on <state-dir>/shim.lock for its whole life, creates <state-dir>/attach.sock,
// runs `RUNTIME --root DIR create --bundle DIR --pid-file … ID` (container stdio: pipes, or a pty
// from --console-socket with --tty; stdin /dev/null without --stdin) and then `start`, and writes
// ONE line of JSON to the sync fd and closes it:
//   {"ok":true,"pid":<container init pid>,"shim_pid":<pid>}
//   {"ok":false,"error":"<one line: the runtime's stderr, trimmed>","exit_code":125|126|127}
// (126: the command could not be invoked, e.g. permission denied; 127: not found.) With
// --wait-attach, `start` is deferred until the first attach client has sent its hello, so that a
// foreground `berth run` misses no output; the sync line is then written after `create`, with
// "created":true, and a failing `start` is reported to that client as an exit frame.
//
// Liveness: the shim is alive exactly while shim.lock is locked (flock LOCK_SH|LOCK_NB fails).
//
// Exit command. Once the shim has ended, its exit command runs (detached). With
// --removal-claim FILE (the engine's <root>/locks/container-<id>.claim) it first waits for a
// shared flock on FILE, opened before the shim ended: a client that holds FILE's exclusive lock
// has said it removes the container itself. If FILE was unlinked by then (the engine does that
// last, once the removal is complete), the exit command is skipped; otherwise (no claimer, or
// one that died or gave up) it runs.
//
// Status. The shim rewrites status-file atomically (write a temp file in the same directory,
// fsync, rename) on every transition, as one JSON object:
//   {"state":"running"|"restarting"|"exited","pid":N,"shim_pid":N,"exit_code":N,
//    "started_at":"RFC3339Nano","finished_at":"RFC3339Nano","restart_count":N,
//    "oom_killed":false,"log_dropped":N,"error":""}
// The engine folds it into state.db on its next command. exit_code is the init's exit status, or
// 128+signal when killed by a signal.
//
// Restart policy: after an exit the shim restarts the container (runtime delete, create, start)
// per --restart unless <state-dir>/stop exists (the engine creates it before stop/kill/rm), with
// docker's back-off (100 ms doubling, reset after 10 s of running). on-failure:N restarts at most N
// times. After the final exit: runtime delete, status "exited", exit frame to attach clients,
// then the --exit-command (the engine passes `berth rm` for --rm), then the shim exits.
//
// Attach (<state-dir>/attach.sock, SOCK_STREAM). Every message both ways is a frame: an 8-byte
// header {type, 0, 0, 0, length as big-endian uint32} (docker's stdcopy header) and the payload.
// The client first sends kHello with a JSON payload {"stdin":bool,"stdout":bool,"stderr":bool}.
//
// Additions made while implementing the shim (none changes the text above):
// - Status "state" is also "created": with --wait-attach, after `create` and before the first
//   client's hello. "pid" is 0 while no process runs; "exit_code" is 0 while running (as docker's
//   State.ExitCode) and "finished_at" keeps the previous run's time across restarts ("0001-01-01
//   T00:00:00Z", Go's zero time, before the first exit).
// - "error" (sync line, status, exit frame) is the runtime's last non-empty stderr line without
//   the "berth: " prefix the runtime CLI puts on its errors. berth-runtime resolves the executable
//   in `create`, so 126/127 come from `create`; a failing `start` is mapped the same way.
// - The status file is written before the sync line, so the engine can read it at once.
// - Files in <state-dir>: shim.lock, attach.sock, shim.log (the shim's diagnostics after it
//   detached, truncated when past 64 KiB), init.pid (the runtime's --pid-file), console.sock
//   (with --tty, only during `create`), and stop (created by the engine, read by the shim).
//   When <state-dir>/attach.sock does not fit in sun_path (108 bytes) the shim binds it through
//   /proc/self/fd/<dirfd>/attach.sock; clients then connect through /proc/self/fd/<their own
//   O_PATH fd of state-dir>/attach.sock.
// - Attach clients: a client whose unread output passes 256 KiB is disconnected (never waited
//   for: the container must not block on a reader; disconnecting, not dropping, so no reader sees a
//   stream with holes). Stdin frames from a client that said "stdin":false, or when the shim runs
//   without --stdin, are ignored. With --stdin-once the container's stdin is closed when the first
//   client that attached with "stdin":true disconnects. kCloseStdin and --stdin-once flush the
//   stdin already received first. Unknown frame types are ignored; a first frame other than
//   kHello, or a length past kMaxFrame, closes the connection.
// - Logs: output goes through a bounded buffer (128 KiB) to a writer thread. When it is full the
//   shim stops reading the container's output for at most 250 ms (the container's pipe fills and
//   it waits), then reads and drops, counting the dropped bytes in "log_dropped".
// - --log-max-size -1 (or no --log-max-size) is no rotation; --log-max-file defaults to 1.
// - The exit command starts after the shim has exited (shim.lock is free when it runs), in its own
//   session with stdio on /dev/null, and is not waited for.
// - Health checks (docker's Config.Healthcheck):
//     [--health-process FILE --health-interval NS --health-timeout NS --health-start-period NS
//      --health-start-interval NS --health-retries N]
//   FILE is an OCI process (the engine writes it from config.json's process: same user, env, cwd,
//   capabilities; args the check's argv, CMD-SHELL as ["/bin/sh","-c",cmd]; terminal false).
//   Without --health-process nothing runs. Defaults: interval and timeout 30 s, start period 0,
//   start interval 5 s, retries 3. While the container runs, the shim runs
//   `RUNTIME --root R exec --pid-file <state-dir>/health.pid --process FILE ID` every interval
//   (start interval while still "starting" within the start period), one at a time, measured
//   from the end of the previous check; stdout and stderr share one pipe, of which the first
//   4096 bytes are kept ("..." appended when there was more). Past the timeout the check's
//   process (health.pid) and the runtime are SIGKILLed and the result is ExitCode -1, Output
//   "Health check exceeded timeout (<Go duration>)". Docker's rules: "starting" until the first
//   success; a failure while "starting" within the start period does not count; a success makes
//   it "healthy" (FailingStreak 0); Retries consecutive failures "unhealthy". Every (re)start of
//   the container goes back to "starting" (the log is kept). The status file then carries
//     "health":{"Status":"starting"|"healthy"|"unhealthy","FailingStreak":N,
//               "Log":[{"Start":"RFC3339Nano","End":"RFC3339Nano","ExitCode":N,"Output":"…"}]}
//   (the last 5 results, oldest first; absent while "created"), rewritten after every result and
//   kept after the container exits.
#pragma once

#include <cstddef>
#include <cstdint>

namespace berth::shim {

// Shim → client.
inline constexpr uint8_t kStdout = 1;
inline constexpr uint8_t kStderr = 2;  // with a tty everything comes as kStdout
// Payload {"exit_code":N} (or {"exit_code":N,"error":"…"} when start failed): the container
// exited; the shim then closes the connection unless a restart follows.
inline constexpr uint8_t kExit = 3;

// Client → shim.
inline constexpr uint8_t kStdin = 0;       // bytes for the container's stdin
inline constexpr uint8_t kCloseStdin = 4;  // EOF on the container's stdin (pipe closed / ^D sent to the pty)
inline constexpr uint8_t kResize = 5;      // payload {"rows":N,"cols":N}: the pty's window size
inline constexpr uint8_t kHello = 16;      // first frame of every client

inline constexpr size_t kFrameHeader = 8;
inline constexpr uint32_t kMaxFrame = 1u << 20;

}  // namespace berth::shim
