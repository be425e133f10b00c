#include "server/model_server.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>

#include "server/codec/json.h"

namespace mserve::server {

int http_status(const Status& st) {
  switch (st.code()) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kNotFound: return 404;
    case Code::kResourceExhausted: return 429;
    case Code::kUnavailable: return 503;
    case Code::kDeadlineExceeded: return 504;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kUnimplemented:
    case Code::kUnsupported: return 501;
    case Code::kLoadError:
    case Code::kInternal: return 500;
  }
  return 500;
}

struct Reply::State {
  Respond respond;
  server::Metrics* metrics = nullptr;
  std::string api;
  AuditLog* audit = nullptr;
  std::string client, identity, request_id, method;
  mutable std::string model;
  mutable int64_t version = 0;
  server::Clock::time_point start = server::Clock::now();
  mutable server::Clock::time_point decoded, ran;  // unset: the stage was not reached
  mutable Rollouts::Ticket ticket;
};

Reply::Reply(Respond respond, server::Metrics* metrics, std::string api, const HttpRequest& req, AuditLog* audit)
    : st_(std::make_shared<State>()) {
  st_->respond = std::move(respond);
  st_->metrics = metrics;
  st_->api = std::move(api);
  st_->audit = audit;
  st_->request_id = req.request_id;
  if (audit) {  // what only the audit line needs
    st_->client = req.remote;
    st_->identity = req.identity;
    st_->method = req.method;
  }
}

void Reply::model(const std::string& name, int64_t version) const {
  st_->model = name;
  st_->version = version;
}

void Reply::ticket(Rollouts::Ticket t) const { st_->ticket = std::move(t); }

void Reply::decoded() const { st_->decoded = server::Clock::now(); }
void Reply::ran() const { st_->ran = server::Clock::now(); }

void Reply::operator()(HttpResponse r) const {
  const auto now = server::Clock::now();
  const double seconds = std::chrono::duration<double>(now - st_->start).count();
  const auto stages = Stages::of(st_->start, st_->decoded, st_->ran, now);
  st_->metrics->request(st_->model, st_->version, st_->api, r.status, seconds, stages ? &*stages : nullptr);
  if (st_->audit) {
    AuditRecord a;
    a.client = st_->client;
    a.identity = st_->identity;
    a.model = st_->model;
    a.version = st_->version;
    a.endpoint = st_->api;
    a.method = st_->method;
    a.request_id = st_->request_id;
    a.status = r.status;
    a.latency_ms = seconds * 1e3;
    st_->audit->record(a);
  }
  if (!st_->request_id.empty()) r.headers.emplace_back("X-Request-Id", st_->request_id);
  if (st_->version > 0) r.headers.emplace_back("X-Model-Version", std::to_string(st_->version));
  if (st_->ticket) {
    st_->ticket.finish(st_->version, r.status < 400, seconds);
    if (const std::string* label = st_->ticket.label()) r.headers.emplace_back("X-Model-Arm", *label);
  }
  st_->respond(std::move(r));
}

void Reply::json(int status, std::string body) const {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  (*this)(std::move(r));
}

void Reply::error(const Status& st) const {
  std::string body = "{\"error\": ";
  json_string(&body, st.message());
  body += "}";
  json(http_status(st), std::move(body));
}

