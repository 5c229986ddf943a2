// libFuzzer target for the API server's request parsing and body decoding: arbitrary bytes as an
// HTTP request; whatever parses goes through the query, filters and JSON body decoders.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/http.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  berth::api::Limits limits;
  limits.json_body_bytes = 1 << 16;
  limits.upload_body_bytes = 1 << 20;
  berth::api::Request r;
  try {
    if (berth::api::parse_request(std::string_view(reinterpret_cast<const char*>(data), size), r, limits) == 0)
      return 0;
    (void)r.filters();
    (void)r.json_body();
    (void)r.flag("all");
    (void)r.number("limit", 0);
  } catch (const berth::Error&) {
  }
  return 0;
}
