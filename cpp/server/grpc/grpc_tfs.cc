// TensorFlow Serving's gRPC API: PredictionService (Predict, GetModelMetadata) and ModelService
// (GetModelStatus, HandleReloadConfigRequest). Inputs come as TensorProto (tensor_content, used
// in place when aligned, or the dtype's typed field); outputs go back in the typed fields, as
// TensorFlow Serving answers (clients read float_val or call tf.make_ndarray).
#include <cstring>

#include "server/codec/protocol.h"
#include "server/grpc/grpc_common.h"
#include "tensorflow_serving/apis/model_service.grpc.pb.h"
#include "tensorflow_serving/apis/prediction_service.grpc.pb.h"

namespace mserve::server::grpc_front {
namespace {

namespace tfs = ::tensorflow::serving;
using ::tensorflow::TensorProto;

constexpr const char* kSignature = "serving_default";
constexpr size_t kMaxBroadcastBytes = 64 << 20;

// The version or label a ModelSpec asks for (neither: the newest).
void spec_version(const tfs::ModelSpec& spec, std::optional<int64_t>* version, std::optional<std::string>* label) {
  if (spec.has_version()) *version = spec.version().value();
  if (spec.version_choice_case() == tfs::ModelSpec::kVersionLabel) *label = spec.version_label();
}

// The servable a ModelSpec names; `predict`: routed as a predict (a rollout may pick it).
StatusOr<std::shared_ptr<const server::Servable>> resolve(ModelServer* server, const tfs::ModelSpec& spec,
                                                          Call* predict = nullptr) {
  if (spec.name().empty()) return InvalidArgument("model_spec.name is empty");
  if (!spec.signature_name().empty() && spec.signature_name() != kSignature)
    return InvalidArgument("signature '" + spec.signature_name() +
                           "' not found; ONNX models have one: serving_default");
  std::optional<int64_t> version;
  std::optional<std::string> label;
  spec_version(spec, &version, &label);
  if (predict) return predict->route(spec.name(), version, label);
  return server->manager().get(spec.name(), version, label);
}

void answer_spec(const server::Servable& s, tfs::ModelSpec* spec) {
  spec->set_name(s.model);
  spec->mutable_version()->set_value(s.version);
  spec->set_signature_name(kSignature);
}

StatusOr<Tensor> tensor_from_proto(const TensorProto& p, DType want, const std::string& what) {
  std::optional<DType> dt = dtype_from_tf(p.dtype());
  if (!dt)
    return InvalidArgument(what + " has dtype " + tf_dtype_number_name(p.dtype()) + ", which mserve does not serve");
  if (*dt != want)
    return InvalidArgument(what + " is " + tf_dtype_name(*dt) + "; the model expects " + tf_dtype_name(want));
  const auto& shape_pb = p.tensor_shape();
  if (shape_pb.unknown_rank()) return InvalidArgument(what + " has an unknown rank; send its shape");
  if (!Shape::fits(static_cast<size_t>(shape_pb.dim_size())))
    return InvalidArgument(what + " has rank " + std::to_string(shape_pb.dim_size()) + "; at most " +
                           std::to_string(Shape::kMaxRank) + " is supported");
  Shape shape;
  for (const auto& d : shape_pb.dim()) {
    if (d.size() < 0) return InvalidArgument(what + " has a negative dimension (" + std::to_string(d.size()) + ")");
    shape.push_back(d.size());
  }
  MS_ASSIGN_OR_RETURN(size_t bytes, aligned_bytes(want, shape));
  if (!p.tensor_content().empty()) {
    if (want == DType::kString)
      return InvalidArgument(what + ": DT_STRING values go in string_val, not tensor_content");
    const std::string& c = p.tensor_content();
    const size_t need = static_cast<size_t>(shape.numel()) * dtype_size(want);
    if (c.size() != need)
      return InvalidArgument(what + ": tensor_content has " + std::to_string(c.size()) + " bytes; shape " +
                             shape.str() + " of " + tf_dtype_name(want) + " needs " + std::to_string(need));
    if (reinterpret_cast<uintptr_t>(c.data()) % dtype_size(want) == 0) {
      // Used in place: the request outlives the call, which waits for its outputs.
      char* data = const_cast<char*>(c.data());
      return Tensor(want, shape, Buffer::borrow(data, need, nullptr), data);
    }
    MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(want, shape));
    std::memcpy(t.raw(), c.data(), need);
    return t;
  }
  // The typed values are counted before anything is allocated: a shape the request's values
  // cannot fill is refused, and one value fills a shape only up to kMaxBroadcastBytes.
  int64_t values = 0;
  switch (want) {
    case DType::kFloat32: values = p.float_val_size(); break;
    case DType::kFloat64: values = p.double_val_size(); break;
    case DType::kFloat16:
    case DType::kBFloat16: values = p.half_val_size(); break;  // both hold their bits in half_val
    case DType::kInt8:
    case DType::kInt16:
    case DType::kInt32:
    case DType::kUInt8:
    case DType::kUInt16: values = p.int_val_size(); break;
    case DType::kInt64: values = p.int64_val_size(); break;
    case DType::kUInt32: values = p.uint32_val_size(); break;
    case DType::kUInt64: values = p.uint64_val_size(); break;
    case DType::kBool: values = p.bool_val_size(); break;
    case DType::kString: values = p.string_val_size(); break;
    default: break;
  }
  if (values != shape.numel() && !(values == 1 && bytes <= kMaxBroadcastBytes))
    return InvalidArgument(
        what + " holds " + std::to_string(values) + " values; its shape " + shape.str() + " needs " +
        std::to_string(shape.numel()) +
        (values == 1 ? " (one value fills at most " + std::to_string(kMaxBroadcastBytes >> 20) + " MiB)" : ""));
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(want, shape));
  switch (want) {
    case DType::kFloat32: MS_RETURN_IF_ERROR(fill_values<float>(p.float_val(), true, &t, what)); break;
    case DType::kFloat64: MS_RETURN_IF_ERROR(fill_values<double>(p.double_val(), true, &t, what)); break;
    case DType::kFloat16:
    case DType::kBFloat16: MS_RETURN_IF_ERROR(fill_values<uint16_t>(p.half_val(), true, &t, what)); break;
    case DType::kInt8: MS_RETURN_IF_ERROR(fill_values<int8_t>(p.int_val(), true, &t, what)); break;
    case DType::kInt16: MS_RETURN_IF_ERROR(fill_values<int16_t>(p.int_val(), true, &t, what)); break;
    case DType::kInt32: MS_RETURN_IF_ERROR(fill_values<int32_t>(p.int_val(), true, &t, what)); break;
    case DType::kUInt8: MS_RETURN_IF_ERROR(fill_values<uint8_t>(p.int_val(), true, &t, what)); break;
    case DType::kUInt16: MS_RETURN_IF_ERROR(fill_values<uint16_t>(p.int_val(), true, &t, what)); break;
    case DType::kInt64: MS_RETURN_IF_ERROR(fill_values<int64_t>(p.int64_val(), true, &t, what)); break;
    case DType::kUInt32: MS_RETURN_IF_ERROR(fill_values<uint32_t>(p.uint32_val(), true, &t, what)); break;
    case DType::kUInt64: MS_RETURN_IF_ERROR(fill_values<uint64_t>(p.uint64_val(), true, &t, what)); break;
    case DType::kBool: MS_RETURN_IF_ERROR(fill_values<bool>(p.bool_val(), true, &t, what)); break;
    case DType::kString: {
      const int64_t n = p.string_val_size(), numel = t.numel();
      if (n != numel && n != 1)
        return InvalidArgument(what + " holds " + std::to_string(n) + " values; its shape " + shape.str() + " needs " +
                               std::to_string(numel));
      for (int64_t i = 0; i < numel; ++i) t.str(i) = p.string_val(static_cast<int>(n == numel ? i : 0));
      break;
    }
    default: return InvalidArgument(what + ": " + dtype_name(want) + " tensors cannot be sent over gRPC");
  }
  return t;
}

