// Conv (NCHW, 1-D and 2-D) and com.mserve NhwcConv (2-D, channels-last) on cuDNN: the
// convolution by cuDNN's heuristic algorithm (exact fp32 FMA math, TF32, or 16-bit data with fp32
// accumulation), then bias, the fused activation, the residual and the activation after it in one
// element-wise pass (ops/conv_math.h), which also widens a 16-bit result into the float32 output.
// NhwcConv's weights are repacked once to the [M, kh, kw, C/g] order cuDNN takes with NHWC data,
// and constant weights are converted once for the 16-bit precisions; both are kept on the GPU by
// the kernel. In 16 bits the input (and weights that are not constant) are converted per run
// into the kernel's workspace: [cuDNN's workspace | x | y | w].
#include <cuda_runtime.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "core/kernels/conv_geometry.h"
#include "core/kernels/fused_activation.h"
#include "gpu/cuda_status.h"
#include "gpu/lib/dnn.h"
#include "gpu/ops/conv.h"
#include "gpu/ops/convert.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"

namespace mserve::gpu {
namespace {

class ConvKernel final : public GpuKernel {
 public:
  // w: the kernel's own copy of the weights (NhwcConv's repacked, or converted to `data`), or empty.
  ConvKernel(KernelPtr cpu, bool nhwc, WindowAttrs win, FusedActivation act, bool residual, FusedActivation after,
             DeviceWeights w, bool tf32, Operand data)
      : GpuKernel(std::move(cpu)),
        nhwc_(nhwc),
        win_(std::move(win)),
        act_(act),
        residual_(residual),
        after_(after),
        w_(std::move(w)),
        tf32_(tf32),
        data_(data) {}

  // Weights read from the kernel's own copy: the planner need not upload the original.
  bool host_input(int i) const override { return i == 1 && !w_.empty(); }

  Status compute(const ComputeContext& ctx) const override {
    Tensor& y = ctx.output(0);
    if (y.numel() == 0) return Status::OK();
    CudaContext& cuda = cuda_context(ctx);
    MS_ASSIGN_OR_RETURN(ConvSpec spec, spec_of(ctx.input(0).shape(), ctx.input(1).shape(), nullptr));
    MS_ASSIGN_OR_RETURN(auto plan, plan_for(spec));
    const void* w = ctx.input(1).raw();
    if (!w_.empty()) {
      MS_ASSIGN_OR_RETURN(w, w_.get("convolution weights"));
    }
    const uint16_t* y16 = nullptr;
    if (data_ == Operand::kF32) {
      MS_RETURN_IF_ERROR(plan->run(cuda, ctx.input(0).raw(), w, y.raw(), ctx.workspace()));
    } else {
      Workspace16 ws(ctx.workspace(), aligned256(plan->workspace_bytes()));
      MS_ASSIGN_OR_RETURN(const uint16_t* x16, ws.convert(ctx.input(0), data_, cuda.stream()));
      uint16_t* y_out = ws.reserve(y.numel());
      if (w_.empty()) {
        MS_ASSIGN_OR_RETURN(w, ws.convert(ctx.input(1), data_, cuda.stream()));
      }
      MS_RETURN_IF_ERROR(plan->run(cuda, x16, w, y_out, ctx.workspace()));
      y16 = y_out;
    }
    ConvEpilogue e;
    e.bias = ctx.has_input(2) ? ctx.input(2).data<float>() : nullptr;
    e.residual = residual_ ? ctx.input(3).data<float>() : nullptr;
    e.channels = spec.m;
    e.plane = nhwc_ ? 0 : y.numel() / (y.dim(0) * spec.m);
    e.act = act_.kind, e.act_a = act_.alpha, e.act_b = act_.beta;
    e.after = after_.kind, e.after_a = after_.alpha, e.after_b = after_.beta;
    const bool any =
        e.bias || e.residual || e.act != FusedActivation::Kind::kNone || e.after != FusedActivation::Kind::kNone;
    if (y16)
      MS_CUDA_RETURN_IF_ERROR(launch_conv_epilogue16(e, y16, data_, y.data<float>(), y.numel(), cuda.stream()),
                              "conv epilogue");
    else if (any)
      MS_CUDA_RETURN_IF_ERROR(launch_conv_epilogue(e, y.data<float>(), y.numel(), cuda.stream()), "conv epilogue");
    return Status::OK();
  }

