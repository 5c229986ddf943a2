// Exec instances: POST /containers/{id}/exec, /exec/{id}/start (hijacked), /resize, /json.
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "api/server.hpp"
#include "engine/engine.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

namespace berth::api {

using nlohmann::json;

namespace {

std::string random_id() {
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 64; i++) id.push_back(hex[rd() % 16]);
  return id;
}

std::vector<std::string> strings(const json& j) {
  std::vector<std::string> out;
  if (j.is_array())
    for (const auto& v : j)
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

void create(Call& call) {
  json body = call.req.json_body();
  if (!body.is_object()) throw HttpError(400, "invalid JSON: the body must be an object");
  auto& eng = call.engine();
  engine::Container c = eng.get(call.params[0]);
  if (c.state == "paused") throw HttpError(409, "Container " + c.id + " is paused, unpause the container before exec");
  if (c.state != "running") throw HttpError(409, "Container " + c.id + " is not running");
  if (strings(body.value("Cmd", json::array())).empty()) throw HttpError(400, "No exec command specified");
  ExecInstance e;
  e.id = random_id();
  e.container_id = c.id;
  e.config = body;
  std::lock_guard lock(call.server.exec_mutex);
  call.server.execs[e.id] = e;
  call.conn.json(201, {{"Id", e.id}});
}

ExecInstance find(Server& server, const std::string& id) {
  std::lock_guard lock(server.exec_mutex);
  auto it = server.execs.find(id);
  if (it == server.execs.end()) throw HttpError(404, "No such exec instance: " + id);
  return it->second;
}

void update(Server& server, const std::string& id, const std::function<void(ExecInstance&)>& f) {
  std::lock_guard lock(server.exec_mutex);
  auto it = server.execs.find(id);
  if (it != server.execs.end()) f(it->second);
}

}  // namespace

// docker's stdcopy frame: {stream, 0, 0, 0, big-endian length} + payload.
std::string frame(uint8_t stream, std::string_view payload) {
  std::string out(8, '\0');
  out[0] = static_cast<char>(stream);
  uint32_t len = static_cast<uint32_t>(payload.size());
  out[4] = static_cast<char>(len >> 24);
  out[5] = static_cast<char>(len >> 16);
  out[6] = static_cast<char>(len >> 8);
  out[7] = static_cast<char>(len);
  out.append(payload);
  return out;
}

namespace {

// Frames what arrives on fd as docker's stream `type` onto the client's socket.
void pump(int fd, int sock, uint8_t type, std::mutex& write_mutex) {
  char buf[32768];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    std::string out = frame(type, std::string_view(buf, static_cast<size_t>(n)));
    std::lock_guard lock(write_mutex);
    std::string_view rest = out;
    while (!rest.empty()) {
      ssize_t w = ::send(sock, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;  // the client went away; keep draining so the process is not blocked
      rest.remove_prefix(static_cast<size_t>(w));
    }
  }
}

void start(Call& call) {
  json body = call.req.json_body();
  ExecInstance e = find(call.server, call.params[0]);
  if (e.running || e.done) throw HttpError(409, "exec " + e.id + " has already been started");
  auto& eng = call.engine();
  engine::Container c = eng.get(e.container_id);
  if (c.state != "running") throw HttpError(409, "Container " + c.id + " is not running");
  engine::ExecRequest req;
  req.args = strings(e.config.value("Cmd", json::array()));
  req.env = strings(e.config.value("Env", json::array()));
  req.user = e.config.value("User", "");
  req.workdir = e.config.value("WorkingDir", "");
  req.tty = body.value("Tty", e.config.value("Tty", false));
  req.interactive = e.config.value("AttachStdin", false);
  req.detach = body.value("Detach", false);
  update(call.server, e.id, [](ExecInstance& x) { x.running = true; });
  struct Done {
    Server& s;
    std::string id;
    int code = -1;
    ~Done() {
      update(s, id, [&](ExecInstance& x) {
        x.running = false;
        x.done = true;
        x.terminal_fd = -1;
        if (code >= 0) x.exit_code = code;
      });
    }
  } done{call.server, e.id};

  if (req.detach) {
    req.in_fd = -1;
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    req.out_fd = req.err_fd = null.get();
    if (req.tty) req.tty = false;  // nobody reads a terminal of a detached exec
    // The process runs on after the runtime returns; docker reports 0 for it until it ends.
    done.code = engine::exec_in(eng, c, req);
    update(call.server, e.id, [&](ExecInstance& x) { x.exit_code = done.code; });
    call.conn.respond(200, "application/json", "");
    return;
  }
  call.conn.hijack(call.req,
                   req.tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream");
  int sock = call.conn.fd();
  // A process that cannot be started: docker says why on the stream, and inspect has 126/127.
  auto run = [&](engine::ExecRequest& r) {
    try {
      return engine::exec_in(eng, c, r);
    } catch (const engine::StatusError& err) {
      std::string text = std::string(err.what()) + "\r\n";
      std::string out = req.tty ? text : frame(2, text);
      [[maybe_unused]] ssize_t n = ::send(sock, out.data(), out.size(), MSG_NOSIGNAL);
      return err.status();
    }
  };
  if (req.tty) {
    req.in_fd = req.interactive ? sock : -1;
    req.out_fd = sock;
    req.err_fd = sock;
    std::string id = e.id;
    Server& server = call.server;
    req.on_terminal = [&server, id](int master) {
      update(server, id, [&](ExecInstance& x) { x.terminal_fd = master; });
    };
    done.code = run(req);
  } else {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw_errno("pipe2");
    UniqueFd out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
    req.in_fd = req.interactive ? sock : -1;
    req.out_fd = out_w.get();
    req.err_fd = err_w.get();
    std::mutex write_mutex;
    bool want_out = e.config.value("AttachStdout", true), want_err = e.config.value("AttachStderr", true);
    std::thread t1([&] { pump(out_r.get(), want_out ? sock : -1, 1, write_mutex); });
    std::thread t2([&] { pump(err_r.get(), want_err ? sock : -1, 2, write_mutex); });
    try {
      done.code = run(req);
    } catch (...) {
      out_w.reset();
      err_w.reset();
      t1.join();
      t2.join();
      throw;
    }
    out_w.reset();  // the pumps end when the process's copies close too
    err_w.reset();
    t1.join();
    t2.join();
  }
  call.release();
  // The exit code first: the client inspects the exec as soon as the stream ends.
  update(call.server, e.id, [&](ExecInstance& x) {
    x.running = false;
    x.done = true;
    x.terminal_fd = -1;
    if (done.code >= 0) x.exit_code = done.code;
  });
  ::shutdown(sock, SHUT_WR);
}

void resize(Call& call) {
  ExecInstance e = find(call.server, call.params[0]);
  int h = static_cast<int>(call.req.number("h", 0));
  int w = static_cast<int>(call.req.number("w", 0));
  std::lock_guard lock(call.server.exec_mutex);
  auto it = call.server.execs.find(e.id);
  if (it != call.server.execs.end() && it->second.terminal_fd >= 0 && h > 0 && w > 0) {
    winsize ws{};
    ws.ws_row = static_cast<unsigned short>(h);
    ws.ws_col = static_cast<unsigned short>(w);
    ::ioctl(it->second.terminal_fd, TIOCSWINSZ, &ws);
  }
  call.conn.respond(200, "text/plain; charset=utf-8", "");
}

void inspect(Call& call) {
  ExecInstance e = find(call.server, call.params[0]);
  const json& cfg = e.config;
  json args = cfg.value("Cmd", json::array());
  std::string entry = args.is_array() && !args.empty() && args[0].is_string() ? args[0].get<std::string>() : "";
  json rest = json::array();
  if (args.is_array())
    for (size_t i = 1; i < args.size(); i++) rest.push_back(args[i]);
  call.conn.json(200, {{"ID", e.id},
                       {"Running", e.running},
                       {"ExitCode", e.done || e.running ? json(e.exit_code) : json(nullptr)},
                       {"ProcessConfig",
                        {{"privileged", cfg.value("Privileged", false)},
                         {"user", cfg.value("User", "")},
                         {"tty", cfg.value("Tty", false)},
                         {"entrypoint", entry},
                         {"arguments", rest}}},
                       {"OpenStdin", cfg.value("AttachStdin", false)},
                       {"OpenStderr", cfg.value("AttachStderr", false)},
                       {"OpenStdout", cfg.value("AttachStdout", false)},
                       {"CanRemove", false},
                       {"ContainerID", e.container_id},
                       {"DetachKeys", ""},
                       {"Pid", e.pid}});
}

}  // namespace

std::vector<Route> exec_routes() {
  return {{"POST", "/containers/{}/exec", create},
          {"POST", "/exec/{}/start", start},
          {"POST", "/exec/{}/resize", resize},
          {"GET", "/exec/{}/json", inspect}};
}

}  // namespace berth::api
