#include "server/remote/http_client.h"

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>
#include <optional>

namespace mserve::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

StatusOr<Url> parse_url(const std::string& url) {
  Url u;
  std::string rest;
  if (url.compare(0, 7, "http://") == 0) {
    rest = url.substr(7);
  } else if (url.compare(0, 8, "https://") == 0) {
    rest = url.substr(8);
    u.tls = true;
  } else {
    return InvalidArgument("'" + url + "' is not an http:// or https:// URL");
  }
  const size_t slash = rest.find('/');
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string authority = rest.substr(0, slash);
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    u.port = authority.substr(colon + 1);
    authority.resize(colon);
  } else {
    u.port = u.tls ? "443" : "80";
  }
  if (authority.size() > 2 && authority.front() == '[' && authority.back() == ']')
    authority = authority.substr(1, authority.size() - 2);
  u.host = authority;
  if (u.host.empty() || u.port.empty() || u.port.find_first_not_of("0123456789") != std::string::npos)
    return InvalidArgument("'" + url + "': no host, or a port that is not a number");
  return u;
}

std::string Url::host_header() const {
  const bool usual = port == (tls ? "443" : "80");
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return usual ? h : h + ":" + port;
}

std::string HttpReply::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return "";
}

struct HttpClient::Impl {
  int timeout_ms;
  asio::io_context ioc;
  ssl::context tls{ssl::context::tls_client};
  std::string connected;  // "tls host:port" of the open connection, "" when none
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  asio::ip::tcp::resolver* resolving = nullptr;  // connect()'s, while it resolves
  // Set by cancel(), from any thread: every later request fails at once. The request in flight
  // is ended by a handler cancel() posts, which closes its socket (or stops its resolve) on the
  // thread that runs the request, so its operations complete with an error and run() returns
  // with no handler left behind. (io_context::stop() from another thread made run() return
  // with operations still pending on this frame's variables, and a result never written.)
  std::atomic<bool> cancelled{false};

  explicit Impl(int ms) : timeout_ms(ms) {
    tls.set_default_verify_paths();
    tls.set_verify_mode(ssl::verify_peer);
  }

  void close() {
    plain.reset();
    secure.reset();
    connected.clear();
  }

  beast::tcp_stream& tcp() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  // Runs the queued operations to their end (or the timeout, which the stream enforces).
  void run() {
    ioc.restart();
    ioc.run();
  }

  beast::error_code connect(const Url& u) {
    close();
    beast::error_code result;
    tcp::resolver resolver(ioc);
    resolving = &resolver;
    tcp::resolver::results_type endpoints;
    resolver.async_resolve(u.host, u.port, [&](beast::error_code ec, tcp::resolver::results_type r) {
      result = ec;
      endpoints = std::move(r);
    });
    run();
    resolving = nullptr;
    if (!result && cancelled) result = asio::error::operation_aborted;
    if (result) return result;
    if (u.tls) {
      secure.emplace(ioc, tls);
      if (!SSL_set_tlsext_host_name(secure->native_handle(), u.host.c_str()))
        return beast::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
      secure->set_verify_callback(ssl::host_name_verification(u.host));
    } else {
      plain.emplace(ioc);
    }
    tcp().expires_after(std::chrono::milliseconds(timeout_ms));
    tcp().async_connect(endpoints, [&](beast::error_code ec, const tcp::endpoint&) { result = ec; });
    run();
    if (!result && secure) {
      tcp().expires_after(std::chrono::milliseconds(timeout_ms));
      secure->async_handshake(ssl::stream_base::client, [&](beast::error_code ec) { result = ec; });
      run();
    }
    if (result)
      close();
    else
      connected = (u.tls ? "tls " : "") + u.host + ":" + u.port;
    return result;
  }

  template <class Stream>
  beast::error_code exchange(Stream& stream, http::request<http::string_body>& req, HttpReply* reply,
                             const std::string& to_file) {
    beast::error_code result;
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> head;
    head.body_limit(boost::none);
    std::optional<http::response_parser<http::string_body>> text;
    std::optional<http::response_parser<http::file_body>> file;
    auto read_body = [&] {
      const int status = static_cast<int>(head.get().result_int());
      if (!to_file.empty() && status / 100 == 2) {
        file.emplace(std::move(head));
        file->body_limit(boost::none);
        file->get().body().open(to_file.c_str(), beast::file_mode::write, result);
        if (result) return;
        http::async_read(stream, buffer, *file, [&](beast::error_code ec, size_t) { result = ec; });
      } else {
        text.emplace(std::move(head));
        text->body_limit(uint64_t{256} << 20);
        http::async_read(stream, buffer, *text, [&](beast::error_code ec, size_t) { result = ec; });
      }
    };
    tcp().expires_after(std::chrono::milliseconds(timeout_ms));
    http::async_write(stream, req, [&](beast::error_code ec, size_t) {
      if (ec) {
        result = ec;
        return;
      }
      http::async_read_header(stream, buffer, head, [&](beast::error_code ec2, size_t) {
        if (ec2)
          result = ec2;
        else
          read_body();
      });
    });
    run();
    if (!result && !text && !file) result = asio::error::operation_aborted;  // (only when cancelled)
    if (result) return result;
    const auto& msg = file ? static_cast<const http::response_header<>&>(file->get())
                           : static_cast<const http::response_header<>&>(text->get());
    reply->status = static_cast<int>(msg.result_int());
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply->headers.emplace_back(std::move(name), std::string(f.value()));
    }
    if (text) reply->body = std::move(text->get().body());
    if (!(file ? file->get().keep_alive() : text->get().keep_alive())) close();
    return result;
  }
};

HttpClient::HttpClient(int timeout_ms) : impl_(std::make_unique<Impl>(timeout_ms)) {}
HttpClient::~HttpClient() = default;

void HttpClient::cancel() {
  Impl* im = impl_.get();
  im->cancelled = true;
  asio::post(im->ioc, [im] {
    if (im->resolving) im->resolving->cancel();
    beast::error_code ignored;
    if (im->plain || im->secure) im->tcp().socket().close(ignored);
  });
}

StatusOr<HttpReply> HttpClient::request(const Url& url, std::string_view method, const Headers& headers,
                                        const std::string& body, const std::string& to_file) {
  Impl& im = *impl_;
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(url.target);
  req.version(11);
  req.set(http::field::host, url.host_header());
  for (const auto& [k, v] : headers) req.set(k, v);
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();
  const std::string where = (url.tls ? "https://" : "http://") + url.host_header() + url.target;
  // A kept connection may have been closed by the server since: an idempotent request is tried
  // once more on a fresh one.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (im.cancelled) return Unavailable("request to " + where + " cancelled");
    const bool reused = !im.connected.empty() && im.connected == (url.tls ? "tls " : "") + url.host + ":" + url.port;
    if (!reused) {
      if (beast::error_code ec = im.connect(url)) return Unavailable("cannot reach " + where + ": " + ec.message());
    }
    HttpReply reply;
    beast::error_code ec =
        im.secure ? im.exchange(*im.secure, req, &reply, to_file) : im.exchange(*im.plain, req, &reply, to_file);
    if (!ec) return reply;
    im.close();
    if (!reused || !(method == "GET" || method == "HEAD"))
      return Unavailable("no answer from " + where + ": " + ec.message());
  }
  return Unavailable("no answer from " + where);
}

}  // namespace mserve::server
