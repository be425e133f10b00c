#include "server/monitor/payload_log.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <deque>
#include <optional>
#include <random>
#include <thread>

#include "server/codec/json.h"
#include "server/codec/protocol.h"

namespace mserve::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Posts queued CloudEvents one at a time on a thread of its own, keeping the connection open
// between posts; every network step is bounded by post_timeout_ms.
struct PayloadLog::Poster {
  struct Event {
    std::string id, type, model, time, body;
  };
  std::string host, port, target;
  int timeout_ms = 2000;
  size_t max_queued = 0;
  asio::io_context ioc;
  tcp::resolver::results_type endpoints;
  std::optional<beast::tcp_stream> stream;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> queue;
  bool stopping = false;
  std::atomic<int64_t> written{0}, dropped{0}, failed{0};
  bool failing = false;
  std::thread thread;

  bool push(Event e) {
    {
      std::lock_guard<std::mutex> lk(mu);
      if (stopping || queue.size() >= max_queued) {
        ++dropped;
        return false;
      }
      queue.push_back(std::move(e));
    }
    cv.notify_one();
    return true;
  }

  // One POST; an error code when it did not get a 2xx answer in time.
  beast::error_code post(const Event& e) {
    beast::error_code result;
    const auto timeout = std::chrono::milliseconds(timeout_ms);
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, host);
    req.set(http::field::content_type, "application/json");
    req.set("Ce-Specversion", "1.0");
    req.set("Ce-Id", e.id);
    req.set("Ce-Type", e.type);
    req.set("Ce-Source", "mserve/" + e.model);
    req.set("Ce-Time", e.time);
    req.set("Ce-Inferenceservicename", e.model);
    req.keep_alive(true);
    req.body() = e.body;
    req.prepare_payload();
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    auto exchange = [&] {
      stream->expires_after(timeout);
      http::async_write(*stream, req, [&](beast::error_code ec, size_t) {
        if (ec) {
          result = ec;
          return;
        }
        http::async_read(*stream, buffer, res, [&](beast::error_code ec2, size_t) { result = ec2; });
      });
    };
    if (!stream) {
      stream.emplace(ioc);
      stream->expires_after(timeout);
      stream->async_connect(endpoints, [&](beast::error_code ec, const tcp::endpoint&) {
        if (ec)
          result = ec;
        else
          exchange();
      });
    } else {
      exchange();
    }
    ioc.restart();
    ioc.run();
    if (!result && res.result_int() / 100 != 2) result = beast::error_code(EPROTO, beast::generic_category());
    if (result || !res.keep_alive()) stream.reset();
    return result;
  }

  void run() {
    std::unique_lock<std::mutex> lk(mu);
    while (true) {
      cv.wait(lk, [&] { return stopping || !queue.empty(); });
      if (stopping) return;
      Event e = std::move(queue.front());
      queue.pop_front();
      lk.unlock();
      const beast::error_code ec = post(e);
      if (ec) {
        ++failed;
        if (!failing)
          std::fprintf(stderr,
                       "mserve: cannot post payloads to http://%s:%s%s (%s); requests go on, posts are counted\n",
                       host.c_str(), port.c_str(), target.c_str(), ec.message().c_str());
        failing = true;
      } else {
        ++written;
        failing = false;
      }
      lk.lock();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stopping = true;
      dropped += static_cast<int64_t>(queue.size());
      queue.clear();
    }
    cv.notify_all();
    ioc.stop();  // ends a post in flight
    if (thread.joinable()) thread.join();
  }
};

namespace {

// http://host[:port][/path] -> host, port, target.
Status parse_url(const std::string& url, std::string* host, std::string* port, std::string* target) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0)
    return InvalidArgument("payload log URL '" + url + "': only http://host[:port][/path] is supported");
  std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  *target = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string authority = rest.substr(0, slash);
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    *port = authority.substr(colon + 1);
    authority.resize(colon);
  } else {
    *port = "80";
  }
  if (authority.size() > 2 && authority.front() == '[' && authority.back() == ']')
    authority = authority.substr(1, authority.size() - 2);
  *host = authority;
  if (host->empty() || port->empty() || port->find_first_not_of("0123456789") != std::string::npos)
    return InvalidArgument("payload log URL '" + url + "': no host, or a port that is not a number");
  return Status::OK();
}

double uniform_percent() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return static_cast<double>(rng() >> 11) * 0x1p-53 * 100;
}

}  // namespace

