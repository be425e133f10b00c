#include "server/http/http.h"

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace mserve::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return {};
}

namespace {

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      o += static_cast<char>(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else {
      o += s[i];
    }
  }
  return o;
}

constexpr size_t kHeaderLimit = 64 * 1024;
// A connection keeps its body buffer for the next request up to this size (or 4x the next body),
// while all connections together keep at most kKeptBodies.
constexpr size_t kKeepBodyCapacity = 1 << 20;
constexpr int64_t kKeptBodies = 64 << 20;
constexpr size_t kBodyAlign = 64;     // HttpOptions::align_body
constexpr size_t kReadBuffer = 8192;  // a connection's read buffer

// The request line and headers of `msg`; the body is the caller's.
HttpRequest request_head(const http::request<http::string_body>& msg) {
  HttpRequest req;
  req.method = std::string(msg.method_string());
  std::string_view target(msg.target().data(), msg.target().size());
  size_t q = target.find('?');
  req.path = percent_decode(target.substr(0, q));
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  req.headers.reserve(static_cast<size_t>(std::distance(msg.begin(), msg.end())));
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  return req;
}

HttpRequest to_request(http::request<http::string_body>& msg) {
  HttpRequest req = request_head(msg);
  req.body = std::make_shared<std::string>(std::move(msg.body()));
  return req;
}

std::string error_json(const std::string& msg) {
  std::string o = "{\"error\": \"";
  for (char c : msg) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o + "\"}";
}

}  // namespace

struct HttpServer::Impl {
  HttpOptions opts;
  Handler handler;
  net::io_context ioc;
  // Keeps run() going while requests wait for their handler's answer (no socket op pending).
  net::executor_work_guard<net::io_context::executor_type> work = net::make_work_guard(ioc);
  tcp::acceptor acceptor{ioc};
  std::optional<ssl::context> tls;  // set: every connection speaks TLS
  std::vector<std::thread> threads;
  std::atomic<int64_t> in_flight{0}, conns{0};
  std::atomic<uint64_t> read_ns{0}, write_ns{0}, requests{0};  // io()
  std::atomic<int64_t> kept_bytes{0};                          // body buffers kept by connections
  std::atomic<bool> stopping{false}, stopped{false};
  int port = 0;
  std::mutex live_mu;  // open connections, closed at stop so no client waits forever
  std::unordered_map<void*, std::function<void()>> live;

  void accept();
};

namespace {

// One connection; Stream is beast::tcp_stream (plain HTTP) or an ssl_stream over it (HTTPS).
template <class Stream>
class Conn : public std::enable_shared_from_this<Conn<Stream>> {
 public:
  template <class... TlsContext>
  Conn(tcp::socket&& s, HttpServer::Impl* srv, TlsContext&... tls) : stream_(std::move(s), tls...), srv_(srv) {
    ++srv_->conns;
  }
  ~Conn() {
    --srv_->conns;
    srv_->kept_bytes -= kept_;
    std::lock_guard<std::mutex> lk(srv_->live_mu);
    srv_->live.erase(this);
  }