void tensor_to_proto(const Tensor& t, TensorProto* p) {
  p->set_dtype(static_cast<::tensorflow::DataType>(tf_dtype_number(t.dtype())));
  auto* shape = p->mutable_tensor_shape();
  for (int d = 0; d < t.rank(); ++d) shape->add_dim()->set_size(t.dim(d));
  switch (t.dtype()) {
    case DType::kFloat32: append_values<float>(t, p->mutable_float_val()); break;
    case DType::kFloat64: append_values<double>(t, p->mutable_double_val()); break;
    case DType::kFloat16:
    case DType::kBFloat16: append_values<uint16_t>(t, p->mutable_half_val()); break;
    case DType::kInt8: append_values<int8_t>(t, p->mutable_int_val()); break;
    case DType::kInt16: append_values<int16_t>(t, p->mutable_int_val()); break;
    case DType::kInt32: append_values<int32_t>(t, p->mutable_int_val()); break;
    case DType::kUInt8: append_values<uint8_t>(t, p->mutable_int_val()); break;
    case DType::kUInt16: append_values<uint16_t>(t, p->mutable_int_val()); break;
    case DType::kInt64: append_values<int64_t>(t, p->mutable_int64_val()); break;
    case DType::kUInt32: append_values<uint32_t>(t, p->mutable_uint32_val()); break;
    case DType::kUInt64: append_values<uint64_t>(t, p->mutable_uint64_val()); break;
    case DType::kBool: append_values<bool>(t, p->mutable_bool_val()); break;
    case DType::kString:
      for (int64_t i = 0; i < t.numel(); ++i) p->add_string_val(t.str(i));
      break;
    default: break;
  }
}

