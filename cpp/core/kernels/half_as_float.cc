#include "core/kernels/half_as_float.h"

#include <array>
#include <atomic>
#include <utility>
#include <vector>

#include "core/kernels/cast.h"

namespace mserve {
namespace {

// Families whose kernels compute in float32 only (oneDNN, mserve's float32 GEMM, the packed
// recurrent cells): their 16-bit constants are converted once, at load, and the node is always
// lowered.
bool always_lowered(const std::string& family) {
  return family == "matmul" || family == "conv" || family == "conv_transpose" || family == "rnn";
}

bool has_dtype_attribute(const Node& n) { return n.attr("to") || n.attr("dtype") || n.attr("output_dtype"); }

size_t aligned(size_t bytes) { return (bytes + 63) / 64 * 64; }

size_t float_bytes(const Shape& s) { return aligned(static_cast<size_t>(s.numel()) * sizeof(float)); }

// n slots on the stack for the usual arity, on the heap past it (compute allocates nothing for
// nodes of up to 8 inputs and outputs).
template <class T>
class Slots {
 public:
  explicit Slots(int n) {
    if (n > static_cast<int>(small_.size())) big_.resize(n);
    data_ = big_.empty() ? small_.data() : big_.data();
    for (int i = 0; i < n; ++i) data_[i] = T();
  }
  T& operator[](int i) { return data_[i]; }
  T* data() { return data_; }

 private:
  std::array<T, 8> small_{};
  std::vector<T> big_;
  T* data_;
};

class HalfAsFloat final : public Kernel {
 public:
  // `constants[i]`: the float32 copy of 16-bit constant input i that `lowered` was created over
  // (is_constant[i]); a copy without bytes where `lowered` packed it (only its shape is passed).
  HalfAsFloat(const Node& node, KernelPtr native, KernelPtr lowered, std::vector<Tensor> constants,
              std::vector<bool> is_constant)
      : map_outputs_(!has_dtype_attribute(node)),
        native_(std::move(native)),
        lowered_(std::move(lowered)),
        constants_(std::move(constants)),
        is_constant_(std::move(is_constant)) {}

  Status infer(InferContext& ctx) const override {
    DType half = DType::kUndefined;
    bool bf16 = false;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i) || !dtype_is_half(ctx.dtype(i))) continue;
      if (half == DType::kUndefined) half = ctx.dtype(i);
      bf16 = bf16 || ctx.dtype(i) == DType::kBFloat16;
    }
    const Kernel& any = native_ ? *native_ : *lowered_;
    if (half == DType::kUndefined || !lowered_) return infer_with(any, ctx);
    Status native_status = Status::OK();
    // bfloat16 is storage only: a kernel that reads the data never sees it.
    if (native_ && (!bf16 || !native_->reads_input_data())) {
      native_status = native_->infer(ctx);
      if (native_status.ok() || native_status.code() != Code::kUnsupported) {
        lowered_mode_.store(false);
        return native_status;
      }
    }
    // The inputs as float32: known values converted here (plan time only).
    const int n_in = ctx.num_inputs();
    std::vector<ValueInfo> infos(n_in);
    std::vector<Tensor> converted(n_in);
    std::vector<const ValueInfo*> ptrs(n_in, nullptr);
    for (int i = 0; i < n_in; ++i) {
      if (!ctx.has_input(i)) continue;
      const ValueInfo& vi = ctx.input(i);
      infos[i] = vi;
      if (has_constant(i)) {
        infos[i] = ValueInfo{DType::kFloat32, vi.shape, constants_[i].raw() ? &constants_[i] : nullptr};
      } else if (dtype_is_half(vi.dtype)) {
        infos[i] = ValueInfo{DType::kFloat32, vi.shape, nullptr};
        if (vi.value && vi.value->raw()) {
          MS_ASSIGN_OR_RETURN(converted[i], cast_copy(*vi.value, DType::kFloat32));
          infos[i].value = &converted[i];
        }
      }
      ptrs[i] = &infos[i];
    }
    InferContext inner(ctx.node(), ptrs, ctx.threads());
    Status st = lowered_->infer(inner);
    if (!st.ok()) return native_status.ok() ? st : native_status;
    lowered_mode_.store(true);
    if (inner.deferred()) return ctx.need_value();
    size_t ws = 0;
    for (int i = 0; i < n_in; ++i)
      if (ctx.has_input(i) && !has_constant(i) && dtype_is_half(ctx.dtype(i))) ws += float_bytes(ctx.shape(i));
    for (int o = 0; o < ctx.num_outputs(); ++o) {
      if (ctx.node().outputs[o] == kNoValue) continue;
      const ValueInfo& out = inner.output(o);
      const bool rounded = map_outputs_ && out.dtype == DType::kFloat32;
      ctx.set_output(o, rounded ? half : out.dtype, out.shape);
      if (rounded) ws += float_bytes(out.shape);
    }
    ctx.set_workspace(ws + inner.workspace());
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    if (!lowered_mode_.load()) return any().compute(ctx);
    // Workspace: the float32 inputs, then the float32 outputs, then the kernel's own.
    char* ws = static_cast<char*>(ctx.workspace());
    size_t off = 0;
    const bool reads = lowered_->reads_input_data();
    Slots<Tensor> in(ctx.num_inputs());
    Slots<const Tensor*> in_ptrs(ctx.num_inputs());
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i)) continue;
      const Tensor& x = ctx.input(i);
      in_ptrs[i] = &x;
      if (has_constant(i)) {
        in[i] = constants_[i].raw() ? constants_[i] : Tensor(DType::kFloat32, x.shape(), nullptr);
        in_ptrs[i] = &in[i];
      } else if (dtype_is_half(x.dtype())) {
        in[i] = Tensor(DType::kFloat32, x.shape(), reads ? ws + off : nullptr);
        off += float_bytes(x.shape());
        if (reads) MS_RETURN_IF_ERROR(cast_tensor(x, in[i], ctx.pool()));
        in_ptrs[i] = &in[i];
      }
    }
    Slots<Tensor> out(ctx.num_outputs());
    Slots<Tensor*> out_ptrs(ctx.num_outputs());
    for (int o = 0; o < ctx.num_outputs(); ++o) {
      if (!ctx.has_output(o)) continue;
      Tensor& y = ctx.output(o);
      out_ptrs[o] = &y;
      if (map_outputs_ && dtype_is_half(y.dtype())) {
        out[o] = Tensor(DType::kFloat32, y.shape(), ws + off);
        off += float_bytes(y.shape());
        out_ptrs[o] = &out[o];
      }
    }
    ComputeContext inner(in_ptrs.data(), ctx.num_inputs(), out_ptrs.data(), ctx.num_outputs(), ws + off, &ctx.pool(),
                         ctx.device());
    MS_RETURN_IF_ERROR(lowered_->compute(inner));
    for (int o = 0; o < ctx.num_outputs(); ++o)
      if (out_ptrs[o] == &out[o]) MS_RETURN_IF_ERROR(cast_tensor(out[o], ctx.output(o), ctx.pool()));
    return Status::OK();
  }

  bool reads_input_data() const override { return any().reads_input_data(); }
  bool supports_strings() const override { return any().supports_strings(); }
  bool packed_constant(int i) const override {
    // A converted constant is read from its float32 copy (or the kernel's packed copy), never
    // again in 16 bits, when there is no native kernel to read it.
    if (has_constant(i)) return !native_;
    return (!native_ || native_->packed_constant(i)) && (!lowered_ || lowered_->packed_constant(i));
  }

 private:
  const Kernel& any() const { return native_ ? *native_ : *lowered_; }
  bool has_constant(int i) const { return i < static_cast<int>(is_constant_.size()) && is_constant_[i]; }
  Status infer_with(const Kernel& k, InferContext& ctx) const {
    lowered_mode_.store(false);
    return k.infer(ctx);
  }

  const bool map_outputs_;
  KernelPtr native_, lowered_;
  std::vector<Tensor> constants_;
  std::vector<bool> is_constant_;
  mutable std::atomic<bool> lowered_mode_{false};
};

}  // namespace

