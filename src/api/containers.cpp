// /containers/…: the engine's container operations in docker's API shapes.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "api/server.hpp"
#include "engine/diff.hpp"
#include "engine/engine.hpp"
#include "engine/inspect.hpp"
#include "engine/networks.hpp"
#include "engine/stats.hpp"
#include "logs/json_file.hpp"
#include "util/fs.hpp"
#include "util/sqlite.hpp"

namespace berth::api {

using engine::Container;
using nlohmann::json;

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string command_text(engine::Engine& eng, const Container& c) {
  std::string out;
  for (const auto& a : engine::container_args(eng, c)) {
    std::string part = !out.empty() && a.find(' ') != std::string::npos ? "'" + a + "'" : a;
    out += (out.empty() ? "" : " ") + part;
  }
  return out;
}

// One element of GET /containers/json (docker's ContainerSummary).
// c is consumed: its stored mounts and labels move into the summary.
json summary(engine::Engine& eng, Container& c) {
  json ports = json::array();
  if (c.running())
    for (const auto& p : eng.networks().ports(c.id))
      ports.push_back(
          {{"IP", p.host_ip}, {"PrivatePort", p.container_port}, {"PublicPort", p.host_port}, {"Type", p.proto}});
  json networks = json::object();
  std::string mode = c.config["HostConfig"].value("NetworkMode", "default");
  if (c.running()) {
    for (const auto& e : eng.networks().endpoints(c.id))
      networks[e.network_name] = {
          {"NetworkID", e.network_id}, {"EndpointID", e.network_id.substr(0, 32) + e.container_id.substr(0, 32)},
          {"Gateway", e.gateway},      {"IPAddress", e.ip},
          {"IPPrefixLen", e.prefix},   {"MacAddress", e.mac},
          {"Aliases", nullptr},        {"IPv6Gateway", ""},
          {"GlobalIPv6Address", ""},   {"GlobalIPv6PrefixLen", 0}};
  }
  json mounts = c.mounts.is_array() ? std::move(c.mounts) : json::array();
  json labels = json::object();
  if (auto cfg = c.config.find("Config"); cfg != c.config.end() && cfg->is_object())
    if (auto it = cfg->find("Labels"); it != cfg->end() && it->is_object()) labels = std::move(*it);
  return {{"Id", c.id},
          {"Names", json::array({"/" + c.name})},
          {"Image", c.image_name},
          {"ImageID", c.image_id},
          {"Command", command_text(eng, c)},
          {"Created", c.created_ns / 1000000000},
          {"Ports", std::move(ports)},
          {"Labels", std::move(labels)},
          {"State", c.state},
          {"Status", engine::status_text(c)},
          {"HostConfig", {{"NetworkMode", mode}}},
          {"NetworkSettings", {{"Networks", std::move(networks)}}},
          {"Mounts", std::move(mounts)}};
}

bool prefix_any(const std::string& s, const std::vector<std::string>& values) {
  for (const auto& v : values)
    if (s.rfind(v, 0) == 0) return true;
  return false;
}

bool label_match(const json& labels, const std::string& filter) {
  size_t eq = filter.find('=');
  std::string key = filter.substr(0, eq);
  if (!labels.is_object() || !labels.contains(key)) return false;
  if (eq == std::string::npos) return true;
  return labels[key].is_string() && labels[key].get<std::string>() == filter.substr(eq + 1);
}

bool passes(const Container& c, const std::map<std::string, std::vector<std::string>>& filters) {
  for (const auto& [key, values] : filters) {
    if (values.empty()) continue;
    bool ok = false;
    if (key == "id") {
      ok = prefix_any(c.id, values);
    } else if (key == "name") {
      for (const auto& v : values) ok = ok || c.name.find(v[0] == '/' ? v.substr(1) : v) != std::string::npos;
    } else if (key == "status") {
      for (const auto& v : values) ok = ok || v == c.state;
    } else if (key == "label") {
      ok = true;
      for (const auto& v : values) ok = ok && label_match(c.config["Config"].value("Labels", json::object()), v);
    } else if (key == "ancestor") {
      for (const auto& v : values)
        ok = ok || v == c.image_name || c.image_id.find(v) != std::string::npos || c.image_name.rfind(v + ":", 0) == 0;
    } else if (key == "exited") {
      for (const auto& v : values) ok = ok || (c.state == "exited" && v == std::to_string(c.exit_code));
    } else if (key == "network") {
      for (const auto& n : engine::container_networks(c.config, c.config["HostConfig"].value("NetworkMode", "")))
        for (const auto& v : values) ok = ok || n == v;
    } else if (key == "volume") {
      for (const auto& m : c.mounts)
        for (const auto& v : values) ok = ok || m.value("Name", "") == v || m.value("Destination", "") == v;
    } else if (key == "health") {
      std::string h = c.health.is_object() ? c.health.value("Status", "none") : "none";
      for (const auto& v : values) ok = ok || v == h;
    } else if (key == "is-task") {
      ok = true;
    } else {
      throw HttpError(400, "invalid filter '" + key + "'");
    }
    if (!ok) return false;
  }
  return true;
}

void list(Call& call) {
  bool all = call.req.flag("all");
  long long limit = call.req.number("limit", -1);
  auto filters = call.req.filters();
  auto& eng = call.engine();
  auto containers = eng.list();
  // Newest first, as docker lists them.
  std::sort(containers.begin(), containers.end(),
            [](const Container& a, const Container& b) { return a.created_ns > b.created_ns; });
  json out = json::array();
  for (auto& c : containers) {
    if (!all && limit <= 0 && !c.running() && !filters.count("status") && !filters.count("exited")) continue;
    if (!passes(c, filters)) continue;
    if (limit > 0 && static_cast<long long>(out.size()) >= limit) break;
    out.push_back(summary(eng, c));
  }
  call.conn.json(200, out);
}

void create(Call& call) {
  json body = call.req.json_body();
  if (!body.is_object()) throw HttpError(400, "invalid JSON: the body must be an object");
  if (call.req.has("name")) body["Name"] = call.req.q("name");
  for (const char* key : {"Config", "HostConfig", "NetworkingConfig"})
    if (body.contains(key) && !body[key].is_object() && !body[key].is_null())
      throw HttpError(400, std::string("invalid JSON: ") + key + " must be an object");
  // The top level of docker's body is the container's Config; the engine takes
  // {"Name", "Config", "HostConfig", "NetworkingConfig"}.
  json request = {{"Name", body.value("Name", "")}};
  if (body.contains("HostConfig") && body["HostConfig"].is_object()) request["HostConfig"] = body["HostConfig"];
  if (body.contains("NetworkingConfig") && body["NetworkingConfig"].is_object())
    request["NetworkingConfig"] = body["NetworkingConfig"];
  json config = body;
  for (const char* key : {"Name", "HostConfig", "NetworkingConfig"}) config.erase(key);
  if (!config.contains("Image") || !config["Image"].is_string() || config["Image"].get<std::string>().empty())
    throw HttpError(400, "No image specified");
  request["Config"] = config;
  std::string id = call.engine().create(request);
  call.conn.json(201, {{"Id", id}, {"Warnings", json::array()}});
}

void inspect(Call& call) {
  auto& eng = call.engine();
  Container c = eng.get(call.params[0]);
  const std::string short_id = c.id.substr(0, 12);
  json j = engine::inspect_json(eng, std::move(c));
  // Before API 1.45 the short ID is one of a container's aliases on user-defined networks.
  if (j.contains("NetworkSettings") && j["NetworkSettings"].contains("Networks") &&
      j["NetworkSettings"]["Networks"].is_object()) {
    for (auto& [name, ep] : j["NetworkSettings"]["Networks"].items()) {
      if (name == "bridge" || name == "host" || name == "none" || !ep.is_object()) continue;
      json& aliases = ep["Aliases"];
      if (!aliases.is_array()) aliases = json::array();
      if (std::find(aliases.begin(), aliases.end(), short_id) == aliases.end()) aliases.push_back(short_id);
    }
  }
  call.conn.json(200, j);
}

void start(Call& call) {
  auto& eng = call.engine();
  Container c = eng.get(call.params[0]);
  if (c.running()) {
    call.conn.no_content(304);
    return;
  }
  engine::StartOptions opts;
  opts.wait_attach = call.server.attach_expected(c.id);
  eng.start(c.id, opts);
  call.conn.no_content();
}

std::optional<int> timeout_param(const Call& call) {
  if (!call.req.has("t")) return std::nullopt;
  return static_cast<int>(call.req.number("t", 10));
}

void stop(Call& call) {
  auto& eng = call.engine();
  Container c = eng.get(call.params[0]);
  if (!c.running()) {
    call.conn.no_content(304);
    return;
  }
  eng.stop(c.id, timeout_param(call));
  call.conn.no_content();
}

void restart(Call& call) {
  auto& eng = call.engine();
  Container c = eng.get(call.params[0]);
  if (c.running()) eng.stop(c.id, timeout_param(call));
  eng.start(c.id);
  call.conn.no_content();
}

void kill(Call& call) {
  auto& eng = call.engine();
  Container c = eng.get(call.params[0]);
  int sig = SIGKILL;
  if (call.req.has("signal") && !call.req.q("signal").empty()) {
    try {
      sig = engine::parse_signal_name(call.req.q("signal"));
    } catch (const std::exception& e) {
      throw HttpError(400, e.what());
    }
  }
  if (!c.running()) throw HttpError(409, "Container " + c.id + " is not running");
  eng.kill(c.id, sig);
  call.conn.no_content();
}

void remove(Call& call) {
  call.engine().remove(call.params[0], call.req.flag("force"), call.req.flag("v"));
  call.conn.no_content();
}

void rename(Call& call) {
  std::string name = call.req.q("name");
  if (name.empty()) throw HttpError(400, "name cannot be empty");
  call.engine().rename(call.params[0], name);
  call.conn.no_content();
}

// POST /containers/{id}/update: docker update (resources and restart policy).
void update(Call& call) {
  json body = call.req.json_body();
  if (!body.is_object()) throw HttpError(400, "invalid update body: a JSON object is expected");
  std::vector<std::string> warnings = call.engine().update(call.params[0], body);
  call.conn.json(200, {{"Warnings", warnings}});
}

void pause(Call& call) {
  call.engine().pause(call.params[0]);
  call.conn.no_content();
}

void unpause(Call& call) {
  call.engine().unpause(call.params[0]);
  call.conn.no_content();
}

void resize(Call& call) {
  int h = static_cast<int>(call.req.number("h", 0));
  int w = static_cast<int>(call.req.number("w", 0));
  auto& eng = call.engine();
  Container c = eng.get(call.params[0]);
  if (!c.running()) throw HttpError(409, "Container " + c.id + " is not running");
  if (h > 0 && w > 0) eng.resize(c.id, h, w);
  call.conn.respond(200, "text/plain; charset=utf-8", "");
}

// The exit code of a container removed meanwhile: its last "die" event.
int removed_exit_code(Call& call, const std::string& id) {
  sql::Stmt s(call.engine().db(),
              "SELECT attributes FROM events WHERE actor_id=? AND action='die' ORDER BY seq DESC LIMIT 1");
  s.bind(1, id);
  if (!s.step()) return 0;
  json a = json::parse(s.text(0), nullptr, false);
  try {
    return std::stoi(a.value("exitCode", "0"));
  } catch (const std::exception&) {
    return 0;
  }
}

// POST /containers/{id}/wait?condition=not-running|next-exit|removed. The headers go out at once
// (docker's client waits for them before it starts the container), the result when it is known.
void wait(Call& call) {
  std::string condition = call.req.q("condition", "not-running");
  if (condition.empty()) condition = "not-running";
  if (condition != "not-running" && condition != "next-exit" && condition != "removed")
    throw HttpError(400, "invalid condition: \"" + condition + "\"");
  Container c = call.engine().get(call.params[0]);
  std::string id = c.id;
  // docker's client waits for removal of a --rm container: this call removes it (below), so the
  // shim's exit command need not (it still runs if this call ends without removing it).
  UniqueFd removal_claim;
  const json host_config = c.config.is_object() ? c.config.value("HostConfig", json::object()) : json::object();
  if (condition == "removed" && host_config.is_object() && host_config.value("AutoRemove", false))
    removal_claim = call.engine().claim_removal(id);
  std::string first_finish = c.finished_at;
  int first_restarts = c.restart_count;
  bool seen_running = c.running();
  call.conn.begin_chunked(200, "application/json");
  call.release();
  int code = 0;
  std::string error;
  auto delay = std::chrono::milliseconds(2);
  for (;;) {
    std::optional<Container> now;
    bool removing = false;
    try {
      now = call.engine().get(id);
    } catch (const engine::NotFound&) {
      // get() hides a row being removed; "removed" means its files are gone too.
      removing = condition == "removed" && call.engine().exists(id);
      if (!removing) {
        code = removed_exit_code(call, id);
        break;
      }
    }
    call.release();
    if (now && now->running()) seen_running = true;
    bool exited_since = now && (now->finished_at != first_finish || now->restart_count != first_restarts);
    if (now && !now->running()) {
      if (condition == "not-running") {
        code = now->exit_code;
        break;
      }
      if (condition == "next-exit" && (seen_running || exited_since) && now->state != "created") {
        code = now->exit_code;
        break;
      }
      if (condition == "removed" && (now->state == "exited" || now->state == "dead") && !now->config.is_null()) {
        // Wait for the removal (--rm); docker answers with the exit code.
        code = now->exit_code;
        if (now->config["HostConfig"].value("AutoRemove", false)) {
          // As the CLI's run --rm: remove it here once its shim has ended rather than wait for the
          // shim's exit command to start and do it.
          try {
            call.engine().remove_exited(id, true, std::chrono::seconds(10));
            call.release();
            break;
          } catch (const Error&) {
            call.release();         // the exit command's removal, or a later one, is waited for below:
            removal_claim.reset();  // it waits for this claim, so let it go
          }
        }
      }
    }
    // The client hung up: stop waiting.
    pollfd p[2] = {{call.conn.fd(), 0, 0}, {-1, POLLIN, 0}};
    if (::poll(p, 1, 0) > 0 && (p[0].revents & (POLLHUP | POLLERR))) return;
    // A running container: its shim's pidfd wakes us when it exits (a restart policy keeps the
    // shim, so the wait is bounded and the state read again); otherwise poll.
    UniqueFd shim;
    if (now && now->running()) {
      shim = call.engine().shim_pidfd(id);
      call.release();
    }
    if (shim) {
      p[1].fd = shim.get();
      ::poll(p, 2, 100);
      if (p[0].revents & (POLLHUP | POLLERR)) return;
      delay = std::chrono::milliseconds(2);
    } else {
      // Created, not yet started (docker run asks for the wait first): at most 16 ms behind the
      // start, at a cost of one row read per step.
      std::this_thread::sleep_for(delay);
      if (delay < std::chrono::milliseconds(16)) delay *= 2;
    }
  }
  json body = {{"StatusCode", code}};
  body["Error"] = error.empty() ? json(nullptr) : json{{"Message", error}};
  call.conn.chunk(body.dump() + "\n");
  call.conn.end_chunked();
}

void logs(Call& call) {
  auto& eng = call.engine();
  Container c = eng.get(call.params[0]);
  logs::ReadOptions opts;
  opts.stdout_stream = call.req.flag("stdout");
  opts.stderr_stream = call.req.flag("stderr");
  if (!opts.stdout_stream && !opts.stderr_stream)
    throw HttpError(400, "Bad parameters: you must choose at least one stream");
  opts.follow = call.req.flag("follow");
  int64_t now = now_ns();
  try {
    if (!call.req.q("since").empty() && call.req.q("since") != "0")
      opts.since_ns = logs::parse_time_arg(call.req.q("since"), now);
    if (!call.req.q("until").empty() && call.req.q("until") != "0")
      opts.until_ns = logs::parse_time_arg(call.req.q("until"), now);
  } catch (const std::exception& e) {
    throw HttpError(400, e.what());
  }
  std::string tail = call.req.q("tail", "all");
  if (!tail.empty() && tail != "all") opts.tail = call.req.number("tail", -1);
  bool timestamps = call.req.flag("timestamps");
  bool tty = c.config["Config"].value("Tty", false);
  std::string path = eng.log_path(c.id);
  std::string id = c.id;
  call.conn.begin_chunked(200, tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream");
  call.release();
  bool gone = false;
  auto last_check = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  bool stopped_cached = false;
  logs::read(
      path, opts,
      [&](const logs::Entry& e) {
        if (gone) return;
        std::string text = timestamps ? e.time + " " + e.log : e.log;
        std::string out = tty ? text : frame(e.stream == "stderr" ? 2 : 1, text);
        if (!call.conn.chunk(out)) gone = true;
      },
      [&]() {
        if (gone) return true;
        pollfd p{call.conn.fd(), 0, 0};
        if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR))) return gone = true;
        auto t = std::chrono::steady_clock::now();
        if (t - last_check >= std::chrono::milliseconds(100)) {
          last_check = t;
          try {
            stopped_cached = !call.engine().get(id).running();
          } catch (const std::exception&) {
            stopped_cached = true;
          }
          call.release();
        }
        return stopped_cached;
      });
  if (!gone) call.conn.end_chunked();
}

