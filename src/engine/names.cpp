// Generated container names, adjective_noun like docker's, from berth's own word lists.
#include "engine/names.hpp"

#include <sys/random.h>

#include <array>
#include <cstdint>

#include "util/error.hpp"

namespace berth::engine {

namespace {

constexpr std::array<const char*, 40> kAdjectives = {
    "amber",  "brave", "calm",    "daring", "eager",   "fair",   "gentle", "happy",   "idle",   "jolly",
    "keen",   "lucid", "mellow",  "nimble", "patient", "quiet",  "rapid",  "steady",  "tidy",   "upbeat",
    "vivid",  "witty", "zealous", "bold",   "clever",  "dapper", "epic",   "fervent", "glad",   "hardy",
    "jovial", "kind",  "lively",  "modest", "noble",   "plucky", "proud",  "serene",  "sturdy", "trusty"};
constexpr std::array<const char*, 40> kNouns = {
    "anchor", "barge",  "buoy",    "cabin", "canal",  "cargo",  "cove",     "dinghy",  "dock",    "ferry",
    "galley", "harbor", "hull",    "jetty", "keel",   "lagoon", "mast",     "marina",  "mooring", "oar",
    "pier",   "port",   "quay",    "raft",  "rudder", "sail",   "schooner", "skiff",   "sloop",   "starboard",
    "stern",  "tide",   "tugboat", "wharf", "yacht",  "beacon", "bollard",  "capstan", "current", "lighthouse"};

uint32_t random_u32() {
  uint32_t v = 0;
  if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) throw_errno("getrandom");
  return v;
}

}  // namespace

std::string generate_name(int attempt) {
  std::string name =
      std::string(kAdjectives[random_u32() % kAdjectives.size()]) + "_" + kNouns[random_u32() % kNouns.size()];
  // After a clash, a number like docker's retry suffix keeps the space large.
  if (attempt > 0) name += std::to_string(random_u32() % 100);
  return name;
}

std::string generate_id() {
  unsigned char bytes[32];
  if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) throw_errno("getrandom");
  static const char* hex = "0123456789abcdef";
  std::string id;
  id.reserve(64);
  for (unsigned char b : bytes) {
    id += hex[b >> 4];
    id += hex[b & 15];
  }
  // docker never hands out an all-digit short ID (it would read as a number); nor do we.
  bool digits = true;
  for (size_t i = 0; i < 12; i++) digits = digits && id[i] >= '0' && id[i] <= '9';
  if (digits) id[0] = 'a';
  return id;
}

}  // namespace berth::engine