  void start() {
    {
      std::lock_guard<std::mutex> lk(srv_->live_mu);
      srv_->live[this] = [this] { close(); };  // called only once no server thread runs
    }
    // Beast reads headers through this buffer, at most its free capacity per read (512 bytes when
    // empty): a request of a few KB, headers and body, then arrives in one read.
    buf_.reserve(kReadBuffer);
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->handshake(); });
  }

 private:
  using std::enable_shared_from_this<Conn<Stream>>::shared_from_this;
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  auto& tcp_layer() { return beast::get_lowest_layer(stream_); }

  void handshake() {
    if constexpr (kTls) {
      // A client must finish the handshake within the read timeout (slow or plain-text
      // clients cannot hold the connection).
      tcp_layer().expires_after(std::chrono::milliseconds(srv_->opts.read_timeout_ms));
      stream_.async_handshake(ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
        if (ec) return self->close();
        self->read();
      });
    } else {
      read();
    }
  }

  void read() {
    if (srv_->stopping) return close();
    parser_.emplace();
    parser_->body_limit(srv_->opts.body_limit);
    parser_->header_limit(kHeaderLimit);
    tcp_layer().expires_after(std::chrono::milliseconds(srv_->opts.idle_timeout_ms));
    http::async_read_header(stream_, buf_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  static uint64_t now_ns() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_error(ec);
    header_at_ = now_ns();
    if (parser_->is_done()) return on_read({});
    const auto& h = parser_->get();
    if (h.find(http::field::expect) != h.end() && beast::iequals(h[http::field::expect], "100-continue")) {
      // Clients that ask first (curl with large bodies) get the go-ahead, or 413 at once.
      if (parser_->content_length() && *parser_->content_length() > srv_->opts.body_limit)
        return on_error(http::error::body_limit);
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, h.version());
      return http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code ec, size_t) {
        if (ec) return self->close();
        self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    tcp_layer().expires_after(std::chrono::milliseconds(srv_->opts.read_timeout_ms));
    const auto len = parser_->content_length();
    if (!len || parser_->chunked()) {  // chunked bodies: Beast's parser
      return http::async_read(stream_, buf_, *parser_,
                              [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
    }
    // A Content-Length body goes from the socket straight into the request's buffer in as few
    // reads as the kernel allows (Beast's string body reads through the connection's buffer,
    // about 512 bytes per read: 660 reads for a 330 KB body). The buffer is the connection's,
    // reused by the next request unless something still holds the last body.
    if (*len > srv_->opts.body_limit) return on_error(http::error::body_limit);
    const size_t n = static_cast<size_t>(*len);
    if (!body_ || body_.use_count() != 1 || body_->capacity() > std::max<size_t>(4 * n, kKeepBodyCapacity))
      body_ = std::make_shared<std::string>();
    head_ = request_head(parser_->get());
    size_t align_at = srv_->opts.align_body ? srv_->opts.align_body(head_) : 0;
    if (align_at > n) align_at = 0;
    body_->reserve(n + kBodyAlign + kBodyPadding);
    const int64_t cap = static_cast<int64_t>(body_->capacity());
    srv_->kept_bytes += cap - kept_;
    kept_ = cap;
    const size_t shift =
        align_at ? (kBodyAlign - (reinterpret_cast<uintptr_t>(body_->data()) + align_at) % kBodyAlign) % kBodyAlign : 0;
    body_->resize(shift + n);  // a reused buffer of the same size: nothing filled (the body overwrites it)
    std::memset(body_->data(), ' ', shift);
    head_.body_at = shift;
    char* dst = body_->data() + shift;
    const size_t have = std::min(buf_.size(), n);
    net::buffer_copy(net::buffer(dst, have), buf_.data());
    buf_.consume(have);  // what follows the body (a pipelined request) stays for the next read
    if (have == n) return on_read({}, true);
    net::async_read(stream_, net::buffer(dst + have, n - have),
                    [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec, true); });
  }

  void on_error(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      HttpResponse r;
      r.status = 413;
      r.body = error_json("request body larger than the limit of " + std::to_string(srv_->opts.body_limit) + " bytes");
      return write(std::move(r), /*keep_alive=*/false, 11, /*counted=*/false);
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof || ec == net::error::bad_descriptor)
      return close();
    if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
        ec != http::error::partial_message) {
      HttpResponse r;
      r.status = ec == http::error::header_limit ? 431 : 400;
      r.body = error_json("malformed HTTP request: " + ec.message());
      return write(std::move(r), false, 11, false);
    }
    close();
  }

  // `direct`: the request is head_ with its body in body_ (read_body), not the parser's message.
  void on_read(beast::error_code ec, bool direct = false) {
    if (ec) return on_error(ec);
    srv_->read_ns += now_ns() - header_at_;
    ++srv_->requests;
    auto& msg = parser_->get();
    HttpRequest req = direct ? std::move(head_) : to_request(msg);
    if (direct) {
      req.body = body_;
      if (srv_->kept_bytes > kKeptBodies) {  // over the budget: the request takes it for good
        srv_->kept_bytes -= kept_;
        kept_ = 0;
        body_.reset();
      }
    }
    if (remote_.empty()) {  // once per connection
      beast::error_code ignore;
      auto ep = tcp_layer().socket().remote_endpoint(ignore);
      if (!ignore) remote_ = ep.address().to_string();
    }
    req.remote = remote_;
    const bool keep_alive = msg.keep_alive();
    const unsigned version = msg.version();
    ++srv_->in_flight;
    tcp_layer().expires_never();  // the handler's own timeout governs from here
    auto self = shared_from_this();
    // Answered on the connection's strand: at once when the handler answers before it returns
    // (no trip through the scheduler, which could wake another thread), else queued to it.
    Respond respond = [self, keep_alive, version](HttpResponse r) {
      net::dispatch(self->stream_.get_executor(), [self, keep_alive, version, r = std::move(r)]() mutable {
        self->write(std::move(r), keep_alive, version, true);
      });
    };
    try {
      srv_->handler(std::move(req), std::move(respond));
    } catch (const std::exception& e) {
      HttpResponse r;
      r.status = 500;
      r.body = error_json(std::string("internal error: ") + e.what());
      write(std::move(r), false, version, true);
    }
  }

  void write(HttpResponse r, bool keep_alive, unsigned version, bool counted) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version);
    res->set(http::field::server, "mserve");
    res->set(http::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res->set(k, v);
    res->keep_alive(keep_alive && !srv_->stopping);
    res->body() = std::move(r.body);
    res->prepare_payload();
    tcp_layer().expires_after(std::chrono::milliseconds(srv_->opts.read_timeout_ms));
    const uint64_t start = now_ns();
    http::async_write(stream_, *res, [self = shared_from_this(), res, counted, start](beast::error_code ec, size_t) {
      self->srv_->write_ns += now_ns() - start;
      if (counted) --self->srv_->in_flight;
      if (ec || !res->keep_alive()) return self->close();
      self->read();
    });
  }

  void close() {
    // TLS: no close_notify exchange; the TCP close ends the session (HTTP framing tells the
    // client where each response ends, so nothing is truncated silently).
    beast::error_code ec;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp_layer().close();
  }

  Stream stream_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<std::string> body_;  // the last Content-Length body, its memory reused
  int64_t kept_ = 0;                   // body_'s capacity, counted in kept_bytes
  HttpRequest head_;                   // the request whose body read_body reads
  std::string remote_;                 // the client's address
  uint64_t header_at_ = 0;             // when the request's headers were read (now_ns)
  HttpServer::Impl* srv_;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
    if (stopping || !acceptor.is_open()) return;
    if (!ec) {
      if (conns >= opts.max_connections) {
        beast::error_code ignore;
        s.close(ignore);
      } else {
        if (tls)
          std::make_shared<Conn<beast::ssl_stream<beast::tcp_stream>>>(std::move(s), this, *tls)->start();
        else
          std::make_shared<Conn<beast::tcp_stream>>(std::move(s), this)->start();
      }
    }
    accept();
  });
}