// POST /containers/{id}/attach: the connection becomes the container's stdio.
void attach(Call& call) {
  auto& eng = call.engine();
  Container c = eng.get(call.params[0]);
  if (!call.req.flag("stream") && !call.req.flag("logs"))
    throw HttpError(400, "Bad parameters: you must choose at least one stream");
  bool tty = c.config["Config"].value("Tty", false);
  bool want_stdin = call.req.flag("stdin"), want_stdout = call.req.flag("stdout"),
       want_stderr = call.req.flag("stderr");
  const std::string log_path = eng.log_path(c.id);
  // logs=1: what the container wrote so far (its log), before the live stream. False when the
  // client went away.
  auto replay_logs = [&]() {
    if (!call.req.flag("logs") || (!want_stdout && !want_stderr)) return true;
    logs::ReadOptions opts;
    opts.stdout_stream = want_stdout;
    opts.stderr_stream = want_stderr;
    bool gone = false;
    logs::read(
        log_path, opts,
        [&](const logs::Entry& e) {
          if (gone) return;
          try {
            write_all(call.conn.fd(), tty ? e.log : frame(e.stream == "stderr" ? 2 : 1, e.log), "attach logs");
          } catch (const std::exception&) {
            gone = true;
          }
        },
        [] { return true; });
    return !gone;
  };
  if (c.state == "exited" || c.state == "dead") {
    // docker: attaching to a stopped container sends its logs (logs=1) and ends.
    call.release();
    call.conn.hijack(call.req, tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream");
    replay_logs();
    return;
  }
  bool before_start = c.state == "created";
  std::string id = c.id;
  call.release();
  if (before_start) call.server.expect_attach(id, 1);
  struct Unexpect {
    Server& s;
    std::string id;
    bool on;
    ~Unexpect() {
      if (on) s.expect_attach(id, -1);
    }
  } unexpect{call.server, id, before_start};
  call.conn.hijack(call.req, tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream");
  if (!replay_logs() || !call.req.flag("stream")) return;
  if (before_start) {
    // Until the container starts there is no shim to connect to.
    for (;;) {
      Container now = call.engine().get(id);
      call.release();
      if (now.state != "created") break;
      pollfd p{call.conn.fd(), 0, 0};
      if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR))) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  engine::AttachIo io;
  io.stdin_fd = want_stdin ? call.conn.fd() : -1;
  io.stdout_fd = want_stdout || want_stderr ? call.conn.fd() : -1;
  io.stderr_fd = want_stderr ? call.conn.fd() : -1;
  io.tty = tty;
  io.multiplex = !tty;
  io.hangup_fd = call.conn.fd();
  try {
    call.engine().attach(id, io);
  } catch (const engine::StatusError&) {
    // The container failed to start: the client learns it from wait and start.
  }
  call.release();
  // Everything sent: tell the client there is no more (it may still be writing stdin).
  ::shutdown(call.conn.fd(), SHUT_WR);
}

// GET /containers/{id}/top?ps_args=: the host's `ps` (default -ef), the container's processes.
void top(Call& call) {
  auto& eng = call.engine();
  Container c = eng.get(call.params[0]);
  if (!c.running()) throw HttpError(409, "Container " + c.id + " is not running");
  std::vector<std::string> args;
  // docker splits ps_args on single spaces
  std::string ps_args = call.req.q("ps_args");
  for (size_t pos = 0; !ps_args.empty();) {
    size_t sp = ps_args.find(' ', pos);
    args.push_back(ps_args.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos));
    if (sp == std::string::npos) break;
    pos = sp + 1;
  }
  engine::ProcessTable table = engine::container_top(c.id, args);
  call.conn.json(200, {{"Titles", table.titles}, {"Processes", table.processes}});
}

