#include "server/grpc/grpc_server.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "mserve_apis/config_service.grpc.pb.h"
#include "server/codec/json.h"
#include "server/grpc/grpc_common.h"

namespace mserve::server {
namespace grpc_front {

::grpc::Status to_grpc(const Status& st) {
  if (st.ok()) return ::grpc::Status::OK;
  return ::grpc::Status(static_cast<::grpc::StatusCode>(status_code_number(st)), st.message());
}

int status_code_number(const Status& st) {
  switch (st.code()) {
    case Code::kOk: return ::grpc::StatusCode::OK;
    case Code::kInvalidArgument: return ::grpc::StatusCode::INVALID_ARGUMENT;
    case Code::kNotFound: return ::grpc::StatusCode::NOT_FOUND;
    case Code::kResourceExhausted: return ::grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Code::kUnavailable: return ::grpc::StatusCode::UNAVAILABLE;
    case Code::kDeadlineExceeded: return ::grpc::StatusCode::DEADLINE_EXCEEDED;
    case Code::kUnauthenticated: return ::grpc::StatusCode::UNAUTHENTICATED;
    case Code::kPermissionDenied: return ::grpc::StatusCode::PERMISSION_DENIED;
    case Code::kUnimplemented:
    case Code::kUnsupported: return ::grpc::StatusCode::UNIMPLEMENTED;
    case Code::kLoadError:
    case Code::kInternal: return ::grpc::StatusCode::INTERNAL;
  }
  return ::grpc::StatusCode::INTERNAL;
}

Call::Call(ModelServer* server, std::string api, ::grpc::ServerContext* ctx)
    : server_(server), ctx_(ctx), api_(std::move(api)), start_(server::Clock::now()) {}

namespace {

std::string_view metadata(const ::grpc::ServerContext& ctx, std::string_view key) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(::grpc::string_ref(key.data(), key.size()));
  return it == md.end() ? std::string_view() : std::string_view(it->second.data(), it->second.size());
}

const char* code_name(int code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN";
}

}  // namespace

Status Call::authorize(const std::string& model, bool health) {
  return server_->authorize(ctx_->peer(), metadata(*ctx_, "authorization"), model, health, &identity_);
}

StatusOr<std::shared_ptr<const server::Servable>> Call::route(const std::string& model, std::optional<int64_t> version,
                                                              const std::optional<std::string>& label) {
  return server_->route(
      model, version, label, [this](std::string_view key) { return metadata(*ctx_, key); }, identity_, &ticket_);
}

const std::string& Call::request_id() {
  if (request_id_.empty()) request_id_ = clean_request_id(metadata(*ctx_, "x-request-id"));
  return request_id_;
}

::grpc::Status Call::finish(const Status& st) {
  const auto now = server::Clock::now();
  const double secs = std::chrono::duration<double>(now - start_).count();
  if (version_ > 0) ctx_->AddTrailingMetadata("x-model-version", std::to_string(version_));
  if (ticket_) {
    ticket_.finish(version_, st.ok(), secs);
    if (const std::string* label = ticket_.label()) ctx_->AddTrailingMetadata("x-model-arm", *label);
  }
  const auto stages = Stages::of(start_, decoded_, ran_, now);
  server_->metrics().request(model_, version_, api_, http_status(st), secs, stages ? &*stages : nullptr);
  if (AuditLog* audit = server_->audit()) {
    AuditRecord a;
    a.protocol = "grpc";
    a.client = ctx_->peer();
    a.identity = identity_;
    a.model = model_;
    a.version = version_;
    a.endpoint = api_;
    a.status = status_code_number(st);
    a.status_name = code_name(a.status);
    a.latency_ms = secs * 1e3;
    a.request_id = request_id();
    audit->record(a);
  }
  return to_grpc(st);
}

server::Clock::time_point call_deadline(const ModelServer& server, const ::grpc::ServerContext& ctx) {
  const auto left = ctx.deadline() - std::chrono::system_clock::now();
  auto client = server::Clock::time_point::max();
  if (left < std::chrono::hours(24 * 365))
    client = server::Clock::now() + std::chrono::duration_cast<server::Clock::duration>(left);
  return server.deadline(client);
}

Status run_and_wait(ModelServer* server, const std::shared_ptr<const server::Servable>& s, std::vector<Tensor> inputs,
                    server::Clock::time_point deadline, std::vector<Tensor>* outputs, Call* call) {
  struct Result {
    std::promise<Status> status;
    std::vector<Tensor> outputs;
  };
  auto result = std::make_shared<Result>();
  std::future<Status> done = result->status.get_future();
  server->run(
      s, std::move(inputs), deadline,
      [result](Status st, std::vector<Tensor> outs) {
        result->outputs = std::move(outs);
        result->status.set_value(std::move(st));
      },
      &call->ticket(), server->payload_log() ? std::string_view(call->request_id()) : std::string_view());
  Status st = done.get();
  if (!st.ok()) return st;
  *outputs = std::move(result->outputs);
  int64_t bad = 0;
  for (const Tensor& t : *outputs) bad += count_nonfinite(t);
  if (bad) server->metrics().nonfinite_outputs(s->model, s->version, bad);
  return Status::OK();
}

namespace {

class ConfigService final : public ::mserve::ConfigService::Service {
 public:
  explicit ConfigService(ModelServer* server) : server_(server) {}
  ::grpc::Status GetModelServerConfig(::grpc::ServerContext* ctx, const ::mserve::GetModelServerConfigRequest*,
                                      ::mserve::GetModelServerConfigResponse* resp) override {
    Call call(server_, "grpc_config", ctx);
    if (Status a = call.authorize(""); !a.ok()) return call.finish(a);
    std::vector<server::ModelConfig> models;
    for (server::ModelConfig& m : server_->manager().config())
      if (!m.base_path.empty()) models.push_back(std::move(m));  // in-memory models have no files to name
    if (!resp->mutable_config()->ParseFromString(server::model_config_binary(models)))
      return call.finish(Internal("cannot encode the model config"));
    resp->set_text(server::model_config_text(models));
    return call.finish(Status::OK());
  }

