// GrpcServer: the gRPC front end of a ModelServer (grpc++ synchronous server), in the same
// process as the HTTP server and sharing its models, versions, batching, metrics and limits.
// Services: tensorflow.serving.PredictionService (Predict, GetModelMetadata),
// tensorflow.serving.ModelService (GetModelStatus, HandleReloadConfigRequest),
// mserve.ConfigService (GetModelServerConfig), inference.GRPCInferenceService (KServe v2) and
// grpc.health.v1.Health (grpc++'s own health service: SERVING once every model has a version).
// The .proto files are in cpp/server/proto.
//
// Each call runs on one of grpc++'s threads (at most max_threads; beyond that new calls get
// RESOURCE_EXHAUSTED) and waits there for its result, which may come from a batching thread.
// A client's deadline bounds the call: a request still queued when it passes is dropped.
//
// Thread-safety: start/stop from one thread; the services may be called from any thread.
#pragma once
#include <memory>
#include <string>

#include "core/status.h"

namespace mserve::server {

class ModelServer;

struct GrpcOptions {
  std::string host = "127.0.0.1";
  int port = -1;                            // -1: no gRPC server; 0: pick a free port
  int max_threads = 0;                      // <= 0: 4 per core, at least 16
  size_t max_message_bytes = 64 << 20;      // larger requests get RESOURCE_EXHAUSTED
  std::string tls_cert_file, tls_key_file;  // TLS when both are set (PEM)
};

class GrpcServer {
 public:
  // Binds and starts serving `server`'s models; fails with a clear message when the address is
  // taken. `server` must outlive the GrpcServer.
  static StatusOr<std::unique_ptr<GrpcServer>> start(const GrpcOptions& opts, ModelServer* server);
  ~GrpcServer();  // stop(0)
  int port() const;
  // Stops accepting, lets in-flight calls finish (up to drain_ms; the rest are cancelled),
  // then joins. Idempotent.
  void stop(int drain_ms = 30000);

  struct Impl;

 private:
  explicit GrpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mserve::server