void changes(Call& call) {
  auto& eng = call.engine();
  Container c = eng.get(call.params[0]);
  json out = json::array();
  for (const auto& ch : engine::changes_of(eng, call.images(), c))
    out.push_back({{"Path", ch.path}, {"Kind", ch.kind == 'C' ? 0 : ch.kind == 'A' ? 1 : 2}});
  call.conn.json(200, out.empty() ? json(nullptr) : out);
}

// docker's stats object from two samples.
json stats_json(const Container& c, const engine::StatsSample& s, const engine::StatsSample& pre, int64_t read_ns,
                int64_t pre_ns) {
  auto cpu = [](const engine::StatsSample& x) {
    return json{{"cpu_usage", {{"total_usage", x.cpu_ns}, {"usage_in_kernelmode", 0}, {"usage_in_usermode", 0}}},
                {"system_cpu_usage", x.system_ns},
                {"online_cpus", x.online_cpus},
                {"throttling_data", {{"periods", 0}, {"throttled_periods", 0}, {"throttled_time", 0}}}};
  };
  return {{"read", engine::time_string(read_ns)},
          {"preread", pre_ns ? engine::time_string(pre_ns) : "0001-01-01T00:00:00Z"},
          {"pids_stats", {{"current", s.pids}}},
          {"blkio_stats",
           {{"io_service_bytes_recursive",
             json::array({{{"major", 0}, {"minor", 0}, {"op", "read"}, {"value", s.blk_read}},
                          {{"major", 0}, {"minor", 0}, {"op", "write"}, {"value", s.blk_write}}})}}},
          {"num_procs", 0},
          {"storage_stats", json::object()},
          {"cpu_stats", cpu(s)},
          {"precpu_stats", cpu(pre)},
          {"memory_stats", {{"usage", s.mem_usage}, {"limit", s.mem_limit}, {"stats", json::object()}}},
          {"name", "/" + c.name},
          {"id", c.id},
          {"networks",
           {{"eth0",
             {{"rx_bytes", s.net_rx},
              {"tx_bytes", s.net_tx},
              {"rx_packets", 0},
              {"tx_packets", 0},
              {"rx_errors", 0},
              {"tx_errors", 0},
              {"rx_dropped", 0},
              {"tx_dropped", 0}}}}}};
}

