// ModelServer: the model repository, batching and metrics behind an HttpServer that speaks
// TensorFlow Serving's REST API (rest_tfs.cc) and KServe v2 / Open Inference Protocol REST
// (rest_v2.cc), plus Prometheus metrics, and (when its port is set) a GrpcServer with the same
// APIs over gRPC (grpc_server.h). No Python on the request path.
//
// Thread-safety: start/stop from one thread; requests are served on the HTTP threads (and the
// batching threads when batching is on).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/parallel/thread_pool.h"
#include "server/grpc/grpc_server.h"
#include "server/http/http.h"
#include "server/metrics/metrics.h"
#include "server/monitor/payload_log.h"
#include "server/repository/manager.h"
#include "server/rollout/rollout.h"
#include "server/security/access.h"
#include "server/security/audit.h"

namespace mserve::server {

struct ServerOptions {
  HttpOptions http;
  GrpcOptions grpc;           // grpc.port -1: no gRPC server
  AccessOptions access;       // tokens and client allow-list, for both front ends
  AuditOptions audit;         // audit.path "" : no audit log
  PayloadLogOptions payload;  // neither path nor url: no payload log
  server::ManagerOptions manager;
  int request_timeout_ms = 0;             // 0: none (--rest_api_timeout_in_ms)
  int file_system_poll_wait_seconds = 1;  // 0: never poll the model folders after start
  std::string model_config_file;          // re-read every model_config_file_poll_wait_seconds
  int model_config_file_poll_wait_seconds = 0;
};

// HTTP status for a Status code (TensorFlow Serving's mapping).
int http_status(const Status& st);
// The request id to use for a client's X-Request-Id / x-request-id value ("" when absent): the
// client's when it is at most 128 plain characters, else a new one.
std::string clean_request_id(std::string_view given);

// Answers one request exactly once and records it in the metrics and (when there is one) the
// audit log; the answer carries the request's X-Request-Id.
class Reply {
 public:
  Reply(Respond respond, server::Metrics* metrics, std::string api, const HttpRequest& req, AuditLog* audit);
  void model(const std::string& name, int64_t version) const;
  // The rollout arm that answers (ModelServer::route): the outcome is recorded for its guard and
  // the answer names the arm.
  void ticket(Rollouts::Ticket t) const;
  // A predict's stages (metrics.h Stages): call when its inputs are decoded and when the model
  // has run; the time from then to the answer counts as encoding.
  void decoded() const;
  void ran() const;
  void operator()(HttpResponse r) const;
  void json(int status, std::string body) const;
  void error(const Status& st) const;  // {"error": "..."} with the mapped status

 private:
  struct State;
  std::shared_ptr<State> st_;
};

class ModelServer {
 public:
  // Loads `models` (from disk) and `sessions` (in memory), then starts listening. Models that
  // fail to load are reported in their status; the server starts anyway.
  static StatusOr<std::unique_ptr<ModelServer>> start(
      ServerOptions opts, const std::vector<server::ModelConfig>& models,
      const std::vector<std::pair<std::string, std::shared_ptr<Session>>>& sessions);
  ~ModelServer();
  int port() const { return http_->port(); }
  int grpc_port() const { return grpc_ ? grpc_->port() : -1; }
  bool ready() const { return manager_->ready(); }
  // Drains in-flight requests (up to drain_ms), then stops. Idempotent.
  void stop(int drain_ms = 30000);
  server::ModelManager& manager() { return *manager_; }

  // For the front ends (REST handlers, GrpcServer).
  server::Metrics& metrics() { return *metrics_; }
  AuditLog* audit() const { return audit_.get(); }
  // The servable that answers a predict: the version or label the request names; else, for a
  // model with a rollout, the arm its split picks (`ticket`; the baseline when the arm's label
  // has no available version), else the newest. `header(name)` reads a request header or gRPC
  // metadata (lower-case names); `identity` is the caller's authenticated identity.
  StatusOr<std::shared_ptr<const server::Servable>> route(
      const std::string& model, std::optional<int64_t> version, const std::optional<std::string>& label,
      const std::function<std::string_view(std::string_view)>& header, std::string_view identity,
      Rollouts::Ticket* ticket) const;
  // Runs a request's inputs through the servable (batched when it has a batcher); `done` is
  // called exactly once, maybe on another thread, and must not own the servable (manager.h).
  // A `ticket` that picked the request for its rollout's shadow has the inputs and the answer
  // queued for the shadow once `done` has returned. With a payload log, the request (its
  // `request_id`) may be sampled into it.
  void run(const std::shared_ptr<const server::Servable>& s, std::vector<Tensor> inputs,
           server::Clock::time_point deadline, server::RunDone done, const Rollouts::Ticket* ticket = nullptr,
           std::string_view request_id = {});
  const Rollouts& rollouts() const { return *rollouts_; }
  bool payload_log() const { return payload_ != nullptr; }
  // The deadline of a request arriving now: the server's request timeout, or `client` when
  // that is sooner.
  server::Clock::time_point deadline(server::Clock::time_point client = server::Clock::time_point::max()) const;
  // Whether a call may proceed (access.h); OK when no access control is configured.
  Status authorize(std::string_view remote, std::string_view authorization, const std::string& model, bool health,
                   std::string* identity = nullptr) const {
    return access_ ? access_->check(remote, authorization, model, health, identity) : Status::OK();
  }
  // Replaces the models served from disk (a reload over gRPC), rollouts included; logged.
  Status reload_config(const std::vector<server::ModelConfig>& models);
  // The status endpoint's ,"rollout":{...} for `model` (nothing when it has no rollout), and its
  // ,"monitoring":[...] (versions with a reference profile; drift.h).
  void rollout_status(const std::string& model, std::string* o) const;
  void monitoring_status(const std::string& model, std::string* o) const;
  // ,"source":{...} for a model served from a remote base path (its mirror's state).
  void source_status(const std::string& model, std::string* o) const;

 private:
  ModelServer() = default;
  void handle(HttpRequest&& req, Respond respond);
  void poll_loop();

  // TensorFlow Serving REST (rest_tfs.cc); `rest` is the path after "/v1/models/".
  void tfs(HttpRequest&& req, const std::string& rest, Respond respond);
  // KServe v2 REST (rest_v2.cc); `rest` is the path after "/v2".
  void v2(HttpRequest&& req, const std::string& rest, Respond respond);
  // The registry view (rest_registry.cc); `rest` is the path after "/v1/registry".
  void registry(HttpRequest&& req, const std::string& rest, Respond respond);

  ServerOptions opts_;
  std::unique_ptr<server::Metrics> metrics_;
  std::unique_ptr<server::ModelManager> manager_;
  std::unique_ptr<AccessControl> access_;  // null: every client may call
  std::unique_ptr<AuditLog> audit_;        // null: no audit log
  std::unique_ptr<Rollouts> rollouts_;     // after manager_ and audit_, which it uses
  std::unique_ptr<PayloadLog> payload_;    // null: no payload log
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<GrpcServer> grpc_;
  std::string config_text_;
  std::thread poller_;
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  bool stopping_ = false;
  std::atomic<int> running_{0};                      // requests in Session::run (run())
  const int cores_ = ThreadPool::default_threads();  // from this many on, each runs alone
};

}  // namespace mserve::server
