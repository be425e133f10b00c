// com.mserve.MultiHeadAttention on the GPU (passes/fuse_attention.cc makes it): float32 Q / K / V,
// layouts "bhsd" and "bshd", a float (added) or bool (true attends) mask broadcasting to
// [B, H, Lq, Lk]. Runs S = scale * Q K^T (cuBLASLt, exact fp32), the masked softmax over S in the
// workspace (a fully masked row gives zeros, as the CPU's fused kernel), then Y = S V. Refused:
// K / V with fewer heads than Q, past key / value inputs, outputs beyond Y, empty dims.
// Head sizes up to 128 with up to 512 keys take the fused kernel instead (flash_attention.h):
// one pass, no workspace; in precision fp16 / bf16 its tensor-core form (flash_tc.cu);
// GpuOptions::fused_attention = false keeps them on the products (TF32 under those precisions).
#include "gpu/ops/attention.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/flash_attention.h"
#include "gpu/ops/gpu_kernel.h"

namespace mserve::gpu {

MhaMask mha_mask_strides(const Shape& m) {
  int64_t md[4] = {1, 1, 1, 1};
  for (int i = 0; i < m.rank() && i < 4; ++i) md[4 - m.rank() + i] = m[i];
  MhaMask k;
  k.sj = md[3] == 1 ? 0 : 1;
  k.si = md[2] == 1 ? 0 : md[3];
  k.sh = md[1] == 1 ? 0 : md[2] * md[3];
  k.sb = md[0] == 1 ? 0 : md[1] * md[2] * md[3];
  return k;
}

StatusOr<MhaGeometry> mha_geometry(const Shape& q, const Shape& k, const Shape& v, bool bshd, float scale) {
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
    return InferContext::refuse("Q, K and V must be 4-D, got " + q.str() + ", " + k.str() + ", " + v.str());
  const int h = bshd ? 2 : 1, l = bshd ? 1 : 2;
  MhaGeometry g;
  g.bshd = bshd;
  g.B = q[0], g.H = q[h], g.Lq = q[l], g.D = q[3], g.Lk = k[l], g.Dv = v[3];
  if (k[0] != g.B || v[0] != g.B || k[3] != g.D || v[l] != g.Lk || v[h] != k[h])
    return InvalidArgument("Q " + q.str() + ", K " + k.str() + " and V " + v.str() + " do not match");
  if (k[h] != g.H)
    return InferContext::refuse("the GPU kernel needs as many K / V heads as Q heads, got " + std::to_string(k[h]) +
                                " and " + std::to_string(g.H));
  if (g.B < 1 || g.H < 1 || g.Lq < 1 || g.Lk < 1 || g.D < 1 || g.Dv < 1)
    return InferContext::refuse("the GPU kernel does not run empty attention: Q " + q.str() + ", K " + k.str() +
                                ", V " + v.str());
  // Scores [B, H, Lq, Lk]: matrix (b, h) at (b * H + h) * Lq * Lk in both layouts.
  GemmShape& qk = g.qk;
  qk.m = g.Lq, qk.n = g.Lk, qk.k = g.D;
  qk.trans_b = true;
  qk.alpha = scale;
  qk.stride_c = g.Lq * g.Lk;
  qk.ldc = g.Lk;
  GemmShape& pv = g.pv;
  pv.m = g.Lq, pv.n = g.Dv, pv.k = g.Lk;
  pv.stride_a = g.Lq * g.Lk;
  pv.lda = g.Lk;
  if (bshd) {
    // Head h of batch entry b starts at h * D within the rows of b; rows are H * D apart.
    g.runs = g.B;
    qk.batch = pv.batch = g.H;
    qk.stride_a = g.D, qk.lda = g.H * g.D;
    qk.stride_b = g.D, qk.ldb = g.H * g.D;
    pv.stride_b = g.Dv, pv.ldb = g.H * g.Dv;
    pv.stride_c = g.Dv, pv.ldc = g.H * g.Dv;
    g.q_run = g.Lq * g.H * g.D;
    g.k_run = g.Lk * g.H * g.D;
    g.v_run = g.Lk * g.H * g.Dv;
    g.y_run = g.Lq * g.H * g.Dv;
    g.s_run = g.H * g.Lq * g.Lk;
  } else {
    g.runs = 1;
    qk.batch = pv.batch = g.B * g.H;
    qk.stride_a = g.Lq * g.D, qk.lda = g.D;
    qk.stride_b = g.Lk * g.D, qk.ldb = g.D;
    pv.stride_b = g.Lk * g.Dv, pv.ldb = g.Dv;
    pv.stride_c = g.Lq * g.Dv, pv.ldc = g.Dv;
  }
  g.workspace_bytes = static_cast<size_t>(g.B * g.H * g.Lq * g.Lk) * sizeof(float);
  return g;
}

namespace {

class MhaKernel final : public GpuKernel {
 public:
  // operand: the fused kernel's (kF32, or 16 bits on the tensor cores).
  MhaKernel(KernelPtr cpu, bool bshd, float scale, bool tf32, bool fused, Operand operand)
      : GpuKernel(std::move(cpu)), bshd_(bshd), scale_(scale), tf32_(tf32), fused_(fused), operand_(operand) {}

