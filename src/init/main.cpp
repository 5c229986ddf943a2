// berth-init: pid 1 for `berth run --init`. Runs the command as its child, forwards the signals
// it gets to it, reaps every zombie re-parented to it, and exits with the child's status
// (128+signal when the child was killed). Written by hand: it is 60 lines and must be static and
// tiny; tini is not packaged as a static library.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  int first = 1;
  if (first < argc && std::strcmp(argv[first], "--") == 0) first++;
  if (first >= argc) {
    std::fprintf(stderr, "berth-init: usage: berth-init [--] COMMAND [ARG...]\n");
    return 125;
  }
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t child = fork();
  if (child < 0) {
    std::fprintf(stderr, "berth-init: fork: %s\n", std::strerror(errno));
    return 125;
  }
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &old, nullptr);
    // Its own process group, so a terminal's ^C reaches it as it would without an init.
    setpgid(0, 0);
    execvp(argv[first], argv + first);
    std::fprintf(stderr, "berth-init: exec %s: %s\n", argv[first], std::strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  for (;;) {
    siginfo_t info{};
    if (sigwaitinfo(&all, &info) < 0) continue;
    if (info.si_signo != SIGCHLD) {
      // Everything else is for the command (SIGKILL and SIGSTOP never reach us anyway).
      kill(child, info.si_signo);
      continue;
    }
    for (;;) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == child) {
        // Reap the rest that are already dead, then leave with the command's status.
        while (waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
      }
    }
  }
}
