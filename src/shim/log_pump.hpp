// The bridge between the shim's event loop and the json-file log: a bounded ring buffer filled by
// the loop and drained by one writer thread, so a slow disk never blocks the container. When the
// ring is full the output is dropped and counted (the status file's log_dropped).
#pragma once

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "logs/json_file.hpp"

namespace berth::shim {

class LogPump {
 public:
  enum Kind : uint8_t { kStdoutRecord = 1, kStderrRecord = 2, kFlushRecord = 3 };

  // Opens the log (throws berth::Error naming it) and starts the writer thread.
  LogPump(const std::string& path, logs::Limits limits, size_t capacity);
  ~LogPump();
  LogPump(const LogPump&) = delete;
  LogPump& operator=(const LogPump&) = delete;

  // Queues output; false (and counted as dropped) when the ring has no room for it.
  bool push(Kind kind, std::string_view data, int64_t time_ns);
  // Whether n more bytes of output fit now.
  bool has_room(size_t n);
  // Waits up to timeout_ms for room for n bytes of output.
  bool wait_for_room(size_t n, int timeout_ms);
  // Drains the ring, writes the unterminated tails and joins the thread.
  void stop();
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  static void* thread_main(void* self);
  void drain();
  void put(const void* data, size_t n);
  void take(void* data, size_t n);

  logs::JsonFileWriter writer_;
  char* ring_;  // mmap'ed, page aligned: its pages are given back after a burst
  size_t capacity_;
  size_t head_ = 0;  // next byte to read
  size_t size_ = 0;  // bytes queued
  bool stopping_ = false;
  bool thread_started_ = false;
  bool write_failed_ = false;
  uint64_t since_trim_ = 0;  // bytes written since memory was last given back
  pthread_t thread_{};
  std::mutex mu_;
  std::condition_variable cv_;       // data queued, or stopping
  std::condition_variable room_cv_;  // data taken
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace berth::shim