namespace {

void log_line(const std::string& line) {
  char ts[32];
  std::time_t t = std::time(nullptr);
  std::strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  std::fprintf(stderr, "%s mserve: %s\n", ts, line.c_str());
}

bool starts_with_ci(const std::string& s, const char* prefix, std::string* rest) {
  size_t n = std::char_traits<char>::length(prefix);
  if (s.size() < n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  *rest = s.substr(n);
  return true;
}

}  // namespace

StatusOr<std::unique_ptr<ModelServer>> ModelServer::start(
    ServerOptions opts, const std::vector<server::ModelConfig>& models,
    const std::vector<std::pair<std::string, std::shared_ptr<Session>>>& sessions) {
  std::unique_ptr<ModelServer> s(new ModelServer());
  s->opts_ = std::move(opts);
  s->metrics_ = std::make_unique<server::Metrics>();
  server::ManagerOptions mo = s->opts_.manager;
  if (!mo.log) mo.log = log_line;
  server::Metrics* metrics = s->metrics_.get();
  mo.on_batch = [metrics](const std::string& model, size_t rows) { metrics->batch(model, rows); };
  mo.on_forget = [metrics](const std::string& model, int64_t version) { metrics->forget(model, version); };
  const std::unique_ptr<AuditLog>* audit_of = &s->audit_;  // opened below
  auto log = mo.log;
  mo.on_drift = [audit_of, log](const DriftEvent& e) {
    AuditLog* audit_log = audit_of->get();
    const std::string what = e.drifting ? "drifting" : "no longer drifting";
    log("model '" + e.model + "' version " + std::to_string(e.version) + " is " + what + ": " + e.detail);
    if (audit_log)
      audit_log->event(e.model, e.version, "monitoring", e.drifting ? "drift_started" : "drift_ended", e.detail);
  };
  if (mo.batching) MS_RETURN_IF_ERROR(mo.batching->validate());
  MS_RETURN_IF_ERROR(server::validate(mo.integrity));
  if (!s->opts_.audit.path.empty()) {
    MS_ASSIGN_OR_RETURN(s->audit_, AuditLog::open(s->opts_.audit));
  }
  const AccessOptions& ao = s->opts_.access;
  if (!ao.tokens_file.empty() || !ao.tokens_env.empty() || !ao.allow_cidrs.empty()) {
    AccessOptions with_log = ao;
    if (!with_log.log) with_log.log = mo.log;
    MS_ASSIGN_OR_RETURN(s->access_, AccessControl::create(with_log));
  }
  s->manager_ = std::make_unique<server::ModelManager>(mo);
  Rollouts::Options ro;
  ro.manager = s->manager_.get();
  ro.log = mo.log;
  AuditLog* audit = s->audit_.get();
  ro.on_event = [audit](const RolloutEvent& e) {
    if (audit) audit->event(e.model, e.version, "rollout", "rollout_" + e.kind, e.arm + ": " + e.detail);
  };
  s->rollouts_ = std::make_unique<Rollouts>(std::move(ro));
  MS_ASSIGN_OR_RETURN(s->payload_, PayloadLog::open(s->opts_.payload));
  for (const auto& [name, session] : sessions) MS_RETURN_IF_ERROR(s->manager_->add_session(name, session));
  std::vector<server::ModelConfig> all = models;
  if (!s->opts_.model_config_file.empty()) {
    MS_ASSIGN_OR_RETURN(s->config_text_, server::read_text_file(s->opts_.model_config_file));
    MS_ASSIGN_OR_RETURN(std::vector<server::ModelConfig> from_file, server::parse_model_config(s->config_text_));
    all.insert(all.end(), from_file.begin(), from_file.end());
  }
  MS_RETURN_IF_ERROR(s->reload_config(all));
  ModelServer* raw = s.get();
  // KServe v2 binary tensors follow a JSON header of Inference-Header-Content-Length bytes: the
  // first lands on a 64-byte boundary, so aligned tensors are used in place (v2_rest.h).
  s->opts_.http.align_body = [](const HttpRequest& head) -> size_t {
    std::string rest;
    const std::string_view hl = head.header("inference-header-content-length");
    size_t n = 0;
    if (hl.empty() || !starts_with_ci(head.path, "/v2/", &rest)) return 0;
    auto r = std::from_chars(hl.data(), hl.data() + hl.size(), n);
    return r.ec == std::errc() && r.ptr == hl.data() + hl.size() ? n : 0;
  };
  MS_ASSIGN_OR_RETURN(s->http_, HttpServer::start(s->opts_.http, [raw](HttpRequest&& req, Respond respond) {
                        raw->handle(std::move(req), std::move(respond));
                      }));
  if (s->opts_.grpc.port >= 0) {
    MS_ASSIGN_OR_RETURN(s->grpc_, GrpcServer::start(s->opts_.grpc, raw));
  }
  if (s->opts_.file_system_poll_wait_seconds > 0 || s->opts_.model_config_file_poll_wait_seconds > 0)
    s->poller_ = std::thread([raw] { raw->poll_loop(); });
  const char* scheme = s->opts_.http.tls_cert_file.empty() ? "http://" : "https://";
  if (mo.log) mo.log(std::string("serving on ") + scheme + s->opts_.http.host + ":" + std::to_string(s->port()));
  if (mo.log && s->grpc_)
    mo.log(std::string("serving gRPC") + (s->opts_.grpc.tls_cert_file.empty() ? "" : " over TLS") + " on " +
           s->opts_.grpc.host + ":" + std::to_string(s->grpc_port()));
  return s;
}

ModelServer::~ModelServer() { stop(0); }

void ModelServer::stop(int drain_ms) {
  {
    std::lock_guard<std::mutex> lk(poll_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  poll_cv_.notify_all();
  // Both front ends drain at once: gRPC in the background while HTTP drains here.
  std::thread grpc_stop;
  if (grpc_) grpc_stop = std::thread([this, drain_ms] { grpc_->stop(drain_ms); });
  if (http_) http_->stop(drain_ms);
  if (grpc_stop.joinable()) grpc_stop.join();
  if (poller_.joinable()) poller_.join();
}

void ModelServer::poll_loop() {
  using namespace std::chrono;
  const auto fs_every = seconds(opts_.file_system_poll_wait_seconds);
  const auto cfg_every = seconds(opts_.model_config_file_poll_wait_seconds);
  auto next_fs = steady_clock::now() + fs_every, next_cfg = steady_clock::now() + cfg_every;
  std::unique_lock<std::mutex> lk(poll_mu_);
  while (!stopping_) {
    auto next = steady_clock::time_point::max();
    if (opts_.file_system_poll_wait_seconds > 0) next = std::min(next, next_fs);
    if (!opts_.model_config_file.empty() && opts_.model_config_file_poll_wait_seconds > 0)
      next = std::min(next, next_cfg);
    poll_cv_.wait_until(lk, next, [&] { return stopping_; });
    if (stopping_) break;
    lk.unlock();
    const auto now = steady_clock::now();
    bool polled = false;
    if (!opts_.model_config_file.empty() && opts_.model_config_file_poll_wait_seconds > 0 && now >= next_cfg) {
      next_cfg = now + cfg_every;
      auto text = server::read_text_file(opts_.model_config_file);
      if (text.ok() && text.value() != config_text_) {
        auto parsed = server::parse_model_config(text.value());
        if (parsed.ok()) {
          config_text_ = text.value();
          log_line("model config changed; applying it");
          Status st = reload_config(parsed.value());
          if (!st.ok()) log_line("cannot apply the new model config: " + st.message());
          polled = true;
        } else {
          log_line("ignoring the changed model config: " + parsed.status().message());
          config_text_ = text.value();  // report once; retried when it changes again
        }
      }
    }
    if (opts_.file_system_poll_wait_seconds > 0 && now >= next_fs) {
      next_fs = now + fs_every;
      if (!polled) manager_->poll();
    }
    lk.lock();
  }
}

server::Clock::time_point ModelServer::deadline(server::Clock::time_point client) const {
  if (opts_.request_timeout_ms <= 0) return client;
  return std::min(client, server::Clock::now() + std::chrono::milliseconds(opts_.request_timeout_ms));
}

Status ModelServer::reload_config(const std::vector<server::ModelConfig>& models) {
  MS_RETURN_IF_ERROR(manager_->set_config(models));
  rollouts_->configure(models);
  if (payload_) payload_->configure(models);
  return Status::OK();
}

void ModelServer::monitoring_status(const std::string& model, std::string* o) const {
  std::vector<std::shared_ptr<DriftMonitor>> monitors;
  for (const auto& sv : manager_->available())
    if (sv->model == model && sv->monitor) monitors.push_back(sv->monitor);
  std::sort(monitors.begin(), monitors.end(), [](const auto& a, const auto& b) { return a->version() > b->version(); });
  write_drift_status(monitors, o);
}

void ModelServer::source_status(const std::string& model, std::string* o) const {
  auto src = manager_->source(model);
  if (!src) return;
  *o += ",\"source\":{\"uri\":";
  json_string(o, src->uri);
  *o += std::string(",\"ok\":") + (src->state.last.ok() ? "true" : "false") + ",\"error\":";
  json_string(o, src->state.last.message());
  *o += ",\"syncs\":" + std::to_string(src->state.syncs) + ",\"failures\":" + std::to_string(src->state.failures) +
        ",\"downloaded_bytes\":" + std::to_string(src->state.downloaded_bytes) + ",\"waiting\":{";
  bool first = true;
  for (const auto& [v, why] : src->state.waiting) {
    *o += (first ? "\"" : ",\"") + std::to_string(v) + "\":";
    json_string(o, why);
    first = false;
  }
  *o += "}}";
}

void ModelServer::rollout_status(const std::string& model, std::string* o) const {
  for (const server::ModelConfig& c : manager_->config())
    if (c.name == model && c.rollout) return rollouts_->status_json(model, c.labels, o);
}

StatusOr<std::shared_ptr<const server::Servable>> ModelServer::route(
    const std::string& model, std::optional<int64_t> version, const std::optional<std::string>& label,
    const std::function<std::string_view(std::string_view)>& header, std::string_view identity,
    Rollouts::Ticket* ticket) const {
  if (version || label) return manager_->get(model, version, label);
  *ticket = rollouts_->pick(model, header, identity);
  const std::string* arm = ticket->label();
  if (!arm) return manager_->get(model, std::nullopt, std::nullopt);
  auto s = manager_->get(model, std::nullopt, *arm);
  if (s.ok() || ticket->arm() == 0) return s;
  *ticket = rollouts_->fall_back(*ticket);
  return manager_->get(model, std::nullopt, *ticket->label());
}

void ModelServer::run(const std::shared_ptr<const server::Servable>& s, std::vector<Tensor> inputs,
                      server::Clock::time_point deadline, server::RunDone done, const Rollouts::Ticket* ticket,
                      std::string_view request_id) {
  if (payload_ && !request_id.empty() && payload_->sample(s->model)) {
    // The inputs now (they may be views of the body); the outputs once the answer is on its way
    // (owned, kept by reference).
    const Signature& sig = s->session->signature();
    payload_->record(request_id, s->model, s->version, sig, inputs, false);
    done = [done = std::move(done), payload = payload_.get(), id = std::string(request_id), model = s->model,
            version = s->version, session = s->session](Status st, std::vector<Tensor> outs) {
      std::vector<Tensor> answer = st.ok() ? outs : std::vector<Tensor>{};
      const bool ok = st.ok();
      done(std::move(st), std::move(outs));
      if (ok) payload->record(id, model, version, session->signature(), answer, true);
    };
  }
  if (ticket && ticket->shadow() && rollouts_->reserve_shadow(*ticket)) {
    // The shadow gets its own copy of the inputs (they may be views of the request's body) and
    // the answer's outputs (owned; kept by reference) once the answer is on its way.
    std::vector<Tensor> copy;
    for (const Tensor& t : inputs) {
      auto c = t.clone();
      if (!c.ok()) break;
      copy.push_back(std::move(c).value());
    }
    if (copy.size() != inputs.size()) {
      rollouts_->release_shadow(*ticket);
    } else {
      const Rollouts* rollouts = rollouts_.get();
      done = [done = std::move(done), rollouts, t = *ticket, copy = std::move(copy)](Status st,
                                                                                     std::vector<Tensor> outs) mutable {
        const bool ok = st.ok();
        std::vector<Tensor> answer = ok ? outs : std::vector<Tensor>{};
        done(std::move(st), std::move(outs));
        if (ok)
          rollouts->shadow(t, std::move(copy), std::move(answer));
        else
          rollouts->release_shadow(t);
      };
    }
  }
  int64_t nonfinite = 0;
  for (const Tensor& t : inputs) nonfinite += count_nonfinite(t);
  if (nonfinite) metrics_->nonfinite_inputs(s->model, s->version, nonfinite);
  if (s->monitor) s->monitor->observe(inputs, false);
  if (s->batcher) {
    // The batcher keeps the session alive (and shows the monitor the outputs); `done` must not own the servable (see
    // manager.h).
    Status st = s->batcher->submit(std::move(inputs), deadline, done);
    if (!st.ok()) done(st, {});
    return;
  }
  if (server::Clock::now() > deadline) return done(DeadlineExceeded("the request timed out"), {});
  std::vector<Tensor> outputs;
  Status st;
  {
    // As many requests running as there are cores: each takes one (its thread alone), as
    // teams for all of them would oversubscribe the cores.
    struct Count {
      std::atomic<int>& n;
      const int now = ++n;
      ~Count() { --n; }
    } running{running_};
    std::optional<ThreadPool::Alone> alone;
    if (running.now >= cores_ && s->session->threads() > 1) alone.emplace();
    st = s->session->run(inputs, &outputs);
  }
  if (st.ok() && server::Clock::now() > deadline) st = DeadlineExceeded("the request timed out while running");
  if (st.ok() && s->monitor) s->monitor->observe(outputs, true);
  done(st, std::move(outputs));
}

namespace {}  // namespace

std::string clean_request_id(std::string_view given) {
  // A client's id is kept when it is short and plain; otherwise the server makes one.
  if (given.empty() || given.size() > 128) return AuditLog::new_request_id();
  for (char c : given)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':'))
      return AuditLog::new_request_id();
  return std::string(given);
}

namespace {

// The model a REST path names ("" for none), and whether it is a health check.
std::string model_of_path(const std::string& path, bool* health) {
  std::string rest;
  *health = false;
  if (starts_with_ci(path, "/v2/health/", &rest)) {
    *health = true;
    return "";
  }
  if (starts_with_ci(path, "/v1/registry/", &rest)) return rest.substr(0, rest.find('/'));
  const bool v1 = starts_with_ci(path, "/v1/models/", &rest);
  if (!v1 && !starts_with_ci(path, "/v2/models/", &rest)) return "";
  const size_t end = rest.find_first_of(v1 ? "/:" : "/");
  std::string model = rest.substr(0, end);
  if (!v1) {
    std::string lower = rest;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    *health = lower.size() >= 6 && lower.compare(lower.size() - 6, 6, "/ready") == 0;
  }
  return model;
}

}  // namespace

void ModelServer::handle(HttpRequest&& req, Respond respond) {
  std::string rest;
  const std::string& p = req.path;
  req.request_id = clean_request_id(req.header("x-request-id"));
  if (access_) {
    bool health = false;
    const std::string model = model_of_path(p, &health);
    Status st = access_->check(req.remote, req.header("authorization"), model, health, &req.identity);
    if (!st.ok()) {
      Reply reply(std::move(respond), metrics_.get(), "denied", req, audit_.get());
      std::string body = "{\"error\": ";
      json_string(&body, st.message());
      body += "}";
      HttpResponse r;
      r.status = http_status(st);
      r.body = std::move(body);
      if (st.code() == Code::kUnauthenticated) r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return reply(std::move(r));
    }
  }
  if (starts_with_ci(p, "/v1/models/", &rest)) return tfs(std::move(req), rest, std::move(respond));
  if (starts_with_ci(p, "/v1/registry", &rest) && (rest.empty() || rest[0] == '/'))
    return registry(std::move(req), rest, std::move(respond));
  if (starts_with_ci(p, "/v2", &rest) && (rest.empty() || rest[0] == '/'))
    return v2(std::move(req), rest, std::move(respond));
  Reply reply(std::move(respond), metrics_.get(), "other", req, audit_.get());
  std::string lower = p;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "/monitoring/prometheus/metrics" || lower == "/metrics") {
    if (req.method != "GET") return reply.error(InvalidArgument("metrics are read with GET"));
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics_->prometheus(*manager_, http_->io());
    rollouts_->prometheus(&r.body);
    std::vector<std::shared_ptr<DriftMonitor>> monitors;
    for (const auto& sv : manager_->available())
      if (sv->monitor) monitors.push_back(sv->monitor);
    write_drift_metrics(monitors, &r.body);
    if (payload_) payload_->prometheus(&r.body);
    if (audit_) {
      r.body +=
          "# HELP mserve_audit_lines_lost_total Audit log lines not written, by reason.\n"
          "# TYPE mserve_audit_lines_lost_total counter\n";
      r.body += "mserve_audit_lines_lost_total{reason=\"queue_full\"} " + std::to_string(audit_->dropped()) + "\n";
      r.body +=
          "mserve_audit_lines_lost_total{reason=\"write_error\"} " + std::to_string(audit_->write_errors()) + "\n";
    }
    return reply(std::move(r));
  }
  reply.error(NotFound("no such endpoint: " + req.method + " " + p));
}

}  // namespace mserve::server
