#include "api/http.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cerrno>
#include <cstring>

namespace berth::api {

namespace http = boost::beast::http;
using nlohmann::json;

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_upload(const Request& r) {
  if (r.method != "POST" && r.method != "PUT") return false;
  return r.path == "/images/load" || r.path == "/images/create" || r.path == "/build" ||
         (r.path.rfind("/containers/", 0) == 0 && r.path.size() > 8 &&
          r.path.compare(r.path.size() - 8, 8, "/archive") == 0);
}

// Copies the parsed message into r; checks the body against the limit for its endpoint.
void fill(http::request_parser<http::string_body>& p, Request& r) {
  auto& m = p.get();
  r.method = std::string(m.method_string());
  r.target = std::string(m.target());
  r.headers.clear();
  for (const auto& f : m) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = std::string(f.value());
  }
  r.keep_alive = m.keep_alive();
  parse_target(r);
}

// Once the header is in: fills r and applies the body limit of its endpoint.
void check_header(http::request_parser<http::string_body>& p, Request& r, const Limits& limits, bool& header_checked) {
  if (!p.is_header_done() || header_checked) return;
  header_checked = true;
  fill(p, r);
  if (!is_upload(r)) {
    auto len = p.content_length();
    if (len && *len > limits.json_body_bytes) throw HttpError(413, "request body too large");
    p.body_limit(limits.json_body_bytes);
  }
  p.eager(true);  // the limit is set: the body may now be parsed along with what follows
}

// Feeds bytes to the parser: bytes consumed. Throws HttpError for what the parser rejects.
size_t feed(http::request_parser<http::string_body>& p, std::string_view bytes, Request& r, const Limits& limits,
            bool& header_checked) {
  boost::beast::error_code ec;
  size_t used = 0;
  while (used < bytes.size() && !p.is_done()) {
    size_t n = p.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    used += n;
    if (ec == http::error::need_more) {
      ec = {};
      if (n == 0) break;
      continue;
    }
    if (ec == http::error::body_limit) throw HttpError(413, "request body too large");
    if (ec == http::error::header_limit) throw HttpError(431, "request header too large");
    if (ec) throw HttpError(400, "malformed HTTP request: " + ec.message());
    check_header(p, r, limits, header_checked);
  }
  check_header(p, r, limits, header_checked);
  return used;
}