// GET /containers/{id}/stats: one object (stream=false; two samples a second apart unless
// one-shot) or one a second until the client goes.
void stats(Call& call) {
  Container c = call.engine().get(call.params[0]);
  call.release();
  bool stream = call.req.flag("stream", true);
  bool one_shot = call.req.flag("one-shot");
  engine::StatsSample pre;
  int64_t pre_ns = 0;
  if (!stream && !one_shot) {
    pre = engine::sample_stats(c.id, c.running() ? c.pid : 0);
    pre_ns = now_ns();
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (!stream) {
    engine::StatsSample s = engine::sample_stats(c.id, c.running() ? c.pid : 0);
    call.conn.json(200, stats_json(c, s, pre, now_ns(), pre_ns));
    return;
  }
  call.conn.begin_chunked(200, "application/json");
  for (;;) {
    engine::StatsSample s = engine::sample_stats(c.id, c.running() ? c.pid : 0);
    int64_t t = now_ns();
    if (!call.conn.chunk(stats_json(c, s, pre, t, pre_ns).dump() + "\n")) return;
    pre = s;
    pre_ns = t;
    pollfd p{call.conn.fd(), 0, 0};
    if (::poll(&p, 1, 1000) > 0 && (p.revents & (POLLHUP | POLLERR))) return;
  }
}

void prune(Call& call) {
  auto filters = call.req.filters();
  auto& eng = call.engine();
  json deleted = json::array();
  for (const auto& c : eng.list()) {
    if (c.running() || c.state == "creating" || c.state == "removing") continue;
    bool ok = true;
    for (const auto& [key, values] : filters) {
      if (key == "label") {
        for (const auto& v : values) ok = ok && label_match(c.config["Config"].value("Labels", json::object()), v);
      } else if (key == "label!") {
        for (const auto& v : values) ok = ok && !label_match(c.config["Config"].value("Labels", json::object()), v);
      } else if (key == "until") {
        int64_t until = 0;
        try {
          until = logs::parse_time_arg(values.empty() ? "" : values[0], now_ns());
        } catch (const std::exception& e) {
          throw HttpError(400, e.what());
        }
        ok = ok && c.created_ns < until;
      } else {
        throw HttpError(400, "invalid filter '" + key + "'");
      }
    }
    if (!ok) continue;
    try {
      eng.remove(c.id, false, false);
      deleted.push_back(c.id);
    } catch (const std::exception&) {
    }
  }
  call.conn.json(200, {{"ContainersDeleted", deleted.empty() ? json(nullptr) : deleted}, {"SpaceReclaimed", 0}});
}

}  // namespace

std::vector<Route> container_routes() {
  return {
      {"GET", "/containers/json", list},           {"POST", "/containers/create", create},
      {"POST", "/containers/prune", prune},        {"GET", "/containers/{}/json", inspect},
      {"POST", "/containers/{}/start", start},     {"POST", "/containers/{}/stop", stop},
      {"POST", "/containers/{}/restart", restart}, {"POST", "/containers/{}/kill", kill},
      {"POST", "/containers/{}/wait", wait},       {"DELETE", "/containers/{}", remove},
      {"POST", "/containers/{}/rename", rename},   {"POST", "/containers/{}/update", update},
      {"POST", "/containers/{}/pause", pause},     {"POST", "/containers/{}/unpause", unpause},
      {"POST", "/containers/{}/resize", resize},   {"GET", "/containers/{}/logs", logs},
      {"POST", "/containers/{}/attach", attach},   {"GET", "/containers/{}/top", top},
      {"GET", "/containers/{}/changes", changes},  {"GET", "/containers/{}/stats", stats},
  };
}

}  // namespace berth::api