StatusOr<std::unique_ptr<PayloadLog>> PayloadLog::open(const PayloadLogOptions& opts) {
  if (opts.file.path.empty() && opts.url.empty()) return std::unique_ptr<PayloadLog>();
  if (!(opts.sample_percent >= 0 && opts.sample_percent <= 100))
    return InvalidArgument("payload_sample_percent must lie in 0..100");
  std::unique_ptr<PayloadLog> p(new PayloadLog());
  p->opts_ = opts;
  if (!opts.file.path.empty()) {
    MS_ASSIGN_OR_RETURN(p->file_, LineLog::open(opts.file));
  }
  if (!opts.url.empty()) {
    if (opts.post_timeout_ms <= 0) return InvalidArgument("the payload post timeout must be positive");
    auto poster = std::make_unique<Poster>();
    MS_RETURN_IF_ERROR(parse_url(opts.url, &poster->host, &poster->port, &poster->target));
    beast::error_code ec;
    tcp::resolver resolver(poster->ioc);
    poster->endpoints = resolver.resolve(poster->host, poster->port, ec);
    if (ec) return InvalidArgument("payload log URL '" + opts.url + "': cannot resolve the host: " + ec.message());
    poster->timeout_ms = opts.post_timeout_ms;
    poster->max_queued = opts.max_posts;
    Poster* raw = poster.get();
    poster->thread = std::thread([raw] { raw->run(); });
    p->poster_ = std::move(poster);
  }
  return p;
}

PayloadLog::~PayloadLog() {
  if (poster_) poster_->stop();
}

bool PayloadLog::has_url() const { return poster_ != nullptr; }

void PayloadLog::configure(const std::vector<ModelConfig>& models) {
  std::map<std::string, Rule> rules;
  for (const ModelConfig& m : models)
    rules[m.name] = Rule{m.monitoring.payload_sample_percent, m.monitoring.forbid_payload_logging};
  std::lock_guard<std::mutex> lk(mu_);
  rules_.swap(rules);
}

bool PayloadLog::sample(const std::string& model) const {
  double percent = opts_.sample_percent;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = rules_.find(model);
    if (it != rules_.end()) {
      if (it->second.forbidden) return false;
      if (it->second.percent >= 0) percent = it->second.percent;
    }
  }
  if (!(percent > 0) || uniform_percent() >= percent) return false;
  ++sampled_;
  return true;
}

void PayloadLog::record(std::string_view id, const std::string& model, int64_t version, const Signature& sig,
                        const std::vector<Tensor>& tensors, bool outputs) {
  const std::vector<Value>& specs = outputs ? sig.outputs : sig.inputs;
  const std::string time = utc_timestamp();
  std::string body = "{\"time\":\"" + time + "\",\"id\":";
  json_string(&body, id);
  body += std::string(",\"type\":\"") + (outputs ? "response" : "request") + "\",\"model_name\":";
  json_string(&body, model);
  body += ",\"model_version\":\"" + std::to_string(version) + (outputs ? "\",\"outputs\":[" : "\",\"inputs\":[");
  for (size_t i = 0; i < tensors.size() && i < specs.size(); ++i) {
    const Tensor& t = tensors[i];
    body += i ? ",{\"name\":" : "{\"name\":";
    json_string(&body, specs[i].name);
    body += ",\"datatype\":\"";
    body += v2_dtype(t.dtype());
    body += "\",\"shape\":[";
    for (int d = 0; d < t.rank(); ++d) body += (d ? "," : "") + std::to_string(t.dim(d));
    body += "],\"data\":";
    if (t.on_host())
      json_tensor_flat(&body, t);
    else
      body += "null";
    body += "}";
  }
  body += "]}";
  if (poster_)
    poster_->push({std::string(id),
                   outputs ? "org.kubeflow.serving.inference.response" : "org.kubeflow.serving.inference.request",
                   model, time, file_ ? body : std::move(body)});
  if (file_) file_->write(std::move(body) + "\n");
}

PayloadLog::Counts PayloadLog::file_counts() const {
  if (!file_) return {};
  return {sampled_, file_->written(), file_->dropped(), file_->write_errors()};
}

PayloadLog::Counts PayloadLog::url_counts() const {
  if (!poster_) return {};
  return {sampled_, poster_->written, poster_->dropped, poster_->failed};
}

}  // namespace mserve::server
