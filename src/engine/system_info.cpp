// docker's system information (GET /info, `berth info`).
#include <limits.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>

#include "engine/inspect.hpp"
#include "engine/stats.hpp"
#include "image/store.hpp"
#include "util/fs.hpp"
#include "util/humanize.hpp"
#include "util/strings.hpp"

namespace berth::engine {

using nlohmann::json;

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string os_pretty_name() {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string v = line.substr(12);
    if (v.size() >= 2 && (v[0] == '"' || v[0] == '\'')) v = v.substr(1, v.size() - 2);
    return v;
  }
  return "Linux";
}

std::string os_version() {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VERSION_ID=", 0) != 0) continue;
    std::string v = line.substr(11);
    if (v.size() >= 2 && (v[0] == '"' || v[0] == '\'')) v = v.substr(1, v.size() - 2);
    return v;
  }
  return "";
}

}  // namespace

json system_info(Engine& eng, image::ImageStore& images, const std::string& root_in, bool debug) {
  int running = 0, paused = 0, stopped = 0;
  auto list = eng.list();
  for (const auto& c : list) {
    if (c.state == "paused")
      paused++;
    else if (c.running())
      running++;
    else
      stopped++;
  }
  size_t image_count = images.list().size();
  struct utsname u {};
  ::uname(&u);
  long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
  uint64_t mem = host_memory_bytes();
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  int cgroups = cgroup_version();
  std::string arch = u.machine;
  std::string root = root_in;
  char real[PATH_MAX];
  if (::realpath(root.c_str(), real)) root = real;
  // A stable ID without state: derived from the machine and the data root.
  std::string machine = std::string(trim(read_file_if_exists("/etc/machine-id").value_or(host)));
  char idbuf[64];
  size_t h1 = std::hash<std::string>{}(machine + "|" + root), h2 = std::hash<std::string>{}(root + "|" + machine);
  std::snprintf(idbuf, sizeof idbuf, "%08zx-%04zx-%04zx-%04zx-%012zx", h1 >> 32 & 0xffffffff, h1 >> 16 & 0xffff,
                h1 & 0xffff, h2 >> 48 & 0xffff, h2 & 0xffffffffffff);
  std::string id = idbuf;
  return {{"ID", id},
          {"Containers", list.size()},
          {"ContainersRunning", running},
          {"ContainersPaused", paused},
          {"ContainersStopped", stopped},
          {"Images", image_count},
          {"Driver", "overlay2"},
          {"DriverStatus",
           json::array({json::array({"Backing Filesystem", "extfs"}), json::array({"Supports d_type", "true"}),
                        json::array({"Using metacopy", "false"}), json::array({"Native Overlay Diff", "true"}),
                        json::array({"userxattr", "false"})})},
          {"Plugins",
           {{"Volume", json::array({"local"})},
            {"Network", json::array({"host", "null"})},
            {"Authorization", nullptr},
            {"Log", json::array({"json-file", "local"})}}},
          {"MemoryLimit", true},
          {"SwapLimit", true},
          {"CpuCfsPeriod", true},
          {"CpuCfsQuota", true},
          {"CPUShares", true},
          {"CPUSet", true},
          {"PidsLimit", true},
          {"IPv4Forwarding", true},
          {"Debug", debug},
          {"NFd", 0},
          {"OomKillDisable", cgroups == 1},
          {"NGoroutines", 0},
          {"SystemTime", rfc3339_nano_local(now_ns())},
          {"LoggingDriver", "json-file"},
          {"CgroupDriver", "cgroupfs"},
          {"CgroupVersion", std::to_string(cgroups)},
          {"NEventsListener", 0},
          {"KernelVersion", u.release},
          {"OperatingSystem", os_pretty_name()},
          {"OSVersion", os_version()},
          {"OSType", "linux"},
          {"Architecture", arch},
          {"IndexServerAddress", "https://index.docker.io/v1/"},
          {"NCPU", ncpu},
          {"MemTotal", mem},
          {"DockerRootDir", root},
          {"HttpProxy", ""},
          {"HttpsProxy", ""},
          {"NoProxy", ""},
          {"Name", host},
          {"Labels", json::array()},
          {"ExperimentalBuild", false},
          {"ServerVersion", "0.1.0"},
          {"Runtimes", {{"berth-runtime", {{"path", eng.runtime_path()}}}}},
          {"DefaultRuntime", "berth-runtime"},
          {"Swarm", {{"LocalNodeState", "inactive"}, {"NodeID", ""}}},
          {"LiveRestoreEnabled", true},
          {"Isolation", ""},
          {"InitBinary", "berth-init"},
          {"SecurityOptions", json::array({"name=seccomp,profile=builtin"})},
          {"Warnings", nullptr}};
}

}  // namespace berth::engine