 protected:
  Status accept(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(accept_float32(ctx));
    if (ctx.output(0).shape.numel() == 0) return Status::OK();
    if (residual_ && !(ctx.shape(3) == ctx.output(0).shape))
      return InferContext::refuse("the residual " + ctx.shape(3).str() + " is broadcast to the output");
    std::string why;
    auto spec = spec_of(ctx.shape(0), ctx.shape(1), &why);
    if (!spec.ok()) return spec.status();
    if (!why.empty()) return InferContext::refuse(why);
    MS_ASSIGN_OR_RETURN(auto plan, plan_for(spec.value()));
    int64_t dims[4];
    MS_RETURN_IF_ERROR(plan->output_dims(dims));
    const Shape& y = ctx.output(0).shape;
    const int64_t oh = dims[2], ow = dims[3];
    const bool same = nhwc_ ? (y[1] == oh && y[2] == ow && y[3] == dims[1])
                            : (y[1] == dims[1] && y[y.rank() - 1] == ow && (y.rank() == 3 ? oh == 1 : y[2] == oh));
    if (!same) return Internal("cuDNN's output size differs from the CPU's for " + spec.value().str());
    auto handle = planning_cudnn();
    if (!handle.ok()) return InferContext::refuse(handle.status().message());
    auto ws = plan->prepare(handle.value());
    if (!ws.ok()) return InferContext::refuse(ws.status().message());
    size_t bytes = ws.value();
    if (data_ != Operand::kF32)
      bytes = aligned256(bytes) + bytes16(ctx.shape(0)) + bytes16(y) + (w_.empty() ? bytes16(ctx.shape(1)) : 0);
    ctx.set_workspace(bytes);
    return Status::OK();
  }

 private:
  // The cuDNN spec of these shapes; `why` (when given) receives the reason the GPU does not run
  // them, an empty spec then.
  StatusOr<ConvSpec> spec_of(const Shape& x, const Shape& w, std::string* why) const {
    const Shape xn = nhwc_ && x.rank() == 4 ? Shape{x[0], x[3], x[1], x[2]} : x;
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_geometry(win_, xn, w, &g));
    auto refuse = [&](const std::string& r) -> StatusOr<ConvSpec> {
      if (why)
        *why = r;
      else
        return Internal(r);
      return ConvSpec();
    };
    if (g.sp > 2) return refuse("3-D convolutions run on the CPU");
    for (int i = 0; i < 3; ++i)
      if (g.pb[i] != g.pe[i]) return refuse("asymmetric padding runs on the CPU");
    ConvSpec s;
    s.nhwc = nhwc_;
    s.n = g.N, s.c = g.C, s.m = g.M, s.groups = g.group;
    s.h = g.in[1], s.w = g.in[2], s.kh = g.k[1], s.kw = g.k[2];
    s.pad_h = g.pb[1], s.pad_w = g.pb[2], s.stride_h = g.s[1], s.stride_w = g.s[2];
    s.dil_h = g.d[1], s.dil_w = g.d[2];
    s.tf32 = tf32_;
    s.data = data_;
    return s;
  }

  StatusOr<std::shared_ptr<ConvPlan>> plan_for(const ConvSpec& s) const {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& p : plans_)
      if (p->spec() == s) return p;
    MS_ASSIGN_OR_RETURN(auto p, ConvPlan::create(s));
    if (plans_.size() >= 64) plans_.erase(plans_.begin());
    plans_.push_back(p);
    return p;
  }

  bool nhwc_;
  WindowAttrs win_;
  FusedActivation act_;
  bool residual_;
  FusedActivation after_;
  DeviceWeights w_;  // NhwcConv: W as [M, kh, kw, C/g]; 16-bit data: W converted
  bool tf32_;
  Operand data_;
  mutable std::mutex mu_;
  mutable std::vector<std::shared_ptr<ConvPlan>> plans_;
};

}  // namespace

std::vector<float> nhwc_filter(const float* w, int64_t M, int64_t Cg, int64_t KH, int64_t KW) {
  std::vector<float> packed(static_cast<size_t>(M * Cg * KH * KW));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t i = 0; i < KH; ++i)
        for (int64_t j = 0; j < KW; ++j) packed[((m * KH + i) * KW + j) * Cg + c] = w[((m * Cg + c) * KH + i) * KW + j];
  return packed;
}

StatusOr<KernelPtr> create_gpu_conv(const Node& node, const KernelInit& init, KernelPtr cpu, const GpuOptions& opts) {
  const bool nhwc = node.op_type == "NhwcConv";
  MS_ASSIGN_OR_RETURN(WindowAttrs win, parse_window_attrs(node));
  const Operand data = opts.operand();
  const Tensor* w = init.constant(node, 1);
  const bool constant = w && w->dtype() == DType::kFloat32 && w->rank() >= 3 && w->raw() && w->numel() > 0;
  if (nhwc && (!constant || w->rank() != 4))
    return Unsupported("NhwcConv on the GPU needs constant float32 [M, C/g, kh, kw] weights");
  std::vector<float> packed;
  if (nhwc) packed = nhwc_filter(w->data<float>(), w->dim(0), w->dim(1), w->dim(2), w->dim(3));
  DeviceWeights own;
  if (data != Operand::kF32 && constant) {
    own = DeviceWeights(nhwc ? to_bits16(packed.data(), int64_t(packed.size()), data)
                             : to_bits16(w->data<float>(), w->numel(), data));
  } else if (nhwc) {
    own = DeviceWeights(packed);
  }
  const bool residual = FusedActivation::has_residual(node);
  return KernelPtr(new ConvKernel(std::move(cpu), nhwc, std::move(win), FusedActivation::of(node), residual,
                                  FusedActivation::of(node, FusedActivation::kAfterActivationAttr), std::move(own),
                                  opts.precision == Precision::kTf32, data));
}

}  // namespace mserve::gpu