  Status compute(const ComputeContext& ctx) const override {
    MS_ASSIGN_OR_RETURN(MhaGeometry g, geometry(ctx.input(0).shape(), ctx.input(1).shape(), ctx.input(2).shape()));
    const MhaMask mask = mask_of(ctx);
    if (fused(g)) return compute_fused(ctx, g, mask);
    std::shared_ptr<const Plans> plans = find(g);
    if (!plans) return Internal("MultiHeadAttention: no matrix product planned for " + g.qk.str());
    CudaContext& cuda = cuda_context(ctx);
    const float* q = ctx.input(0).data<float>();
    const float* k = ctx.input(1).data<float>();
    const float* v = ctx.input(2).data<float>();
    float* y = ctx.output(0).data<float>();
    float* s = static_cast<float*>(ctx.workspace());
    for (int64_t r = 0; r < g.runs; ++r)
      MS_RETURN_IF_ERROR(plans->qk->run(cuda, q + r * g.q_run, k + r * g.k_run, nullptr, s + r * g.s_run));
    MS_CUDA_RETURN_IF_ERROR(launch_attention_softmax(s, g.B, g.H, g.Lq, g.Lk, mask, cuda.stream()),
                            "attention softmax kernel");
    for (int64_t r = 0; r < g.runs; ++r)
      MS_RETURN_IF_ERROR(plans->pv->run(cuda, s + r * g.s_run, v + r * g.v_run, nullptr, y + r * g.y_run));
    return Status::OK();
  }

 protected:
  Status accept(InferContext& ctx) const override {
    for (int i = 0; i < 3; ++i)
      if (ctx.dtype(i) != DType::kFloat32)
        return InferContext::refuse("the GPU kernel takes float32 Q, K and V, input " + std::to_string(i) + " is " +
                                    dtype_name(ctx.dtype(i)));
    if (ctx.has_input(3) && ctx.dtype(3) != DType::kFloat32 && ctx.dtype(3) != DType::kBool)
      return InferContext::refuse(std::string("the GPU kernel takes a float32 or bool mask, not ") +
                                  dtype_name(ctx.dtype(3)));
    for (int i = 4; i < ctx.num_inputs(); ++i)
      if (ctx.has_input(i))
        return InferContext::refuse("the GPU kernel has no inputs past the mask (input " + std::to_string(i) +
                                    ": past key / value)");
    for (int o = 1; o < ctx.num_outputs(); ++o)
      if (ctx.node().outputs[o] != kNoValue)
        return InferContext::refuse("the GPU kernel writes only Y, not output " + std::to_string(o));
    MS_ASSIGN_OR_RETURN(MhaGeometry g, geometry(ctx.shape(0), ctx.shape(1), ctx.shape(2)));
    if (fused(g)) {
      ctx.set_workspace(0);  // the scores stay on chip
      return Status::OK();
    }
    if (!find(g)) {
      auto qk = GemmPlan::create(g.qk);
      if (!qk.ok()) return InferContext::refuse("Q K^T: " + qk.status().message());
      auto pv = GemmPlan::create(g.pv);
      if (!pv.ok()) return InferContext::refuse("S V: " + pv.status().message());
      auto p = std::make_shared<Plans>();
      p->qk_shape = g.qk;
      p->pv_shape = g.pv;
      p->qk = std::move(qk).value();
      p->pv = std::move(pv).value();
      std::lock_guard<std::mutex> lk(mu_);
      plans_.push_back(std::move(p));
    }
    ctx.set_workspace(g.workspace_bytes);
    return Status::OK();
  }