void signature_tensors(const std::vector<Value>& specs,
                       google::protobuf::Map<std::string, ::tensorflow::TensorInfo>* out) {
  for (const Value& v : specs) {
    ::tensorflow::TensorInfo& info = (*out)[v.name];
    info.set_name(v.name);
    info.set_dtype(static_cast<::tensorflow::DataType>(tf_dtype_number(v.dtype)));
    auto* shape = info.mutable_tensor_shape();
    if (!v.has_shape) {
      shape->set_unknown_rank(true);
      continue;
    }
    for (const auto& d : v.dims) {
      auto* dim = shape->add_dim();
      dim->set_size(d.known() ? d.value : -1);
      if (!d.symbol.empty()) dim->set_name(d.symbol);
    }
  }
}

class PredictionService final : public tfs::PredictionService::Service {
 public:
  explicit PredictionService(ModelServer* server) : server_(server) {}

  ::grpc::Status Predict(::grpc::ServerContext* ctx, const tfs::PredictRequest* req,
                         tfs::PredictResponse* resp) override {
    Call call(server_, "grpc_predict", ctx);
    if (Status a = call.authorize(req->model_spec().name()); !a.ok()) return call.finish(a);
    auto found = resolve(server_, req->model_spec(), &call);
    if (!found.ok()) return call.finish(found.status());
    std::shared_ptr<const server::Servable> sv = std::move(found).value();
    call.model(sv->model, sv->version);
    const Signature& sig = sv->session->signature();
    std::vector<Tensor> inputs(sig.inputs.size());
    for (size_t i = 0; i < sig.inputs.size(); ++i) {
      const Value& v = sig.inputs[i];
      auto it = req->inputs().find(v.name);
      if (it == req->inputs().end()) return call.finish(InvalidArgument("missing input '" + v.name + "'"));
      auto t = tensor_from_proto(it->second, v.dtype, "input '" + v.name + "'");
      if (!t.ok()) return call.finish(t.status());
      inputs[i] = std::move(t).value();
    }
    for (const auto& [name, _] : req->inputs()) {
      if (position_of(sig.inputs, name) == sig.inputs.size())
        return call.finish(InvalidArgument("the model has no input '" + name + "'"));
    }
    std::vector<size_t> wanted;
    for (const std::string& name : req->output_filter()) {
      const size_t idx = position_of(sig.outputs, name);
      if (idx == sig.outputs.size())
        return call.finish(InvalidArgument("output_filter names '" + name + "', which the model does not have"));
      wanted.push_back(idx);
    }
    if (wanted.empty())
      for (size_t i = 0; i < sig.outputs.size(); ++i) wanted.push_back(i);
    std::vector<Tensor> outs;
    call.decoded();
    Status st = run_and_wait(server_, sv, std::move(inputs), call_deadline(*server_, *ctx), &outs, &call);
    call.ran();
    if (!st.ok()) return call.finish(st);
    answer_spec(*sv, resp->mutable_model_spec());
    for (size_t idx : wanted) tensor_to_proto(outs[idx], &(*resp->mutable_outputs())[sig.outputs[idx].name]);
    return call.finish(Status::OK());
  }

