// KServe v2 / Open Inference Protocol over gRPC: inference.GRPCInferenceService (ServerLive,
// ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelInfer). Inputs come as typed
// contents or raw_input_contents (used in place when aligned); outputs go back as
// raw_output_contents, as Triton answers.
#include <cstring>

#include "kserve/grpc_predict_v2.grpc.pb.h"
#include "server/codec/protocol.h"
#include "server/grpc/grpc_common.h"

namespace mserve::server::grpc_front {
namespace {

namespace v2 = ::inference;

StatusOr<std::optional<int64_t>> parse_version(const std::string& v) {
  if (v.empty()) return std::optional<int64_t>();
  if (v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
    return InvalidArgument("version '" + v + "' is not a number");
  return std::optional<int64_t>(std::stoll(v));
}

// The servable a name and version string name; `infer`: routed as an inference (a rollout may
// pick it).
StatusOr<std::shared_ptr<const server::Servable>> resolve(ModelServer* server, const std::string& name,
                                                          const std::string& version, Call* infer = nullptr) {
  if (name.empty()) return InvalidArgument("the model name is empty");
  MS_ASSIGN_OR_RETURN(std::optional<int64_t> v, parse_version(version));
  if (infer) return infer->route(name, v, std::nullopt);
  return server->manager().get(name, v, std::nullopt);
}

template <class Field>
void tensor_metadata(const std::vector<Value>& specs, Field* out) {
  for (const Value& v : specs) {
    auto* m = out->Add();
    m->set_name(v.name);
    m->set_datatype(v2_dtype(v.dtype));
    if (v.has_shape)
      for (const auto& d : v.dims) m->add_shape(d.known() ? d.value : -1);
  }
}

StatusOr<Tensor> input_tensor(const v2::ModelInferRequest::InferInputTensor& in, DType dt, const std::string* raw,
                              const std::string& what) {
  if (!Shape::fits(static_cast<size_t>(in.shape_size())))
    return InvalidArgument(what + " has rank " + std::to_string(in.shape_size()) + "; at most " +
                           std::to_string(Shape::kMaxRank) + " is supported");
  Shape shape;
  for (int64_t d : in.shape()) {
    if (d < 0) return InvalidArgument(what + " has a negative dimension (" + std::to_string(d) + ")");
    shape.push_back(d);
  }
  MS_ASSIGN_OR_RETURN(size_t bytes, aligned_bytes(dt, shape));
  (void)bytes;
  if (raw) {
    if (dt == DType::kString) return decode_length_prefixed(raw->data(), raw->size(), shape, what);
    const size_t need = static_cast<size_t>(shape.numel()) * dtype_size(dt);
    if (raw->size() != need)
      return InvalidArgument(what + ": raw_input_contents has " + std::to_string(raw->size()) + " bytes; shape " +
                             shape.str() + " of " + v2_dtype(dt) + " needs " + std::to_string(need));
    if (reinterpret_cast<uintptr_t>(raw->data()) % dtype_size(dt) == 0) {
      // Used in place: the request outlives the call, which waits for its outputs.
      char* data = const_cast<char*>(raw->data());
      return Tensor(dt, shape, Buffer::borrow(data, need, nullptr), data);
    }
    MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dt, shape));
    std::memcpy(t.raw(), raw->data(), need);
    return t;
  }
  const v2::InferTensorContents& c = in.contents();
  // Counted before anything is allocated: the shape must match the values sent.
  int64_t values = -1;
  switch (dt) {
    case DType::kFloat32: values = c.fp32_contents_size(); break;
    case DType::kFloat64: values = c.fp64_contents_size(); break;
    case DType::kInt8:
    case DType::kInt16:
    case DType::kInt32: values = c.int_contents_size(); break;
    case DType::kInt64: values = c.int64_contents_size(); break;
    case DType::kUInt8:
    case DType::kUInt16:
    case DType::kUInt32: values = c.uint_contents_size(); break;
    case DType::kUInt64: values = c.uint64_contents_size(); break;
    case DType::kBool: values = c.bool_contents_size(); break;
    case DType::kString: values = c.bytes_contents_size(); break;
    default: return InvalidArgument(what + ": " + v2_dtype(dt) + " travels only in raw_input_contents");
  }
  if (values != shape.numel())
    return InvalidArgument(what + " contents holds " + std::to_string(values) + " values; its shape " + shape.str() +
                           " needs " + std::to_string(shape.numel()));
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dt, shape));
  const std::string field = what + " contents";
  switch (dt) {
    case DType::kFloat32: MS_RETURN_IF_ERROR(fill_values<float>(c.fp32_contents(), false, &t, field)); break;
    case DType::kFloat64: MS_RETURN_IF_ERROR(fill_values<double>(c.fp64_contents(), false, &t, field)); break;
    case DType::kInt8: MS_RETURN_IF_ERROR(fill_values<int8_t>(c.int_contents(), false, &t, field)); break;
    case DType::kInt16: MS_RETURN_IF_ERROR(fill_values<int16_t>(c.int_contents(), false, &t, field)); break;
    case DType::kInt32: MS_RETURN_IF_ERROR(fill_values<int32_t>(c.int_contents(), false, &t, field)); break;
    case DType::kInt64: MS_RETURN_IF_ERROR(fill_values<int64_t>(c.int64_contents(), false, &t, field)); break;
    case DType::kUInt8: MS_RETURN_IF_ERROR(fill_values<uint8_t>(c.uint_contents(), false, &t, field)); break;
    case DType::kUInt16: MS_RETURN_IF_ERROR(fill_values<uint16_t>(c.uint_contents(), false, &t, field)); break;
    case DType::kUInt32: MS_RETURN_IF_ERROR(fill_values<uint32_t>(c.uint_contents(), false, &t, field)); break;
    case DType::kUInt64: MS_RETURN_IF_ERROR(fill_values<uint64_t>(c.uint64_contents(), false, &t, field)); break;
    case DType::kBool: MS_RETURN_IF_ERROR(fill_values<bool>(c.bool_contents(), false, &t, field)); break;
    case DType::kString: {
      if (c.bytes_contents_size() != t.numel())
        return InvalidArgument(field + " holds " + std::to_string(c.bytes_contents_size()) + " values; its shape " +
                               shape.str() + " needs " + std::to_string(t.numel()));
      for (int64_t i = 0; i < t.numel(); ++i) t.str(i) = c.bytes_contents(static_cast<int>(i));
      break;
    }
    default: return InvalidArgument(what + ": " + v2_dtype(dt) + " travels only in raw_input_contents");
  }
  return t;
}

