#include "server/metrics/metrics.h"

#include <cstdio>

#include "server/repository/manager.h"

namespace mserve::server {
namespace {

const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

}  // namespace

const std::vector<double>& latency_bounds() {
  static const std::vector<double> bounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                             0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return bounds;
}

std::string prometheus_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

std::string prometheus_number(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

void write_histogram(std::string* o, const std::string& name, const std::string& labels, const Histogram& h,
                     const std::vector<double>& bounds) {
  uint64_t cum = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < bounds.size(); ++i) {
    cum += h.counts.empty() ? 0 : h.counts[i];
    *o +=
        name + "_bucket{" + labels + sep + "le=\"" + prometheus_number(bounds[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  *o += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(h.count) + "\n";
  *o += name + "_sum{" + labels + "} " + prometheus_number(h.sum) + "\n";
  *o += name + "_count{" + labels + "} " + std::to_string(h.count) + "\n";
}

std::optional<Stages> Stages::of(Time start, Time decoded, Time ran, Time end) {
  if (decoded == Time{}) return std::nullopt;
  auto secs = [](Time::duration d) { return std::chrono::duration<double>(d).count(); };
  Stages s;
  s.decode = secs(decoded - start);
  if (ran != Time{}) {
    s.run = secs(ran - decoded);
    s.encode = secs(end - ran);
  }
  return s;
}

void Histogram::observe(const std::vector<double>& bounds, double v) {
  if (counts.empty()) counts.assign(bounds.size(), 0);
  for (size_t i = 0; i < bounds.size(); ++i)
    if (v <= bounds[i]) {
      ++counts[i];
      break;
    }
  ++count;
  sum += v;
}

void Metrics::request(const std::string& model, int64_t version, const std::string& api, int status, double seconds,
                      const Stages* stages) {
  std::lock_guard<std::mutex> lk(mu_);
  ++requests_[{model, version, api, status}];
  latency_[{model, version, api}].observe(latency_bounds(), seconds);
  if (stages) {
    StageSums& s = stages_[{model, version, api}];
    ++s.count;
    s.sum.decode += stages->decode;
    s.sum.run += stages->run;
    s.sum.encode += stages->encode;
  }
}

void Metrics::batch(const std::string& model, size_t rows) {
  std::lock_guard<std::mutex> lk(mu_);
  batch_[model].observe(kBatchBounds, static_cast<double>(rows));
}

void Metrics::forget(const std::string& model, int64_t version) {
  std::lock_guard<std::mutex> lk(mu_);
  auto match = [&](const std::string& m, int64_t v) { return m == model && (version < 0 || v == version); };
  for (auto it = requests_.begin(); it != requests_.end();)
    it = match(std::get<0>(it->first), std::get<1>(it->first)) ? requests_.erase(it) : std::next(it);
  for (auto it = latency_.begin(); it != latency_.end();)
    it = match(std::get<0>(it->first), std::get<1>(it->first)) ? latency_.erase(it) : std::next(it);
  for (auto it = stages_.begin(); it != stages_.end();)
    it = match(std::get<0>(it->first), std::get<1>(it->first)) ? stages_.erase(it) : std::next(it);
  for (auto* m : {&nonfinite_, &nonfinite_in_})
    for (auto it = m->begin(); it != m->end();)
      it = match(it->first.first, it->first.second) ? m->erase(it) : std::next(it);
  if (version < 0) batch_.erase(model);
}

void Metrics::nonfinite_outputs(const std::string& model, int64_t version, int64_t count) {
  std::lock_guard<std::mutex> lk(mu_);
  nonfinite_[{model, version}] += static_cast<uint64_t>(count);
}

void Metrics::nonfinite_inputs(const std::string& model, int64_t version, int64_t count) {
  std::lock_guard<std::mutex> lk(mu_);
  nonfinite_in_[{model, version}] += static_cast<uint64_t>(count);
}

std::string Metrics::prometheus(const ModelManager& manager, const HttpServer::Io& io) const {
  std::string o;
  auto histogram = [&o](const std::string& name, const std::string& labels, const Histogram& h,
                        const std::vector<double>& bounds) { write_histogram(&o, name, labels, h, bounds); };
  const auto esc = prometheus_escape;
  const auto num = prometheus_number;
  {
    std::lock_guard<std::mutex> lk(mu_);
    o += "# HELP mserve_requests_total Requests answered, by model, version, API and HTTP status.\n";
    o += "# TYPE mserve_requests_total counter\n";
    for (const auto& [k, n] : requests_) {
      const auto& [model, version, api, status] = k;
      o += "mserve_requests_total{model=\"" + esc(model) + "\",version=\"" + std::to_string(version) + "\",api=\"" +
           api + "\",status=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
    }
    o += "# HELP mserve_request_latency_seconds Time from a request's arrival to its response.\n";
    o += "# TYPE mserve_request_latency_seconds histogram\n";
    for (const auto& [k, h] : latency_) {
      const auto& [model, version, api] = k;
      histogram("mserve_request_latency_seconds",
                "model=\"" + esc(model) + "\",version=\"" + std::to_string(version) + "\",api=\"" + api + "\"", h,
                latency_bounds());
    }
    o += "# HELP mserve_request_stage_seconds Time predict requests spent decoding inputs, running the model "
         "(with the batching queue) and encoding outputs.\n";
    o += "# TYPE mserve_request_stage_seconds summary\n";
    for (const auto& [k, s] : stages_) {
      const auto& [model, version, api] = k;
      const std::string labels =
          "model=\"" + esc(model) + "\",version=\"" + std::to_string(version) + "\",api=\"" + api + "\",stage=\"";
      for (const auto& [stage, v] : {std::pair{"decode", s.sum.decode}, {"run", s.sum.run}, {"encode", s.sum.encode}}) {
        o += "mserve_request_stage_seconds_sum{" + labels + stage + "\"} " + num(v) + "\n";
        o += "mserve_request_stage_seconds_count{" + labels + stage + "\"} " + std::to_string(s.count) + "\n";
      }
    }
    o += "# HELP mserve_http_io_seconds_total Time the HTTP front end spent reading request bodies and writing "
         "responses.\n";
    o += "# TYPE mserve_http_io_seconds_total counter\n";
    o += "mserve_http_io_seconds_total{direction=\"read\"} " + num(io.read_seconds) + "\n";
    o += "mserve_http_io_seconds_total{direction=\"write\"} " + num(io.write_seconds) + "\n";
    o += "# HELP mserve_http_requests_total HTTP requests read (every endpoint).\n";
    o += "# TYPE mserve_http_requests_total counter\n";
    o += "mserve_http_requests_total " + std::to_string(io.requests) + "\n";
    o += "# HELP mserve_batch_size Rows per batched run.\n";
    o += "# TYPE mserve_batch_size histogram\n";
    for (const auto& [model, h] : batch_)
      histogram("mserve_batch_size", "model=\"" + esc(model) + "\"", h, kBatchBounds);
    o += "# HELP mserve_nonfinite_outputs_total Output values that were NaN or infinite.\n";
    o += "# TYPE mserve_nonfinite_outputs_total counter\n";
    for (const auto& [k, n] : nonfinite_)
      o += "mserve_nonfinite_outputs_total{model=\"" + esc(k.first) + "\",version=\"" + std::to_string(k.second) +
           "\"} " + std::to_string(n) + "\n";
    o += "# HELP mserve_nonfinite_inputs_total Input values that were NaN or infinite.\n";
    o += "# TYPE mserve_nonfinite_inputs_total counter\n";
    for (const auto& [k, n] : nonfinite_in_)
      o += "mserve_nonfinite_inputs_total{model=\"" + esc(k.first) + "\",version=\"" + std::to_string(k.second) +
           "\"} " + std::to_string(n) + "\n";
  }
  o += "# HELP mserve_model_state Version state (1 for the current state).\n";
  o += "# TYPE mserve_model_state gauge\n";
  for (const std::string& model : manager.models()) {
    auto st = manager.status(model, std::nullopt, std::nullopt);
    if (!st.ok()) continue;
    for (const VersionStatus& v : st.value())
      o += "mserve_model_state{model=\"" + esc(model) + "\",version=\"" + std::to_string(v.version) + "\",state=\"" +
           state_name(v.state) + "\"} 1\n";
  }
  o += "# HELP mserve_model_nodes Nodes of a version's latest plan, by the device they run on.\n";
  o += "# TYPE mserve_model_nodes gauge\n";
  for (const auto& s : manager.available()) {
    auto p = s->session->placement();
    if (!p) continue;
    const std::string labels =
        "model=\"" + esc(s->model) + "\",version=\"" + std::to_string(s->version) + "\",device=\"";
    if (p->device != "cpu")
      o += "mserve_model_nodes{" + labels + esc(p->device) + "\"} " + std::to_string(p->device_nodes) + "\n";
    o += "mserve_model_nodes{" + labels + "cpu\"} " + std::to_string(p->cpu_nodes) + "\n";
  }
  o += "# HELP mserve_device_memory_bytes Memory of the devices the served models run on (total: 0 when unsized).\n";
  o += "# TYPE mserve_device_memory_bytes gauge\n";
  std::map<std::string, const Backend*> devices;
  for (const auto& s : manager.available())
    if (s->session->backend()) devices.emplace(s->session->backend()->name(), s->session->backend().get());
  for (const auto& [name, backend] : devices) {
    auto m = backend->memory();
    if (!m) continue;
    o += "mserve_device_memory_bytes{device=\"" + esc(name) + "\",kind=\"used\"} " + std::to_string(m->used) + "\n";
    o += "mserve_device_memory_bytes{device=\"" + esc(name) + "\",kind=\"total\"} " + std::to_string(m->total) + "\n";
  }
  std::string up, failures, bytes;  // models with a remote (or outside) source
  for (const std::string& model : manager.models()) {
    auto src = manager.source(model);
    if (!src) continue;
    const std::string l = "{model=\"" + esc(model) + "\"} ";
    up += "mserve_model_source_up" + l + (src->state.last.ok() && src->state.syncs ? "1" : "0") + "\n";
    failures += "mserve_model_source_failures_total" + l + std::to_string(src->state.failures) + "\n";
    bytes += "mserve_model_source_downloaded_bytes_total" + l + std::to_string(src->state.downloaded_bytes) + "\n";
  }
  if (!up.empty())
    o += "# HELP mserve_model_source_up 1 when the model's remote base path was last read without error.\n"
         "# TYPE mserve_model_source_up gauge\n" +
         up +
         "# HELP mserve_model_source_failures_total Syncs of a remote base path that failed.\n"
         "# TYPE mserve_model_source_failures_total counter\n" +
         failures +
         "# HELP mserve_model_source_downloaded_bytes_total Bytes of model versions mirrored from a remote base "
         "path.\n# TYPE mserve_model_source_downloaded_bytes_total counter\n" +
         bytes;
  o += "# HELP mserve_queue_rows Rows waiting in a batching queue.\n";
  o += "# TYPE mserve_queue_rows gauge\n";
  for (const auto& s : manager.available())
    if (s->batcher)
      o += "mserve_queue_rows{model=\"" + esc(s->model) + "\",version=\"" + std::to_string(s->version) + "\"} " +
           std::to_string(s->batcher->queued_rows()) + "\n";
  return o;
}

}  // namespace mserve::server
