// HttpServer: an event-driven HTTP/1.1 server (Boost.Beast on Asio), optionally over TLS
// (OpenSSL). A few threads run every connection (no thread per connection); keep-alive, a request body limit (413),
// idle and read timeouts (slow clients cannot hold connections forever), and a graceful stop that lets in-flight
// requests finish.
//
// The handler runs on a server thread and answers through `Respond`, which may be called later
// from any thread (exactly once): inference can finish on a batching thread.
// Beast types stay in http.cc so that handlers compile quickly.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace mserve::server {

// Request bodies read with a Content-Length have at least this many bytes allocated after their
// end, so parsers that read ahead in blocks (simdjson) read them in place.
inline constexpr size_t kBodyPadding = 64;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // target without the query string, percent-decoded
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  // The body: the bytes of `*body` from `body_at` on (shared so decoded tensors may point into
  // it; body_at > 0 when HttpOptions::align_body placed a part of it).
  std::shared_ptr<std::string> body;
  size_t body_at = 0;
  std::string remote;  // client address
  // Set by the model server before its handlers run:
  std::string identity;    // the token's identity ("" without tokens)
  std::string request_id;  // the client's X-Request-Id, or a new one
  // The header's value, "" when absent (name in lower case).
  std::string_view header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

using Respond = std::function<void(HttpResponse)>;
using Handler = std::function<void(HttpRequest&&, Respond)>;

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8501;               // 0: pick a free port
  int threads = 0;               // <= 0: the machine's cores
  size_t body_limit = 64 << 20;  // larger bodies get 413
  int idle_timeout_ms = 60000;   // keep-alive connections idle this long are closed
  int read_timeout_ms = 30000;   // a request must arrive completely within this
  int max_connections = 10000;   // more are closed at accept
  // Given a request's line and headers, the offset within its body of data that should start on a
  // 64-byte boundary (binary tensors after a JSON header, used in place), or 0. Content-Length
  // bodies are placed so (HttpRequest::body_at); others are read as they come.
  std::function<size_t(const HttpRequest&)> align_body;
  // HTTPS when both are set: PEM certificate chain and private key; TLS 1.2 and 1.3 only.
  std::string tls_cert_file, tls_key_file;
};

// One request from raw bytes, parsed as the server parses a connection's (header and body
// limits, percent-decoded path, lower-cased header names); for tests and fuzzing.
StatusOr<HttpRequest> parse_http_request(std::string_view bytes, size_t body_limit);

class HttpServer {
 public:
  // Binds and starts serving; fails with a clear message when the address is taken.
  static StatusOr<std::unique_ptr<HttpServer>> start(const HttpOptions& opts, Handler handler);
  ~HttpServer();  // stop(0)
  int port() const;
  // Stops accepting, waits up to `drain_ms` for in-flight requests to be answered, then closes
  // every connection and joins the threads. Idempotent.
  void stop(int drain_ms = 30000);
  int64_t in_flight() const;
  int64_t connections() const;
  // Time spent reading request bodies (from the end of the headers to the end of the body) and
  // writing responses (from the first byte written to the last), summed over every request.
  struct Io {
    double read_seconds = 0, write_seconds = 0;
    uint64_t requests = 0;
  };
  Io io() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The segments of a path after a route's prefix: "/a/b/" -> {"a", "b"} (one trailing slash ignored).
std::vector<std::string> path_segments(const std::string& rest);

}  // namespace mserve::server
