#include "util/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "util/time_text.hpp"

namespace berth::log {
namespace {

struct State {
  int fd = 2;
  Format format = Format::Text;
  bool debug = false;
  bool to_file = false;
};

State& state() {
  static State s;
  return s;
}

std::string timestamp() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return rfc3339_utc(int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec, Fraction::Nine);
}

void emit(std::string_view level, std::string_view msg) {
  State& s = state();
  std::string line;
  if (s.format == Format::Json) {
    nlohmann::json j = {{"level", level}, {"msg", msg}, {"time", timestamp()}};
    line = j.dump() + "\n";
  } else {
    line = "time=\"" + timestamp() + "\" level=" + std::string(level) + " msg=\"" + std::string(msg) + "\"\n";
  }
  if (::write(s.fd, line.data(), line.size()) < 0) {
    // Nowhere left to report a failed log write.
  }
}

}  // namespace

void configure(const std::string& path, Format format, bool debug) {
  State& s = state();
  s.format = format;
  s.debug = debug;
  if (!path.empty()) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      s.fd = fd;
      s.to_file = true;
    }
  }
}

void debug(std::string_view msg) {
  if (state().debug) emit("debug", msg);
}
// Without --log, warnings go to stderr as one line (runc's logrus does the same).
void warn(std::string_view msg) {
  if (state().to_file) {
    emit("warning", msg);
    return;
  }
  std::string line = "berth: warning: " + std::string(msg) + "\n";
  if (::write(2, line.data(), line.size()) < 0) {
    // Nowhere left to report it.
  }
}
void error(std::string_view msg) {
  if (state().to_file) emit("error", msg);
}

}  // namespace berth::log
