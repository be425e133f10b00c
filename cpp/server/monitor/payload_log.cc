#include "server/monitor/payload_log.h"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <random>
#include <thread>
#include <tuple>

#include "server/codec/json.h"
#include "server/codec/protocol.h"
#include "server/remote/http_client.h"

namespace mserve::server {

// Posts queued CloudEvents one at a time on a thread of its own (HttpClient keeps the connection
// open between posts and bounds every step by post_timeout_ms).
struct PayloadLog::Poster {
  struct Event {
    std::string id, type, model, time, body;
  };
  Url url;
  std::unique_ptr<HttpClient> client;
  size_t max_queued = 0;
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

  // One POST; the error when it did not get a 2xx answer in time.
  Status post(const Event& e) {
    const Headers headers = {{"Content-Type", "application/json"},
                             {"Ce-Specversion", "1.0"},
                             {"Ce-Id", e.id},
                             {"Ce-Type", e.type},
                             {"Ce-Source", "mserve/" + e.model},
                             {"Ce-Time", e.time},
                             {"Ce-Inferenceservicename", e.model}};
    MS_ASSIGN_OR_RETURN(HttpReply r, client->request(url, "POST", headers, e.body));
    if (r.status / 100 != 2) return Unavailable("answered " + std::to_string(r.status));
    return Status::OK();
  }

  void run() {
    std::unique_lock<std::mutex> lk(mu);
    while (true) {
      cv.wait(lk, [&] { return stopping || !queue.empty(); });
      if (stopping) return;
      Event e = std::move(queue.front());
      queue.pop_front();
      lk.unlock();
      const Status st = post(e);
      if (!st.ok()) {
        ++failed;
        if (!failing)
          std::fprintf(stderr, "mserve: cannot post payloads to %s (%s); requests go on, posts are counted\n",
                       url.host_header().c_str(), st.message().c_str());
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
    client->cancel();  // ends a post in flight
    if (thread.joinable()) thread.join();
  }
};

namespace {

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
    auto url = parse_url(opts.url);
    if (!url.ok()) return InvalidArgument("payload log URL: " + url.status().message());
    poster->url = std::move(url).value();
    poster->client = std::make_unique<HttpClient>(opts.post_timeout_ms);
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

void PayloadLog::prometheus(std::string* o) const {
  *o +=
      "# HELP mserve_payload_records_total Request and response records of sampled requests, by sink and "
      "outcome.\n# TYPE mserve_payload_records_total counter\n";
  for (const auto& [sink, c, on] :
       {std::tuple{"file", file_counts(), file_ != nullptr}, {"url", url_counts(), poster_ != nullptr}}) {
    if (!on) continue;
    for (const auto& [outcome, n] : {std::pair{"written", c.written}, {"dropped", c.dropped}, {"failed", c.failed}})
      *o += std::string("mserve_payload_records_total{sink=\"") + sink + "\",outcome=\"" + outcome + "\"} " +
            std::to_string(n) + "\n";
  }
  *o +=
      "# HELP mserve_payload_sampled_total Requests sampled into the payload log.\n"
      "# TYPE mserve_payload_sampled_total counter\nmserve_payload_sampled_total " +
      std::to_string(sampled_.load()) + "\n";
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
