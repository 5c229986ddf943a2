#include "runtime/hooks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

namespace berth::runtime {
namespace {

int64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

void run_hook(const Hook& hook, const std::string& state_json, const std::string& stage, const std::string& cwd) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);

  std::vector<std::string> args = hook.args.empty() ? std::vector<std::string>{hook.path} : hook.args;
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : hook.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork " + stage + " hook");
  if (pid == 0) {
    ::dup2(in_r.get(), 0);
    ::dup2(out_w.get(), 1);
    ::dup2(out_w.get(), 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
      dprintf(2, "chdir %s: %s", cwd.c_str(), strerror(errno));
      _exit(127);
    }
    ::execve(hook.path.c_str(), argv.data(), envp.data());
    dprintf(2, "exec %s: %s", hook.path.c_str(), strerror(errno));
    _exit(127);
  }
  in_r.reset();
  out_w.reset();
  // A hook that does not read stdin must not fail us with EPIPE.
  signal(SIGPIPE, SIG_IGN);
  (void)!::write(in_w.get(), state_json.data(), state_json.size());
  in_w.reset();

  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  UniqueFd pidfd_owner(pidfd);
  std::string output;
  int64_t deadline = hook.timeout ? now_ms() + int64_t{*hook.timeout} * 1000 : -1;
  bool timed_out = false;
  bool out_open = true;
  bool exited = pidfd < 0;  // without a pidfd, output EOF is the only signal
  while (out_open || !exited) {
    struct pollfd fds[2] = {{out_open ? out_r.get() : -1, POLLIN, 0}, {exited ? -1 : pidfd, POLLIN, 0}};
    int timeout = deadline < 0 ? -1 : static_cast<int>(std::max<int64_t>(0, deadline - now_ms()));
    int n = ::poll(fds, 2, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll " + stage + " hook");
    }
    if (n == 0) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    if (fds[0].revents) {
      char buf[4096];
      ssize_t r = ::read(out_r.get(), buf, sizeof buf);
      if (r > 0 && output.size() < 65536) output.append(buf, static_cast<size_t>(r));
      if (r <= 0) out_open = false;
    }
    if (fds[1].revents) {
      // Exited: take what is buffered, without waiting on grandchildren that hold the pipe.
      exited = true;
      ::fcntl(out_r.get(), F_SETFL, O_NONBLOCK);
      char buf[4096];
      ssize_t r;
      while ((r = ::read(out_r.get(), buf, sizeof buf)) > 0)
        if (output.size() < 65536) output.append(buf, static_cast<size_t>(r));
      out_open = false;
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  std::string detail = output.empty() ? "" : ": " + output;
  if (timed_out)
    throw Error(stage + " hook " + hook.path + " ran past specified timeout of " + std::to_string(*hook.timeout) + "s");
  if (WIFSIGNALED(status))
    throw Error(stage + " hook " + hook.path + " killed by signal " + std::to_string(WTERMSIG(status)) + detail);
  if (WEXITSTATUS(status) != 0)
    throw Error(stage + " hook " + hook.path + " exited with status " + std::to_string(WEXITSTATUS(status)) + detail);
}

}  // namespace

void run_hooks(const std::vector<Hook>& hooks, const std::string& state_json, const std::string& stage,
               const std::string& cwd) {
  for (const auto& h : hooks) run_hook(h, state_json, stage, cwd);
}

void run_hooks_warning(const std::vector<Hook>& hooks, const std::string& state_json, const std::string& stage,
                       const std::string& cwd) {
  for (const auto& h : hooks) {
    try {
      run_hook(h, state_json, stage, cwd);
    } catch (const Error& e) {
      log::warn(e.what());
    }
  }
}

}  // namespace berth::runtime
