// HttpClient: a small blocking HTTP/1.1 client over Boost.Beast for the server's own calls (object
// stores, the payload log's CloudEvents): one connection kept open per client between requests
// to the same host, every step (resolve, connect, TLS handshake, write, read) bounded by the
// client's timeout, bodies to memory or streamed to a file, and cancel() from another thread to
// end a request in flight and refuse later ones; a GET that fails on a kept connection is tried
// once more on a new one.
// https verifies the peer against the system's CA certificates.
//
// Thread-safety: one request at a time per client; cancel() may be called from any thread.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace mserve::server {

struct Url {
  bool tls = false;
  std::string host, port, target;   // target: path and query, "/" at least
  std::string host_header() const;  // host, with the port when it is not the scheme's default
};
// http://host[:port][/target] or https://...; InvalidArgument naming the URL otherwise.
StatusOr<Url> parse_url(const std::string& url);

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpReply {
  int status = 0;
  Headers headers;                                  // names lower-cased
  std::string body;                                 // empty when streamed to a file
  std::string header(std::string_view name) const;  // "" when absent
};

class HttpClient {
 public:
  explicit HttpClient(int timeout_ms);
  ~HttpClient();
  // One request; Unavailable (with the reason) when the server cannot be reached or does not
  // answer in time. With `to_file`, a 2xx answer's body is written there (other answers' bodies
  // are read into memory, to report them).
  StatusOr<HttpReply> request(const Url& url, std::string_view method, const Headers& headers,
                              const std::string& body = "", const std::string& to_file = "");
  // Ends the request in flight (it returns Unavailable) and fails every later one; any thread.
  void cancel();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace mserve::server
