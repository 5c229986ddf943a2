// Terminals: a pty made inside the container, its master sent over the
// --console-socket with SCM_RIGHTS (runc's protocol).
#pragma once

#include <optional>
#include <string>

#include "runtime/spec.hpp"
#include "util/fd.hpp"

namespace berth::runtime {

UniqueFd connect_unix_socket(const std::string& path);
void send_fd(int sock, int fd, const std::string& name);
// Receives one fd sent by send_fd; throws on EOF or a message without one.
UniqueFd recv_fd(int sock);

// In the container (after pivot_root): new pty, master sent to console_sock,
// slave on stdin/stdout/stderr as the controlling terminal, bound on /dev/console.
void setup_console(int console_sock, const std::optional<ConsoleSize>& size, bool mount_dev_console);

}  // namespace berth::runtime