  ::grpc::Status GetModelMetadata(::grpc::ServerContext* ctx, const tfs::GetModelMetadataRequest* req,
                                  tfs::GetModelMetadataResponse* resp) override {
    Call call(server_, "grpc_metadata", ctx);
    if (Status a = call.authorize(req->model_spec().name()); !a.ok()) return call.finish(a);
    if (req->metadata_field_size() == 0)
      return call.finish(InvalidArgument("metadata_field is empty; ask for \"signature_def\""));
    for (const std::string& f : req->metadata_field())
      if (f != "signature_def")
        return call.finish(InvalidArgument("metadata field '" + f + "' is not supported; ask for \"signature_def\""));
    auto found = resolve(server_, req->model_spec());
    if (!found.ok()) return call.finish(found.status());
    const auto& sv = found.value();
    call.model(sv->model, sv->version);
    const Signature& sig = sv->session->signature();
    tfs::SignatureDefMap sigs;
    ::tensorflow::SignatureDef& def = (*sigs.mutable_signature_def())[kSignature];
    signature_tensors(sig.inputs, def.mutable_inputs());
    signature_tensors(sig.outputs, def.mutable_outputs());
    def.set_method_name("tensorflow/serving/predict");
    answer_spec(*sv, resp->mutable_model_spec());
    (*resp->mutable_metadata())["signature_def"].PackFrom(sigs);
    return call.finish(Status::OK());
  }

 private:
  ModelServer* server_;
};

tfs::ModelVersionStatus::State state_of(server::VersionState s) {
  switch (s) {
    case server::VersionState::kStart: return tfs::ModelVersionStatus::START;
    case server::VersionState::kLoading: return tfs::ModelVersionStatus::LOADING;
    case server::VersionState::kAvailable: return tfs::ModelVersionStatus::AVAILABLE;
    case server::VersionState::kUnloading: return tfs::ModelVersionStatus::UNLOADING;
    case server::VersionState::kEnd: return tfs::ModelVersionStatus::END;
  }
  return tfs::ModelVersionStatus::UNKNOWN;
}

class ModelService final : public tfs::ModelService::Service {
 public:
  explicit ModelService(ModelServer* server) : server_(server) {}

  ::grpc::Status GetModelStatus(::grpc::ServerContext* ctx, const tfs::GetModelStatusRequest* req,
                                tfs::GetModelStatusResponse* resp) override {
    Call call(server_, "grpc_status", ctx);
    if (Status a = call.authorize(req->model_spec().name()); !a.ok()) return call.finish(a);
    const tfs::ModelSpec& spec = req->model_spec();
    if (spec.name().empty()) return call.finish(InvalidArgument("model_spec.name is empty"));
    std::optional<int64_t> version;
    std::optional<std::string> label;
    spec_version(spec, &version, &label);
    call.model(spec.name(), version.value_or(0));
    auto st = server_->manager().status(spec.name(), version, label);
    if (!st.ok()) return call.finish(st.status());
    for (const server::VersionStatus& v : st.value()) {
      tfs::ModelVersionStatus* out = resp->add_model_version_status();
      out->set_version(v.version);
      out->set_state(state_of(v.state));
      out->mutable_status()->set_error_code(static_cast<::tensorflow::error::Code>(status_code_number(v.error)));
      out->mutable_status()->set_error_message(v.error.message());
    }
    return call.finish(Status::OK());
  }

  ::grpc::Status HandleReloadConfigRequest(::grpc::ServerContext* ctx, const tfs::ReloadConfigRequest* req,
                                           tfs::ReloadConfigResponse* resp) override {
    Call call(server_, "grpc_reload_config", ctx);
    if (Status a = call.authorize(""); !a.ok()) return call.finish(a);
    auto models = server::parse_model_config_binary(req->config().SerializeAsString());
    Status st = models.ok() ? server_->reload_config(models.value()) : models.status();
    resp->mutable_status()->set_error_code(static_cast<::tensorflow::error::Code>(status_code_number(st)));
    resp->mutable_status()->set_error_message(st.message());
    return call.finish(st);
  }

 private:
  ModelServer* server_;
};

}  // namespace

std::unique_ptr<::grpc::Service> make_prediction_service(ModelServer* server) {
  return std::make_unique<PredictionService>(server);
}
std::unique_ptr<::grpc::Service> make_model_service(ModelServer* server) {
  return std::make_unique<ModelService>(server);
}

}  // namespace mserve::server::grpc_front