class InferenceService final : public v2::GRPCInferenceService::Service {
 public:
  explicit InferenceService(ModelServer* server) : server_(server) {}

  ::grpc::Status ServerLive(::grpc::ServerContext* ctx, const v2::ServerLiveRequest*,
                            v2::ServerLiveResponse* resp) override {
    Call call(server_, "grpc_v2_health", ctx);
    if (Status a = call.authorize("", true); !a.ok()) return call.finish(a);
    resp->set_live(true);
    return call.finish(Status::OK());
  }

  ::grpc::Status ServerReady(::grpc::ServerContext* ctx, const v2::ServerReadyRequest*,
                             v2::ServerReadyResponse* resp) override {
    Call call(server_, "grpc_v2_health", ctx);
    if (Status a = call.authorize("", true); !a.ok()) return call.finish(a);
    resp->set_ready(server_->ready());
    return call.finish(Status::OK());
  }

  ::grpc::Status ModelReady(::grpc::ServerContext* ctx, const v2::ModelReadyRequest* req,
                            v2::ModelReadyResponse* resp) override {
    Call call(server_, "grpc_v2_health", ctx);
    if (Status a = call.authorize(req->name(), true); !a.ok()) return call.finish(a);
    auto v = parse_version(req->version());
    if (!v.ok()) return call.finish(v.status());
    resp->set_ready(!req->name().empty() && server_->manager().get(req->name(), v.value(), std::nullopt).ok());
    return call.finish(Status::OK());
  }

  ::grpc::Status ServerMetadata(::grpc::ServerContext* ctx, const v2::ServerMetadataRequest*,
                                v2::ServerMetadataResponse* resp) override {
    Call call(server_, "grpc_v2", ctx);
    if (Status a = call.authorize(""); !a.ok()) return call.finish(a);
    resp->set_name(kServerName);
    resp->set_version(kServerVersion);
    return call.finish(Status::OK());
  }

