// MatMul, Gemm and com.mserve FusedMatMul on cuBLASLt: float32 (exact fp32 compute, or TF32), or
// with 16-bit operands (precision fp16 / bf16: constant weights converted once at load and kept
// on the GPU by the kernel, the other operand converted per run into the kernel's workspace;
// float32 accumulation and output). The bias and ReLU in cuBLASLt's epilogue, any other fused
// activation (the erf GELU of BERT among them) by the activation kernel right after, in place.
#include "gpu/ops/matmul.h"

#include <cuda_runtime.h>

#include <mutex>
#include <optional>
#include <vector>

#include "core/kernels/fused_activation.h"
#include "gpu/cuda_status.h"
#include "gpu/ops/activation.h"
#include "gpu/ops/conv.h"
#include "gpu/ops/convert.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"

namespace mserve::gpu {

StatusOr<GemmShape> matmul_gemm_shape(const Shape& a0, const Shape& b0, bool ta, bool tb) {
  if (a0.rank() < 1 || b0.rank() < 1) return InvalidArgument("MatMul operands must have rank >= 1");
  Shape a = a0, b = b0;
  if (a.rank() == 1) a.insert(0, 1);
  if (b.rank() == 1) b.push_back(1);
  const int ra = a.rank(), rb = b.rank();
  GemmShape g;
  g.trans_a = ta && a0.rank() >= 2;
  g.trans_b = tb && b0.rank() >= 2;
  g.m = g.trans_a ? a[ra - 1] : a[ra - 2];
  g.k = g.trans_a ? a[ra - 2] : a[ra - 1];
  g.n = g.trans_b ? b[rb - 2] : b[rb - 1];
  const int64_t kb = g.trans_b ? b[rb - 1] : b[rb - 2];
  if (kb != g.k) return InvalidArgument("inner dimensions differ: " + a0.str() + " x " + b0.str());
  const Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  const int64_t na = ba.numel(), nb = bb.numel();
  if (nb == 1 && !g.trans_a) {
    g.m *= na;  // one B: A's batches are more rows of one product
  } else if (na == 1 || nb == 1 || ba == bb) {
    g.batch = std::max(na, nb);
    g.stride_a = na == 1 ? 0 : g.m * g.k;
    g.stride_b = nb == 1 ? 0 : g.k * g.n;
    g.stride_c = g.m * g.n;
  } else {
    return Unsupported("batch dimensions " + ba.str() + " and " + bb.str() +
                       " broadcast against each other; the GPU runs equal batches or one shared matrix");
  }
  return g;
}

namespace {

// The plans of the shapes seen at plan time, found again by shape at run time.
class PlanCache {
 public:
  StatusOr<std::shared_ptr<GemmPlan>> get(const GemmShape& s) const {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& p : plans_)
      if (p->shape() == s) return p;
    MS_ASSIGN_OR_RETURN(auto p, GemmPlan::create(s));
    if (plans_.size() >= 64) plans_.erase(plans_.begin());  // bounded like the session's plan cache
    plans_.push_back(p);
    return p;
  }

 private:
  mutable std::mutex mu_;
  mutable std::vector<std::shared_ptr<GemmPlan>> plans_;
};

class ProductKernel final : public GpuKernel {
 public:
  // gemm: ONNX Gemm (2-D, C with beta); else MatMul / FusedMatMul (bias: input 2, a constant [N]).
  // b16: B (a constant) already in the 16-bit operand type, or empty.
  ProductKernel(KernelPtr cpu, bool gemm, bool ta, bool tb, float alpha, float beta, FusedActivation act, bool tf32,
                Operand operands, const std::vector<uint16_t>& b16)
      : GpuKernel(std::move(cpu)),
        gemm_(gemm),
        ta_(ta),
        tb_(tb),
        alpha_(alpha),
        beta_(beta),
        act_(act),
        tf32_(tf32),
        operands_(operands),
        b16_(b16) {}

  // B converted at load is read from the kernel's own copy: the planner need not upload it.
  bool host_input(int i) const override { return i == 1 && !b16_.empty(); }

  Status compute(const ComputeContext& ctx) const override {
    Tensor& y = ctx.output(0);
    if (y.numel() == 0) return Status::OK();
    CudaContext& cuda = cuda_context(ctx);
    MS_ASSIGN_OR_RETURN(GemmShape s, shape_of(ctx.input(0).shape(), ctx.input(1).shape(), c_shape(ctx)));
    MS_ASSIGN_OR_RETURN(auto plan, plans_.get(s));
    const float* bias = nullptr;
    if (has_c(ctx)) {
      const Tensor& c = ctx.input(2);
      if (s.epilogue == Epilogue::kBias || s.epilogue == Epilogue::kReluBias) {
        bias = c.data<float>();
      } else {  // a full [M, N] C, scaled by beta in the product
        MS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(y.raw(), c.raw(), c.nbytes(), cudaMemcpyDeviceToDevice,
                                                static_cast<cudaStream_t>(cuda.stream())),
                                "copying Gemm's C");
      }
    }
    const void* a = ctx.input(0).raw();
    const void* b = ctx.input(1).raw();
    if (operands_ != Operand::kF32) {  // the workspace: [A in 16 bits | B in 16 bits, unless held]
      Workspace16 ws(ctx.workspace());
      MS_ASSIGN_OR_RETURN(a, ws.convert(ctx.input(0), operands_, cuda.stream()));
      if (!b16_.empty()) {
        MS_ASSIGN_OR_RETURN(b, b16_.get("16-bit weights"));
      } else {
        MS_ASSIGN_OR_RETURN(b, ws.convert(ctx.input(1), operands_, cuda.stream()));
      }
    }
    MS_RETURN_IF_ERROR(plan->run(cuda, a, b, bias, y.data<float>()));
    if (s.epilogue != Epilogue::kNone && !plan->epilogue_in_product()) {  // cuBLASLt had none for these types
      ConvEpilogue e;  // row-major [.., N]: the bias by column, then the ReLU
      e.bias = bias;
      e.channels = s.n;
      e.plane = 0;
      if (s.epilogue == Epilogue::kRelu || s.epilogue == Epilogue::kReluBias) e.act = FusedActivation::Kind::kRelu;
      MS_CUDA_RETURN_IF_ERROR(launch_conv_epilogue(e, y.data<float>(), y.numel(), cuda.stream()),
                              "bias and ReLU after the product");
    }
    if (after_.kind != FusedActivation::Kind::kNone)
      MS_CUDA_RETURN_IF_ERROR(launch_activation(after_, y.data<float>(), y.data<float>(), y.numel(), cuda.stream()),
                              "activation after the product");
    return Status::OK();
  }

