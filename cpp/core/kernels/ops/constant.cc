// Constant: the output is built once from the node's attribute (value, or from opset 12
// value_float(s) / value_int(s) / value_string(s)); compute copies it. Sparse constants are not
// supported.
#include <cstring>
#include <string>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

class ConstantKernel final : public Kernel {
 public:
  explicit ConstantKernel(Tensor value) : value_(std::move(value)) {}
  bool supports_strings() const override { return true; }

  Status infer(InferContext& ctx) const override {
    ctx.set_output(0, value_.dtype(), value_.shape());
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    if (!ctx.has_output(0)) return Status::OK();
    Tensor& out = ctx.output(0);
    if (out.nbytes() != value_.nbytes() || out.dtype() != value_.dtype()) return Internal("constant size mismatch");
    copy_data(value_, out);
    return Status::OK();
  }

 private:
  Tensor value_;  // owned by this kernel
};

// An owned 1-D tensor (or scalar when `scalar`) holding `n` values of T.
template <class T, class S>
StatusOr<Tensor> make_tensor(const S* values, size_t n, bool scalar) {
  Shape shape;
  if (!scalar) shape.push_back(static_cast<int64_t>(n));
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(DTypeOf<T>::value, shape));
  T* p = t.data<T>();
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<T>(values[i]);
  return t;
}

}  // namespace

StatusOr<Tensor> constant_node_value(const Node& node) {
  if (node.attr("sparse_value")) return Unsupported("Constant attribute 'sparse_value' is not supported");

  const char* found = nullptr;
  int count = 0;
  for (const char* key :
       {"value", "value_float", "value_floats", "value_int", "value_ints", "value_string", "value_strings"})
    if (node.attr(key)) {
      found = key;
      ++count;
    }
  if (count != 1)
    return InvalidArgument(
        "exactly one of the attributes value, value_float, value_floats, value_int, "
        "value_ints, value_string, value_strings must be set, got " +
        std::to_string(count));
  const Attribute& a = *node.attr(found);
  const std::string key = found;
  using K = Attribute::Kind;
  auto wrong_kind = [&] { return InvalidArgument("attribute '" + key + "' has the wrong type"); };

  Tensor value;
  if (key == "value") {
    if (a.kind != K::kTensor || !a.t.defined()) return wrong_kind();
    // A deep copy: the attribute's tensor may be a view of the model file.
    MS_ASSIGN_OR_RETURN(value, a.t.clone());
  } else if (key == "value_float") {
    if (a.kind != K::kFloat) return wrong_kind();
    MS_ASSIGN_OR_RETURN(value, (make_tensor<float, float>(&a.f, 1, true)));
  } else if (key == "value_floats") {
    if (a.kind != K::kFloats) return wrong_kind();
    MS_ASSIGN_OR_RETURN(value, (make_tensor<float, float>(a.floats.data(), a.floats.size(), false)));
  } else if (key == "value_int") {
    if (a.kind != K::kInt) return wrong_kind();
    MS_ASSIGN_OR_RETURN(value, (make_tensor<int64_t, int64_t>(&a.i, 1, true)));
  } else if (key == "value_ints") {
    if (a.kind != K::kInts) return wrong_kind();
    MS_ASSIGN_OR_RETURN(value, (make_tensor<int64_t, int64_t>(a.ints.data(), a.ints.size(), false)));
  } else if (key == "value_string") {
    if (a.kind != K::kString) return wrong_kind();
    MS_ASSIGN_OR_RETURN(value, (make_tensor<std::string, std::string>(&a.s, 1, true)));
  } else {
    if (a.kind != K::kStrings) return wrong_kind();
    MS_ASSIGN_OR_RETURN(value, (make_tensor<std::string, std::string>(a.strings.data(), a.strings.size(), false)));
  }
  return value;
}

StatusOr<KernelPtr> create_onnx_Constant(const Node& node, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(Tensor value, constant_node_value(node));
  return KernelPtr(new ConstantKernel(std::move(value)));
}

}  // namespace mserve