  ::grpc::Status ModelMetadata(::grpc::ServerContext* ctx, const v2::ModelMetadataRequest* req,
                               v2::ModelMetadataResponse* resp) override {
    Call call(server_, "grpc_v2", ctx);
    if (Status a = call.authorize(req->name()); !a.ok()) return call.finish(a);
    auto found = resolve(server_, req->name(), req->version());
    if (!found.ok()) return call.finish(found.status());
    const auto& sv = found.value();
    call.model(sv->model, sv->version);
    resp->set_name(sv->model);
    auto st = server_->manager().status(sv->model, std::nullopt, std::nullopt);
    if (st.ok())
      for (const auto& v : st.value())
        if (v.state == server::VersionState::kAvailable) resp->add_versions(std::to_string(v.version));
    resp->set_platform(kV2Platform);
    const Signature& sig = sv->session->signature();
    tensor_metadata(sig.inputs, resp->mutable_inputs());
    tensor_metadata(sig.outputs, resp->mutable_outputs());
    return call.finish(Status::OK());
  }

  ::grpc::Status ModelInfer(::grpc::ServerContext* ctx, const v2::ModelInferRequest* req,
                            v2::ModelInferResponse* resp) override {
    Call call(server_, "grpc_v2_infer", ctx);
    if (Status a = call.authorize(req->model_name()); !a.ok()) return call.finish(a);
    auto found = resolve(server_, req->model_name(), req->model_version(), &call);
    if (!found.ok()) return call.finish(found.status());
    std::shared_ptr<const server::Servable> sv = std::move(found).value();
    call.model(sv->model, sv->version);
    const Signature& sig = sv->session->signature();
    const bool raw = req->raw_input_contents_size() > 0;
    if (raw && req->raw_input_contents_size() != req->inputs_size())
      return call.finish(InvalidArgument("raw_input_contents has " + std::to_string(req->raw_input_contents_size()) +
                                         " entries for " + std::to_string(req->inputs_size()) +
                                         " inputs; send one per input, or none"));
    std::vector<Tensor> inputs(sig.inputs.size());
    std::vector<bool> seen(sig.inputs.size(), false);
    for (int k = 0; k < req->inputs_size(); ++k) {
      const auto& in = req->inputs(k);
      const std::string what = "input '" + in.name() + "'";
      const size_t idx = position_of(sig.inputs, in.name());
      if (idx == sig.inputs.size()) return call.finish(InvalidArgument("the model has no " + what));
      if (seen[idx]) return call.finish(InvalidArgument(what + " appears twice"));
      seen[idx] = true;
      const DType dt = sig.inputs[idx].dtype;
      if (in.datatype() != v2_dtype(dt))
        return call.finish(
            InvalidArgument(what + " has datatype " + in.datatype() + "; the model expects " + v2_dtype(dt)));
      auto t = input_tensor(in, dt, raw ? &req->raw_input_contents(k) : nullptr, what);
      if (!t.ok()) return call.finish(t.status());
      inputs[idx] = std::move(t).value();
    }
    for (size_t i = 0; i < seen.size(); ++i)
      if (!seen[i]) return call.finish(InvalidArgument("missing input '" + sig.inputs[i].name + "'"));
    std::vector<size_t> wanted;
    for (const auto& o : req->outputs()) {
      const size_t idx = position_of(sig.outputs, o.name());
      if (idx == sig.outputs.size()) return call.finish(InvalidArgument("the model has no output '" + o.name() + "'"));
      wanted.push_back(idx);
    }
    if (wanted.empty())
      for (size_t i = 0; i < sig.outputs.size(); ++i) wanted.push_back(i);
    std::vector<Tensor> outs;
    call.decoded();
    Status st = run_and_wait(server_, sv, std::move(inputs), call_deadline(*server_, *ctx), &outs, &call);
    call.ran();
    if (!st.ok()) return call.finish(st);
    resp->set_model_name(sv->model);
    resp->set_model_version(std::to_string(sv->version));
    resp->set_id(req->id());
    for (size_t idx : wanted) {
      const Tensor& t = outs[idx];
      auto* o = resp->add_outputs();
      o->set_name(sig.outputs[idx].name);
      o->set_datatype(v2_dtype(t.dtype()));
      for (int d = 0; d < t.rank(); ++d) o->add_shape(t.dim(d));
      std::string* bytes = resp->add_raw_output_contents();
      if (t.dtype() == DType::kString)
        encode_length_prefixed(t, bytes);
      else
        bytes->assign(static_cast<const char*>(t.raw()), t.nbytes());
    }
    return call.finish(Status::OK());
  }

 private:
  ModelServer* server_;
};

}  // namespace

std::unique_ptr<::grpc::Service> make_inference_service(ModelServer* server) {
  return std::make_unique<InferenceService>(server);
}

}  // namespace mserve::server::grpc_front
