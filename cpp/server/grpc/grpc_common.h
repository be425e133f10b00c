// Internal to the gRPC front end (grpc_server.cc, grpc_tfs.cc, grpc_v2.cc): status mapping,
// per-call metrics, running a request to its end on the calling thread, and copies between
// protobuf repeated fields and tensors.
#pragma once
#include <grpcpp/grpcpp.h>

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "server/model_server.h"

namespace mserve::server::grpc_front {

// mserve's status as gRPC's (same code names; load errors and bugs are INTERNAL).
::grpc::Status to_grpc(const Status& st);
// The same number in tensorflow.error.Code / grpc::StatusCode.
int status_code_number(const Status& st);

// One call: authorizes it, and records model, version, API, status and latency in the server's
// metrics and audit log at finish.
class Call {
 public:
  Call(ModelServer* server, std::string api, ::grpc::ServerContext* ctx);
  void model(const std::string& name, int64_t version) {
    model_ = name;
    version_ = version;
  }
  // ModelServer::authorize with the peer's address and "authorization" metadata; remembers the
  // identity for the audit log.
  Status authorize(const std::string& model, bool health = false);
  // ModelServer::route with the call's metadata and identity (after authorize); the rollout
  // arm's outcome is recorded at finish.
  StatusOr<std::shared_ptr<const server::Servable>> route(const std::string& model, std::optional<int64_t> version,
                                                          const std::optional<std::string>& label);
  const Rollouts::Ticket& ticket() const { return ticket_; }
  // The call's request id: the client's x-request-id when it is plain, else a new one (made once;
  // the audit log and the payload log share it).
  const std::string& request_id();
  // A predict's stages (metrics.h Stages), as Reply's: after its inputs are read from the request
  // message and after the run; the rest until finish counts as encoding. (Protobuf's own parsing
  // and serializing happen outside the call.)
  void decoded() { decoded_ = server::Clock::now(); }
  void ran() { ran_ = server::Clock::now(); }
  // Records the call; the trailing metadata names the version that answered (x-model-version)
  // and the rollout arm (x-model-arm).
  ::grpc::Status finish(const Status& st);

 private:
  ModelServer* server_;
  ::grpc::ServerContext* ctx_;
  Rollouts::Ticket ticket_;
  std::string request_id_;
  std::string api_, model_, identity_;
  int64_t version_ = 0;
  server::Clock::time_point start_, decoded_, ran_;
};

// The call's deadline: the client's, or the server's request timeout when that is sooner.
server::Clock::time_point call_deadline(const ModelServer& server, const ::grpc::ServerContext& ctx);

// Runs `inputs` on the servable (batched when it has a batcher) and waits for the outputs;
// counts non-finite outputs in the metrics. `call`: the call's rollout ticket and request id.
Status run_and_wait(ModelServer* server, const std::shared_ptr<const server::Servable>& s, std::vector<Tensor> inputs,
                    server::Clock::time_point deadline, std::vector<Tensor>* outputs, Call* call);

// Whether `v` is representable in To (integers: the same value; floats: always).
template <class To, class From>
bool fits(From v) {
  if constexpr (std::is_integral_v<To> && std::is_integral_v<From> && !std::is_same_v<To, bool>) {
    if constexpr (std::is_signed_v<From> && !std::is_signed_v<To>)
      if (v < 0) return false;
    if constexpr (!std::is_signed_v<From> && std::is_signed_v<To>)
      if (v > static_cast<std::make_unsigned_t<To>>(std::numeric_limits<To>::max())) return false;
    return static_cast<From>(static_cast<To>(v)) == v;
  } else {
    return true;
  }
}

// Copies `n` typed values into `t` (element type To). `n` must equal the tensor's size, or be 1
// with `broadcast_one` (TensorFlow's version-0 rule: one value fills the shape).
template <class To, class Field>
Status fill_values(const Field& field, bool broadcast_one, Tensor* t, const std::string& what) {
  const int64_t n = field.size(), numel = t->numel();
  To* out = t->data<To>();
  if (n == numel || (broadcast_one && n == 1)) {
    for (int64_t i = 0; i < numel; ++i) {
      const auto v = field.Get(static_cast<int>(n == numel ? i : 0));
      if (!fits<To>(v))
        return InvalidArgument(what + ": value " + std::to_string(v) + " is out of range for " +
                               dtype_name(t->dtype()));
      out[i] = static_cast<To>(v);
    }
    return Status::OK();
  }
  return InvalidArgument(what + " holds " + std::to_string(n) + " values; its shape " + t->shape().str() + " needs " +
                         std::to_string(numel));
}

// Appends every element of `t` (element type From) to a repeated field of wider type.
template <class From, class Field>
void append_values(const Tensor& t, Field* field) {
  const From* p = t.data<From>();
  const int64_t n = t.numel();
  field->Reserve(field->size() + static_cast<int>(n));
  if constexpr (std::is_same_v<From, typename Field::value_type>) {
    field->Add(p, p + n);
  } else {
    for (int64_t i = 0; i < n; ++i) field->AddAlreadyReserved(static_cast<typename Field::value_type>(p[i]));
  }
}

// The services, built on `server` (which outlives them).
std::unique_ptr<::grpc::Service> make_prediction_service(ModelServer* server);
std::unique_ptr<::grpc::Service> make_model_service(ModelServer* server);
std::unique_ptr<::grpc::Service> make_config_service(ModelServer* server);
std::unique_ptr<::grpc::Service> make_inference_service(ModelServer* server);

}  // namespace mserve::server::grpc_front
