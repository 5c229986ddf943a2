#include "shim/log_pump.hpp"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <exception>

#include "util/error.hpp"

namespace berth::shim {
namespace {

constexpr size_t kRecordHeader = 1 + 4 + 8;  // kind, length, time
// JsonFileWriter only formats lines and writes them: a small stack keeps the shim's RSS down.
constexpr size_t kThreadStack = 64 * 1024;
// After this much output, memory is given back once the log has been idle for a second.
constexpr uint64_t kTrimAfter = 256 * 1024;

void report(const char* what) {
  // fd 2 is <state-dir>/shim.log once the shim has detached.
  std::string line = std::string("berth-shim: log: ") + what + "\n";
  (void)!::write(2, line.data(), line.size());
}

}  // namespace

LogPump::LogPump(const std::string& path, logs::Limits limits, size_t capacity)
    : writer_(path, limits), capacity_(capacity) {
  void* ring = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring == MAP_FAILED) throw_errno("mmap the log buffer");
  ring_ = static_cast<char*>(ring);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kThreadStack);
  int err = pthread_create(&thread_, &attr, &LogPump::thread_main, this);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    ::munmap(ring_, capacity_);
    throw_errno("start the log writer thread", err);
  }
  thread_started_ = true;
}

LogPump::~LogPump() {
  stop();
  ::munmap(ring_, capacity_);
}

void LogPump::put(const void* data, size_t n) {
  if (n == 0) return;  // a flush record's empty view may have no pointer at all
  size_t tail = (head_ + size_) % capacity_;
  size_t first = n < capacity_ - tail ? n : capacity_ - tail;
  std::memcpy(ring_ + tail, data, first);
  std::memcpy(ring_, static_cast<const char*>(data) + first, n - first);
  size_ += n;
}

void LogPump::take(void* data, size_t n) {
  if (n == 0) return;
  size_t first = n < capacity_ - head_ ? n : capacity_ - head_;
  std::memcpy(data, ring_ + head_, first);
  std::memcpy(static_cast<char*>(data) + first, ring_, n - first);
  head_ = (head_ + n) % capacity_;
  size_ -= n;
}

bool LogPump::push(Kind kind, std::string_view data, int64_t time_ns) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || size_ + kRecordHeader + data.size() > capacity_) {
      dropped_.fetch_add(data.size(), std::memory_order_relaxed);
      return false;
    }
    char header[kRecordHeader];
    header[0] = static_cast<char>(kind);
    auto len = static_cast<uint32_t>(data.size());
    std::memcpy(header + 1, &len, 4);
    std::memcpy(header + 5, &time_ns, 8);
    put(header, sizeof header);
    put(data.data(), data.size());
  }
  cv_.notify_one();
  return true;
}

bool LogPump::has_room(size_t n) {
  std::lock_guard lock(mu_);
  return size_ + kRecordHeader + n <= capacity_;
}

bool LogPump::wait_for_room(size_t n, int timeout_ms) {
  std::unique_lock lock(mu_);
  return room_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                           [&] { return size_ + kRecordHeader + n <= capacity_; });
}

void* LogPump::thread_main(void* self) {
  static_cast<LogPump*>(self)->drain();
  return nullptr;
}

void LogPump::drain() {
  std::string data;
  for (;;) {
    char header[kRecordHeader];
    {
      std::unique_lock lock(mu_);
      auto ready = [&] { return size_ > 0 || stopping_; };
      while (!ready()) {
        if (since_trim_ < kTrimAfter) {
          cv_.wait(lock, ready);
        } else if (!cv_.wait_for(lock, std::chrono::seconds(1), ready)) {
          // Idle after a burst: give back the pages it touched (the ring is empty, its contents
          // don't matter), so a shim that once logged a lot returns to its idle size.
          since_trim_ = 0;
          std::string().swap(data);
          ::madvise(ring_, capacity_, MADV_DONTNEED);
          ::malloc_trim(0);
        }
      }
      if (size_ == 0) return;  // stopping and drained
      take(header, sizeof header);
      uint32_t len;
      std::memcpy(&len, header + 1, 4);
      data.resize(len);
      take(data.data(), len);
    }
    room_cv_.notify_one();
    int64_t time_ns;
    std::memcpy(&time_ns, header + 5, 8);
    since_trim_ += data.size();
    if (write_failed_) {
      dropped_.fetch_add(data.size(), std::memory_order_relaxed);
      continue;
    }
    try {
      if (header[0] == kFlushRecord)
        writer_.flush(time_ns);
      else
        writer_.write(header[0] == kStdoutRecord ? "stdout" : "stderr", data, time_ns);
    } catch (const std::exception& e) {
      // A full or broken disk: report once, then count what cannot be written.
      report(e.what());
      write_failed_ = true;
      dropped_.fetch_add(data.size(), std::memory_order_relaxed);
    }
  }
}

void LogPump::stop() {
  if (!thread_started_) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  pthread_join(thread_, nullptr);
  thread_started_ = false;
}

}  // namespace berth::shim
