// LayerNormalization and com.mserve SkipLayerNormalization on the GPU: float32, the rows of
// ops/rows_math.h (the CPU's two-pass statistics, in double). Scale and B must hold one value per
// column of a row (the shape of the normalized dims); SkipLayerNormalization's A and B each have
// the output's shape or repeat whole rows of it (row_period). LayerNormalization's Mean and InvStdDev outputs are
// written when asked for.
#include "gpu/ops/layer_norm.h"

#include <string>

#include "core/kernels/common.h"
#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"

namespace mserve::gpu {
namespace {

// Whether `s`, broadcast to x, gives one value per column of x's rows (dims[axis:]).
bool per_column(const Shape& s, const Shape& x, int axis) {
  if (s.rank() > x.rank()) return false;
  for (int k = 0; k < s.rank(); ++k) {
    const int d = x.rank() - s.rank() + k;
    if (s[k] != (d < axis ? 1 : x[d])) return false;
  }
  return s.numel() == x.prod(axis, x.rank());
}

}  // namespace

int64_t row_period(const Shape& in, const Shape& x, int a) {
  if (in == x) return 0;
  const int r = x.rank(), off = r - in.rank();
  if (off < 0 || in.rank() < r - a) return -1;  // more dims than x, or a normalized dim broadcast
  // From the right: x's dims; then (from some row dim on) only 1s.
  bool ones = false;
  for (int d = in.rank() - 1; d >= 0; --d) {
    const int xd = d + off;
    if (!ones && in[d] == x[xd]) continue;
    if (xd >= a || in[d] != 1) return -1;
    ones = true;
  }
  return in.numel() / std::max<int64_t>(1, x.prod(a, r));
}

namespace {

class LayerNormKernel final : public GpuKernel {
 public:
  LayerNormKernel(KernelPtr cpu, int64_t axis, float eps, bool skip)
      : GpuKernel(std::move(cpu)), axis_(axis), eps_(eps), skip_(skip), s_(skip ? 2 : 1) {}

  Status compute(const ComputeContext& ctx) const override {
    const Shape& s = ctx.output(0).shape();
    MS_ASSIGN_OR_RETURN(int a, normalize_axis(axis_, s.rank()));
    LayerNormArgs g;
    g.a = ctx.input(0).data<float>();
    g.b = skip_ ? ctx.input(1).data<float>() : nullptr;
    g.y = ctx.output(0).data<float>();
    g.scale = ctx.input(s_).data<float>();
    g.bias = ctx.has_input(s_ + 1) ? ctx.input(s_ + 1).data<float>() : nullptr;
    if (skip_) {
      g.a_period = row_period(ctx.input(0).shape(), s, a);
      g.b_period = row_period(ctx.input(1).shape(), s, a);
      g.sum = ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
    } else {
      g.mean = ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
      g.inv_std = ctx.has_output(2) ? ctx.output(2).data<float>() : nullptr;
    }
    g.rows = s.prod(0, a);
    g.cols = s.prod(a, s.rank());
    g.eps = eps_;
    return cuda_status(launch_layer_norm(g, cuda_context(ctx).stream()),
                       skip_ ? "skip layer norm kernel" : "layer norm kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(accept_float32(ctx));
    const Shape& x = ctx.output(0).shape;
    MS_ASSIGN_OR_RETURN(int a, normalize_axis(axis_, x.rank()));
    if (skip_ && (row_period(ctx.shape(0), x, a) < 0 || row_period(ctx.shape(1), x, a) < 0))
      return InferContext::refuse("the GPU kernel adds A " + ctx.shape(0).str() + " and B " + ctx.shape(1).str() +
                                  " only when each has the output's shape or repeats whole rows of it");
    if (ctx.num_outputs() > (skip_ ? 2 : 3))
      return InferContext::refuse("the GPU kernel writes at most " + std::to_string(skip_ ? 2 : 3) + " outputs");
    for (int i = s_; i <= s_ + 1; ++i)
      if (ctx.has_input(i) && !per_column(ctx.shape(i), x, a))
        return InferContext::refuse(std::string(i == s_ ? "Scale " : "B ") + ctx.shape(i).str() +
                                    " is not one value per column of the rows of " + x.str() + " (axis " +
                                    std::to_string(a) + "): the GPU kernel does not broadcast it");
    return Status::OK();
  }

 private:
  int64_t axis_;
  float eps_;
  bool skip_;
  int s_;  // input index of Scale
};

}  // namespace

StatusOr<KernelPtr> create_gpu_layer_norm(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions&) {
  const bool skip = node.op_type == "SkipLayerNormalization";
  if (!skip && node.op_type != "LayerNormalization") return Unsupported(node.op_type + " has no GPU kernel");
  return KernelPtr(
      new LayerNormKernel(std::move(cpu), node.attr_int("axis", -1), node.attr_float("epsilon", 1e-5f), skip));
}

}  // namespace mserve::gpu