 protected:
  Status accept(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(accept_float32(ctx));
    if (ctx.output(0).shape.numel() == 0) return Status::OK();
    std::optional<Shape> c;
    if (ctx.has_input(2)) c = ctx.shape(2);
    auto s = shape_of(ctx.shape(0), ctx.shape(1), c);
    if (!s.ok()) return InferContext::refuse(s.status().message());
    MS_ASSIGN_OR_RETURN(auto plan, plans_.get(s.value()));  // descriptors now, not per run
    (void)plan;
    if (operands_ != Operand::kF32)
      ctx.set_workspace(bytes16(ctx.shape(0)) + (b16_.empty() ? bytes16(ctx.shape(1)) : 0));
    return Status::OK();
  }

 private:
  static bool has_c(const ComputeContext& ctx) { return ctx.has_input(2); }
  static std::optional<Shape> c_shape(const ComputeContext& ctx) {
    if (!ctx.has_input(2)) return std::nullopt;
    return ctx.input(2).shape();
  }

  // The product's GemmShape, epilogue included, or Unsupported for what the GPU does not run.
  StatusOr<GemmShape> shape_of(const Shape& a, const Shape& b, const std::optional<Shape>& c) const {
    GemmShape s;
    if (gemm_) {
      if (a.rank() != 2 || b.rank() != 2) return Unsupported("Gemm takes 2-D operands");
      MS_ASSIGN_OR_RETURN(s, matmul_gemm_shape(a, b, ta_, tb_));
    } else {
      MS_ASSIGN_OR_RETURN(s, matmul_gemm_shape(a, b, ta_, tb_));
    }
    s.alpha = alpha_;
    s.tf32 = tf32_;
    s.operands = operands_;
    const bool relu = act_.kind == FusedActivation::Kind::kRelu;
    bool bias = false;
    if (c) {
      const bool row = (c->rank() == 1 && (*c)[0] == s.n) || (c->rank() == 2 && (*c)[0] == 1 && (*c)[1] == s.n);
      const bool full = c->rank() == 2 && (*c)[0] == s.m && (*c)[1] == s.n && s.batch == 1;
      if (row && (beta_ == 1.0f || !gemm_)) {
        bias = true;
      } else if (full && gemm_) {
        s.beta = beta_;
      } else {
        return Unsupported("C of shape " + c->str() + (gemm_ ? " with beta " + std::to_string(beta_) : "") +
                           " is neither a row bias [N] nor a full [M, N] matrix");
      }
    }
    s.epilogue = bias ? (relu ? Epilogue::kReluBias : Epilogue::kBias) : (relu ? Epilogue::kRelu : Epilogue::kNone);
    return s;
  }

  bool gemm_, ta_, tb_;
  float alpha_, beta_;
  FusedActivation act_;
  bool tf32_;
  Operand operands_;
  DeviceWeights b16_;
  // What runs after the product: every fused activation but ReLU (that one is the epilogue's).
  FusedActivation after_ = act_.kind == FusedActivation::Kind::kRelu ? FusedActivation() : act_;
  PlanCache plans_;
};

}  // namespace

StatusOr<KernelPtr> create_gpu_matmul(const Node& node, const KernelInit& init, KernelPtr cpu, const GpuOptions& opts) {
  const bool gemm = node.op_type == "Gemm";
  const bool fused = node.op_type == "FusedMatMul";
  const bool ta = (gemm || fused) && node.attr_int("transA", 0) != 0;
  const bool tb = (gemm || fused) && node.attr_int("transB", 0) != 0;
  const float alpha = gemm || fused ? node.attr_float("alpha", 1.0f) : 1.0f;
  const float beta = gemm ? node.attr_float("beta", 1.0f) : 1.0f;
  const Operand operands = opts.operand();
  std::vector<uint16_t> b16;  // constant weights: converted once, here
  const Tensor* b = init.constant(node, 1);
  if (operands != Operand::kF32 && b && b->dtype() == DType::kFloat32 && b->raw() && b->numel() > 0)
    b16 = to_bits16(b->data<float>(), b->numel(), operands);
  return KernelPtr(new ProductKernel(std::move(cpu), gemm, ta, tb, alpha, beta, FusedActivation::of(node),
                                     opts.precision == Precision::kTf32, operands, b16));
}

}  // namespace mserve::gpu