StatusOr<HttpRequest> parse_http_request(std::string_view bytes, size_t body_limit) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  parser.header_limit(kHeaderLimit);
  parser.eager(true);
  beast::error_code ec;
  size_t used = 0;
  while (used < bytes.size() && !parser.is_done()) {
    const size_t n = parser.put(net::buffer(bytes.data() + used, bytes.size() - used), ec);
    if (ec == http::error::need_more) break;
    if (ec) return InvalidArgument("malformed HTTP request: " + ec.message());
    if (n == 0) break;
    used += n;
  }
  if (!parser.is_done()) {
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return InvalidArgument("incomplete HTTP request");
  }
  return to_request(parser.get());
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { stop(0); }

StatusOr<std::unique_ptr<HttpServer>> HttpServer::start(const HttpOptions& opts, Handler handler) {
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  impl->handler = std::move(handler);
  beast::error_code ec;
  if (!opts.tls_cert_file.empty() || !opts.tls_key_file.empty()) {
    if (opts.tls_cert_file.empty() || opts.tls_key_file.empty())
      return InvalidArgument("TLS needs both a certificate file and a private key file");
    impl->tls.emplace(ssl::context::tls_server);
    ssl::context& c = *impl->tls;
    c.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(c.native_handle(), TLS1_2_VERSION);
    c.use_certificate_chain_file(opts.tls_cert_file, ec);
    if (ec) return InvalidArgument("cannot use TLS certificate '" + opts.tls_cert_file + "': " + ec.message());
    c.use_private_key_file(opts.tls_key_file, ssl::context::pem, ec);
    if (ec) return InvalidArgument("cannot use TLS private key '" + opts.tls_key_file + "': " + ec.message());
    if (SSL_CTX_check_private_key(c.native_handle()) != 1)
      return InvalidArgument("the TLS private key '" + opts.tls_key_file + "' does not match the certificate '" +
                             opts.tls_cert_file + "'");
  }
  auto addr = net::ip::make_address(opts.host == "localhost" ? "127.0.0.1" : opts.host, ec);
  if (ec) return InvalidArgument("cannot listen on host '" + opts.host + "': " + ec.message());
  if (opts.port < 0 || opts.port > 65535)
    return InvalidArgument("port " + std::to_string(opts.port) + " is out of range");
  tcp::endpoint ep(addr, static_cast<unsigned short>(opts.port));
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on " + opts.host + ":" + std::to_string(opts.port) + ": " + ec.message());
  impl->port = impl->acceptor.local_endpoint().port();
  impl->accept();
  int n = opts.threads > 0 ? opts.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  Impl* raw = impl.get();
  for (int i = 0; i < n; ++i) impl->threads.emplace_back([raw] { raw->ioc.run(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port; }
int64_t HttpServer::in_flight() const { return impl_->in_flight; }
int64_t HttpServer::connections() const { return impl_->conns; }
HttpServer::Io HttpServer::io() const {
  return {impl_->read_ns * 1e-9, impl_->write_ns * 1e-9, impl_->requests.load()};
}

void HttpServer::stop(int drain_ms) {
  if (impl_->stopped.exchange(true)) return;
  impl_->stopping = true;
  net::post(impl_->ioc, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(drain_ms);
  while (impl_->in_flight > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  // No handler runs any more: close what is still open (idle keep-alive connections, requests
  // that outlived the drain) so clients see the connection end instead of waiting.
  std::lock_guard<std::mutex> lk(impl_->live_mu);
  for (auto& [conn, close] : impl_->live) close();
}

std::vector<std::string> path_segments(const std::string& rest) {
  std::vector<std::string> seg;
  for (size_t i = 1; i <= rest.size();) {
    size_t j = rest.find('/', i);
    if (j == std::string::npos) j = rest.size();
    seg.push_back(rest.substr(i, j - i));
    i = j + 1;
  }
  if (!seg.empty() && seg.back().empty()) seg.pop_back();
  return seg;
}

}  // namespace mserve::server