void init_parser(http::request_parser<http::string_body>& p, const Limits& limits) {
  p.header_limit(static_cast<std::uint32_t>(limits.header_bytes));
  p.body_limit(limits.upload_body_bytes);
  // Not eager until the header is checked: the body limit depends on the endpoint.
  p.eager(false);
}

}  // namespace

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '%') {
      int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
      int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
      if (lo < 0) throw HttpError(400, "malformed URL escape in " + std::string(s));
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

void parse_target(Request& r) {
  std::string_view t = r.target;
  if (t.empty() || t[0] != '/') throw HttpError(400, "malformed request target: " + r.target);
  size_t qpos = t.find('?');
  std::string_view path = t.substr(0, qpos);
  r.query.clear();
  if (qpos != std::string_view::npos) {
    std::string_view qs = t.substr(qpos + 1);
    while (!qs.empty()) {
      size_t amp = qs.find('&');
      std::string_view part = qs.substr(0, amp);
      if (!part.empty()) {
        size_t eq = part.find('=');
        std::string key = url_decode(part.substr(0, eq));
        std::string value = eq == std::string_view::npos ? "" : url_decode(part.substr(eq + 1));
        r.query.emplace(std::move(key), std::move(value));
      }
      if (amp == std::string_view::npos) break;
      qs.remove_prefix(amp + 1);
    }
  }
  std::string decoded = url_decode(std::string(path));
  r.api_version.clear();
  // "/v1.41/…": the version the client speaks.
  if (decoded.size() > 2 && decoded[1] == 'v' && std::isdigit(static_cast<unsigned char>(decoded[2]))) {
    size_t slash = decoded.find('/', 1);
    r.api_version = decoded.substr(2, slash == std::string::npos ? std::string::npos : slash - 2);
    decoded = slash == std::string::npos ? "/" : decoded.substr(slash);
  }
  // Docker's router ignores a trailing slash.
  while (decoded.size() > 1 && decoded.back() == '/') decoded.pop_back();
  r.path = decoded;
}

std::string Request::q(const std::string& key, const std::string& fallback) const {
  auto [b, e] = query.equal_range(key);
  if (b == e) return fallback;
  std::string v;
  for (auto it = b; it != e; ++it) v = it->second;
  return v;
}

bool Request::flag(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  std::string v = q(key);
  if (v == "1" || v == "true" || v == "True" || v == "TRUE" || v == "yes") return true;
  if (v == "0" || v == "false" || v == "False" || v == "FALSE" || v == "no" || v.empty()) return false;
  throw HttpError(400, "invalid boolean value for " + key + ": " + v);
}

long long Request::number(const std::string& key, long long fallback) const {
  if (!has(key)) return fallback;
  std::string v = q(key);
  if (v.empty()) return fallback;
  try {
    size_t used = 0;
    long long n = std::stoll(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw HttpError(400, "invalid value for " + key + ": " + v);
}

std::string Request::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

json Request::json_body(const json& empty) const {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return empty;
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) throw HttpError(400, "invalid JSON in request body");
  return j;
}

std::map<std::string, std::vector<std::string>> Request::filters() const {
  std::map<std::string, std::vector<std::string>> out;
  std::string text = q("filters");
  if (text.empty()) return out;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) throw HttpError(400, "invalid filters: " + text);
  for (auto& [key, values] : j.items()) {
    auto& list = out[key];
    if (values.is_array()) {
      for (const auto& v : values)
        if (v.is_string()) list.push_back(v.get<std::string>());
    } else if (values.is_object()) {
      for (auto& [v, on] : values.items())
        if (on.is_boolean() && on.get<bool>()) list.push_back(v);
    } else {
      throw HttpError(400, "invalid filters: " + text);
    }
  }
  return out;
}

size_t parse_request(std::string_view bytes, Request& out, const Limits& limits) {
  http::request_parser<http::string_body> p;
  init_parser(p, limits);
  bool header_checked = false;
  size_t used = feed(p, bytes, out, limits, header_checked);
  if (!p.is_done()) return 0;
  out.body = std::move(p.get().body());
  return used;
}

bool Connection::read(Request& r) {
  http::request_parser<http::string_body> p;
  init_parser(p, limits_);
  bool header_checked = false;
  bool started = !buffer_.empty();
  auto deadline = std::chrono::steady_clock::now() + limits_.request;
  auto idle_deadline = std::chrono::steady_clock::now() + limits_.idle;
  char chunk[65536];
  for (;;) {
    if (!buffer_.empty()) {
      size_t used = feed(p, buffer_, r, limits_, header_checked);
      buffer_.erase(0, used);
      if (p.is_done()) break;
    }
    auto now = std::chrono::steady_clock::now();
    auto until = started ? deadline : idle_deadline;
    if (now >= until) {
      if (!started) return false;
      keep_alive_ = false;
      throw HttpError(408, "timed out reading the request");
    }
    pollfd pfd{fd_, POLLIN, 0};
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count()) + 1;
    int rc = ::poll(&pfd, 1, ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) continue;
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (!started) return false;
      keep_alive_ = false;
      throw HttpError(400, "connection closed mid-request");
    }
    if (!started) {
      started = true;
      deadline = std::chrono::steady_clock::now() + limits_.request;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
  r.body = std::move(p.get().body());
  keep_alive_ = r.keep_alive;
  responded_ = false;
  head_only_ = r.method == "HEAD";
  return true;
}

void Connection::write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      keep_alive_ = false;
      throw_errno("write to API client");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

const char* status_reason(int status) {
  switch (status) {
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

namespace {

std::string head(int status, std::string_view content_type, const std::map<std::string, std::string>& headers,
                 bool keep_alive) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + status_reason(status) + "\r\n";
  h += "Api-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: berth\r\n";
  if (!content_type.empty()) h += "Content-Type: " + std::string(content_type) + "\r\n";
  for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
  if (!keep_alive) h += "Connection: close\r\n";
  return h;
}

}  // namespace

void Connection::respond(int status, std::string_view content_type, std::string_view body,
                         const std::map<std::string, std::string>& headers) {
  std::string out = head(status, content_type, headers, keep_alive_);
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  if (!head_only_) out.append(body);
  responded_ = true;
  write(out);
}

void Connection::json(int status, const nlohmann::json& body) {
  respond(status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
}

void Connection::error(int status, const std::string& message) { json(status, {{"message", message}}); }

void Connection::no_content(int status) {
  std::string out = head(status, "", {}, keep_alive_) + "\r\n";
  responded_ = true;
  write(out);
}

void Connection::begin_chunked(int status, std::string_view content_type,
                               const std::map<std::string, std::string>& headers) {
  std::map<std::string, std::string> all = headers;
  all["Transfer-Encoding"] = "chunked";
  std::string out = head(status, content_type, all, keep_alive_) + "\r\n";
  responded_ = true;
  write(out);
}

bool Connection::chunk(std::string_view data) {
  if (data.empty() || head_only_) return true;
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string out = size;
  out.append(data);
  out += "\r\n";
  try {
    write(out);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

void Connection::end_chunked() {
  if (!head_only_) write("0\r\n\r\n");
}

void Connection::hijack(const Request& r, std::string_view content_type) {
  keep_alive_ = false;
  responded_ = true;
  std::string upgrade = r.header("upgrade");
  std::string out;
  if (!upgrade.empty()) {
    out = "HTTP/1.1 101 UPGRADED\r\nContent-Type: " + std::string(content_type) +
          "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: 1.41\r\n\r\n";
  } else {
    out = "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(content_type) + "\r\nApi-Version: 1.41\r\n\r\n";
  }
  write(out);
}

std::string Connection::take_pending() {
  std::string out;
  out.swap(buffer_);
  return out;
}

}  // namespace berth::api
