// HTTP/1.1 for the Docker Engine API: requests parsed by Boost.Beast's parser from bytes we read
// ourselves (one blocking thread per connection), responses written by hand, because the API needs
// what a request/response library hides: streaming bodies whose headers go out before the body
// exists (wait, events, logs -f), and hijacking the connection for attach and exec.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/error.hpp"

namespace berth::api {

// An error answered as {"message": …} with this status.
class HttpError : public Error {
 public:
  HttpError(int status, const std::string& message) : Error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct Request {
  std::string method;
  std::string target;       // as sent: "/v1.41/containers/json?all=1"
  std::string path;         // without the version prefix and the query: "/containers/json"
  std::string api_version;  // "1.41" from the path; empty when the path had none
  std::multimap<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  bool keep_alive = true;

  bool has(const std::string& key) const { return query.count(key) > 0; }
  // The last value of a query parameter, or fallback.
  std::string q(const std::string& key, const std::string& fallback = "") const;
  // docker's boolean query values: "1", "true", "True" are true; absent is fallback.
  bool flag(const std::string& key, bool fallback = false) const;
  // An integer query value; HttpError 400 naming the value when it is not one.
  long long number(const std::string& key, long long fallback) const;
  std::string header(const std::string& name) const;
  // The body as JSON (an empty body is `empty`); HttpError 400 on malformed JSON.
  nlohmann::json json_body(const nlohmann::json& empty = nlohmann::json::object()) const;
  // docker's "filters" query parameter: {"key":["v",…]} or the old {"key":{"v":true}} form.
  std::map<std::string, std::vector<std::string>> filters() const;
};

// Limits on what a client may send.
struct Limits {
  size_t header_bytes = 64 * 1024;
  size_t json_body_bytes = 16 * 1024 * 1024;
  size_t upload_body_bytes = size_t{4} << 30;  // image load, archive PUT, import
  std::chrono::seconds idle{300};              // waiting for a next request on a kept-alive connection
  std::chrono::seconds request{60};            // from a request's first byte to its last
};

// Splits "/v1.41/containers/json?all=1&filters=%7B%7D" into path, version and decoded query.
// HttpError 400 on a malformed target.
void parse_target(Request& r);
std::string url_decode(std::string_view s);

// Parses one request from `bytes` (a whole request, as the fuzzer feeds it): the number of bytes
// used, 0 when more are needed. HttpError 400/413 when malformed or too large.
size_t parse_request(std::string_view bytes, Request& out, const Limits& limits);

class Connection {
 public:
  Connection(int fd, Limits limits) : fd_(fd), limits_(limits) {}
  int fd() const { return fd_; }

  // Reads the next request. False on a clean close (or an idle timeout) before one started.
  // HttpError on malformed or oversized requests and on timeouts mid-request.
  bool read(Request& r);

  void respond(int status, std::string_view content_type, std::string_view body,
               const std::map<std::string, std::string>& headers = {});
  void json(int status, const nlohmann::json& body);
  void error(int status, const std::string& message);
  void no_content(int status = 204);

  // A chunked streaming response: headers now, then chunks, then the end.
  void begin_chunked(int status, std::string_view content_type, const std::map<std::string, std::string>& headers = {});
  // False when the client went away.
  bool chunk(std::string_view data);
  void end_chunked();

  // Takes the connection over for a raw stream (attach, exec start): answers 101 Switching
  // Protocols when the client asked to upgrade, else 200 with the stream as the body. After this
  // the connection is closed when the handler returns.
  void hijack(const Request& r, std::string_view content_type);
  // Bytes the client sent past the request (stdin that raced the upgrade).
  std::string take_pending();

  bool keep_alive() const { return keep_alive_; }
  void close_after() { keep_alive_ = false; }
  bool responded() const { return responded_; }

 private:
  void write(std::string_view data);

  int fd_;
  Limits limits_;
  std::string buffer_;
  bool keep_alive_ = true;
  bool responded_ = false;
  bool head_only_ = false;  // a HEAD request: headers as for GET, no body
};

const char* status_reason(int status);

}  // namespace berth::api