bool needs_half_as_float(const Graph& g) {
  for (const auto& [id, t] : g.initializers)
    if (dtype_is_half(t.dtype())) return true;
  std::vector<bool> is_output(g.values.size(), false);
  for (int v : g.outputs) is_output[v] = true;
  for (const Node& n : g.nodes) {
    if (n.domain.empty() && n.op_type == "Cast") {
      const bool to_half = dtype_is_half(dtype_of_onnx(n.attr_int("to", 0)));
      if (to_half && n.outputs.size() == 1 && n.outputs[0] != kNoValue && !is_output[n.outputs[0]]) return true;
      continue;
    }
    for (const auto* ids : {&n.inputs, &n.outputs})
      for (int v : *ids)
        if (v != kNoValue && dtype_is_half(g.values[v].dtype)) return true;
    if (attrs_hold_16bit_floats(n)) return true;
  }
  return false;
}

StatusOr<KernelPtr> create_half_as_float(const Node& node, const KernelInit& init, KernelFactory factory,
                                         const std::string& family) {
  if ((node.domain.empty() && (node.op_type == "Cast" || node.op_type == "CastLike"))) return factory(node, init);
  const bool lower_only = always_lowered(family);
  KernelPtr native;
  Status native_status = Status::OK();
  if (!lower_only) {
    auto k = factory(node, init);
    if (!k.ok()) {
      native_status = k.status();
    } else {
      native = std::move(k).value();
      if (native->produces_own_outputs() || native->output_is_input_view()) return native;
    }
  }
  // The float32 copies of 16-bit constants, for a kernel that is always lowered or has no
  // native form (a factory that refused the 16-bit weights).
  const size_t n_in = node.inputs.size();
  std::vector<Tensor> constants(n_in);
  std::vector<bool> is_constant(n_in, false);
  std::vector<const Tensor*> by_input(n_in, nullptr);
  bool any_constant = false;
  if (!native) {
    for (size_t i = 0; i < n_in; ++i) {
      const Tensor* c = init.constant(node, static_cast<int>(i));
      if (!c || !dtype_is_half(c->dtype()) || !c->raw()) continue;
      MS_ASSIGN_OR_RETURN(constants[i], cast_copy(*c, DType::kFloat32));
      by_input[i] = &constants[i];
      is_constant[i] = any_constant = true;
    }
  }
  auto lowered = factory(node, any_constant ? init.with_constants(by_input) : init);
  if (!lowered.ok()) {
    if (native) return native;
    return native_status.ok() ? lowered.status() : native_status;
  }
  KernelPtr low = std::move(lowered).value();
  for (size_t i = 0; i < n_in; ++i)
    if (is_constant[i] && low->packed_constant(static_cast<int>(i)))
      constants[i] = Tensor(DType::kFloat32, constants[i].shape(), nullptr);  // the kernel keeps its own
  return KernelPtr(
      new HalfAsFloat(node, std::move(native), std::move(low), std::move(constants), std::move(is_constant)));
}

}  // namespace mserve