  ::grpc::Status ListModels(::grpc::ServerContext* ctx, const ::mserve::ListModelsRequest* req,
                            ::mserve::ListModelsResponse* resp) override {
    Call call(server_, "grpc_registry", ctx);
    if (Status a = call.authorize(req->name()); !a.ok()) return call.finish(a);
    auto models = server_->manager().registry(req->name());
    if (!models.ok()) return call.finish(models.status());
    bool found = req->version() == 0;
    for (const auto& m : models.value()) {
      auto* out = resp->add_models();
      out->set_name(m.name);
      out->set_source(m.source);
      for (const auto& [label, v] : m.labels) (*out->mutable_labels())[label] = v;
      for (const auto& [st, sv] : m.versions) {
        if (req->version() && st.version != req->version()) continue;
        found = true;
        auto* v = out->add_versions();
        v->set_version(st.version);
        v->set_state(server::state_name(st.state));
        v->set_error(st.error.message());
        if (!sv) continue;
        v->set_path(sv->path);
        const std::string digest = sv->digest();
        if (!digest.empty()) v->set_digest("sha256:" + digest);
        v->set_signer(sv->signer);
        v->set_encrypted(sv->encrypted);
        v->set_loaded_at(sv->loaded_at);
        v->set_load_seconds(sv->load_seconds);
      }
    }
    if (!found)
      return call.finish(NotFound("model '" + req->name() + "' has no version " + std::to_string(req->version())));
    return call.finish(Status::OK());
  }

 private:
  ModelServer* server_;
};

}  // namespace

std::unique_ptr<::grpc::Service> make_config_service(ModelServer* server) {
  return std::make_unique<ConfigService>(server);
}

}  // namespace grpc_front

struct GrpcServer::Impl {
  std::vector<std::unique_ptr<::grpc::Service>> services;
  std::unique_ptr<::grpc::Server> server;
  int port = 0;
  ModelServer* model_server = nullptr;
  // Health: follows ModelServer readiness.
  std::thread health;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;

  void health_loop() {
    static const char* const kServices[] = {"", "tensorflow.serving.PredictionService",
                                            "tensorflow.serving.ModelService", "inference.GRPCInferenceService"};
    ::grpc::HealthCheckServiceInterface* h = server->GetHealthCheckService();
    int last = -1;
    std::unique_lock<std::mutex> lk(mu);
    while (!stopping) {
      const int ready = model_server->ready() ? 1 : 0;
      if (h && ready != last) {
        for (const char* s : kServices) h->SetServingStatus(s, ready == 1);
        last = ready;
      }
      cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return stopping; });
    }
  }
};

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcServer::~GrpcServer() { stop(0); }
int GrpcServer::port() const { return impl_->port; }

StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::start(const GrpcOptions& opts, ModelServer* server) {
  auto impl = std::make_unique<Impl>();
  impl->model_server = server;
  impl->services.push_back(grpc_front::make_prediction_service(server));
  impl->services.push_back(grpc_front::make_model_service(server));
  impl->services.push_back(grpc_front::make_config_service(server));
  impl->services.push_back(grpc_front::make_inference_service(server));

  ::grpc::EnableDefaultHealthCheckService(true);
  ::grpc::ServerBuilder builder;
  const std::string host = opts.host.find(':') != std::string::npos ? "[" + opts.host + "]" : opts.host;
  const std::string address = host + ":" + std::to_string(opts.port);
  std::shared_ptr<::grpc::ServerCredentials> creds = ::grpc::InsecureServerCredentials();
  if (!opts.tls_cert_file.empty() || !opts.tls_key_file.empty()) {
    if (opts.tls_cert_file.empty() || opts.tls_key_file.empty())
      return InvalidArgument("TLS needs both a certificate file and a private key file");
    MS_ASSIGN_OR_RETURN(std::string cert, server::read_text_file(opts.tls_cert_file));
    MS_ASSIGN_OR_RETURN(std::string key, server::read_text_file(opts.tls_key_file));
    ::grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({key, cert});
    creds = ::grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(address, creds, &impl->port);
  // A second server must not share the port (grpc's default is SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(opts.max_message_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(-1);
  int threads = opts.max_threads;
  if (threads <= 0) threads = std::max(16, 4 * static_cast<int>(std::thread::hardware_concurrency()));
  ::grpc::ResourceQuota quota("mserve_grpc");
  quota.SetMaxThreads(threads);
  builder.SetResourceQuota(quota);
  for (auto& s : impl->services) builder.RegisterService(s.get());
  impl->server = builder.BuildAndStart();
  if (!impl->server || impl->port == 0)
    return Unavailable("cannot serve gRPC on " + address + " (is the port in use or the address wrong?)");
  Impl* raw = impl.get();
  impl->health = std::thread([raw] { raw->health_loop(); });
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
}

void GrpcServer::stop(int drain_ms) {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->health.joinable()) impl_->health.join();
  if (impl_->server) {
    ::grpc::HealthCheckServiceInterface* h = impl_->server->GetHealthCheckService();
    if (h) h->Shutdown();  // watchers hear NOT_SERVING while the calls drain
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(std::max(0, drain_ms)));
    impl_->server->Wait();
  }
}

}  // namespace mserve::server
