// The API server's insides shared by the handler files (not a public header).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/api.hpp"
#include "api/http.hpp"
#include "image/reference.hpp"
#include "image/registry.hpp"

namespace berth::image {
class ImageStore;
}
namespace berth::engine {
class Engine;
class VolumeStore;
}  // namespace berth::engine

namespace berth::api {

// One set of stores on its own database connection: SQLite connections are not shared between
// threads (a transaction of one request must not swallow another's statements).
struct Stores {
  std::unique_ptr<image::ImageStore> images;
  std::unique_ptr<engine::VolumeStore> volumes;
  std::unique_ptr<engine::Engine> engine;
  ~Stores();
};

// An exec instance (POST /containers/{id}/exec), kept in memory as docker keeps them.
struct ExecInstance {
  std::string id, container_id;
  nlohmann::json config;  // the ExecConfig body
  bool running = false, done = false;
  int exit_code = 0;
  int pid = 0;
  int terminal_fd = -1;  // the pty master while running with a tty (for resize)
};

class Server {
 public:
  explicit Server(ServeOptions options);
  const ServeOptions& options() const { return options_; }

  std::unique_ptr<Stores> acquire();
  void release(std::unique_ptr<Stores> stores);

  // A client attached to a created container before starting it: the start that follows makes
  // the shim wait for that attach, so no output is missed.
  void expect_attach(const std::string& id, int delta);
  bool attach_expected(const std::string& id);

  std::mutex exec_mutex;
  std::map<std::string, ExecInstance> execs;

 private:
  ServeOptions options_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Stores>> pool_;
  std::map<std::string, int> attach_waiters_;
};

// What a handler gets.
struct Call {
  Server& server;
  Connection& conn;
  const Request& req;
  std::vector<std::string> params;  // the path's variable parts, in order

  engine::Engine& engine();
  image::ImageStore& images();
  engine::VolumeStore& volumes();
  // Gives the stores back (before a long stream); the next accessor call takes them again.
  void release();
  ~Call();

  std::unique_ptr<Stores> stores_;

 private:
  Stores& stores();
};

using Handler = void (*)(Call&);

struct Route {
  const char* method;
  const char* pattern;  // "/containers/{}/start"; "{*}" matches one or more segments (image names)
  Handler handler;
};

std::vector<Route> system_routes();
std::vector<Route> container_routes();
std::vector<Route> exec_routes();
std::vector<Route> image_routes();
std::vector<Route> volume_routes();
std::vector<Route> network_routes();
std::vector<Route> archive_routes();
std::vector<Route> build_routes();

// Insecure registries from serve's options; credentials from X-Registry-Auth, else the server's
// docker config (images.cpp; builds pull their base images with it too).
image::RegistryOptions registry_options(const Call& call, const image::Reference& ref);

// POST /images/create?fromSrc=-: the body is a root filesystem tarball made into an image
// (docker import). Defined with the other tar streams (archive.cpp).
void import_from_body(Call& call);

// docker's stdcopy frame (multiplexed stdout = 1 / stderr = 2): an 8-byte header, then payload.
std::string frame(uint8_t stream, std::string_view payload);

// Maps an engine error to docker's status: 404 no such …, 409 conflicts, 400 bad input, else 500.
int status_for(const std::exception& e);

}  // namespace berth::api