 private:
  struct Plans {
    GemmShape qk_shape, pv_shape;  // as asked for (the plans hold them with defaults filled in)
    std::shared_ptr<GemmPlan> qk, pv;
  };

  // The plans made at plan time for g's shapes (null when infer never saw them).
  std::shared_ptr<const Plans> find(const MhaGeometry& g) const {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& p : plans_)
      if (p->qk_shape == g.qk && p->pv_shape == g.pv) return p;
    return nullptr;
  }

  // The geometry of these shapes, its products in TF32 when the backend was asked for it.
  StatusOr<MhaGeometry> geometry(const Shape& q, const Shape& k, const Shape& v) const {
    MS_ASSIGN_OR_RETURN(MhaGeometry g, mha_geometry(q, k, v, bshd_, scale_));
    g.qk.tf32 = g.pv.tf32 = tf32_;
    return g;
  }

  // ---- the fused kernel (flash_attention.cu): chosen per shape, the products its fallback ----

  // Every mask form mha_mask_strides describes (float or bool, any broadcast) is the fused
  // kernel's too, so the sizes alone decide.
  bool fused(const MhaGeometry& g) const { return fused_ && flash::flash_fits(g.D, g.Dv, g.Lk); }

  Status compute_fused(const ComputeContext& ctx, const MhaGeometry& g, const MhaMask& mask) const {
    FlashParams p;
    p.q = ctx.input(0).data<float>();
    p.k = ctx.input(1).data<float>();
    p.v = ctx.input(2).data<float>();
    p.y = ctx.output(0).data<float>();
    p.mask.add = mask.add;
    p.mask.keep = mask.keep;
    p.mask.sb = mask.sb, p.mask.sh = mask.sh, p.mask.si = mask.si, p.mask.sj = mask.sj;
    p.B = g.B, p.H = g.H, p.Lq = g.Lq, p.Lk = g.Lk;
    p.D = static_cast<int>(g.D), p.Dv = static_cast<int>(g.Dv);
    p.bshd = g.bshd;
    p.scale = scale_;
    void* stream = cuda_context(ctx).stream();
    MS_CUDA_RETURN_IF_ERROR(
        operand_ == Operand::kF32 ? launch_flash_attention(p, stream) : launch_flash_attention_tc(p, operand_, stream),
        "fused attention kernel");
    return Status::OK();
  }

  // The mask input as mask strides over the scores (both paths).
  static MhaMask mask_of(const ComputeContext& ctx) {
    MhaMask mask;
    if (ctx.has_input(3)) {
      const Tensor& m = ctx.input(3);
      mask = mha_mask_strides(m.shape());
      if (m.dtype() == DType::kBool)
        mask.keep = static_cast<const unsigned char*>(m.raw());
      else
        mask.add = m.data<float>();
    }
    return mask;
  }

  bool bshd_;
  float scale_;
  bool tf32_;
  bool fused_;
  Operand operand_;
  mutable std::mutex mu_;
  mutable std::vector<std::shared_ptr<const Plans>> plans_;  // one entry per shape seen at plan time
};

}  // namespace

StatusOr<KernelPtr> create_gpu_attention(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions& opts) {
  if (node.op_type != "MultiHeadAttention" || node.domain != "com.mserve")
    return Unsupported(node.op_type + " has no GPU kernel");
  return KernelPtr(new MhaKernel(std::move(cpu), node.attr_string("layout", "bhsd") == "bshd",
                                 node.attr_float("scale", 1.0f), opts.tf32(), opts.fused_attention, opts.operand()));
}

}  // namespace mserve::gpu
