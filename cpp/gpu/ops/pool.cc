// The pools on the GPU, float32: MaxPool and AveragePool (NCHW, 1-D to 3-D, strides, pads and
// auto_pad, dilations, ceil_mode, count_include_pad, each from the opset the CPU honours it),
// GlobalAveragePool, GlobalMaxPool, and com.mserve NhwcMaxPool / NhwcAveragePool (2-D, channels
// last). The geometry is the CPU's pool_geometry; MaxPool's Indices output stays on the CPU.
#include "gpu/ops/pool.h"

#include <string>

#include "core/kernels/conv_geometry.h"
#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"

namespace mserve::gpu {

PoolGeo pool_geo(const ConvGeometry& g, bool include_pad, bool nhwc) {
  PoolGeo p;
  p.planes = nhwc ? g.N : g.N * g.C;
  p.channels = nhwc ? g.C : 1;
  for (int i = 0; i < 3; ++i) {
    p.in[i] = g.in[i], p.out[i] = g.out[i], p.k[i] = g.k[i], p.s[i] = g.s[i], p.d[i] = g.d[i];
    p.pb[i] = g.pb[i], p.pe[i] = g.pe[i];
  }
  p.include_pad = include_pad;
  return p;
}

namespace {

struct PoolAttrs {
  WindowAttrs win;
  bool ceil_mode = false;
  bool include_pad = false;
};

class PoolKernel final : public GpuKernel {
 public:
  PoolKernel(KernelPtr cpu, PoolAttrs a, bool max, bool nhwc)
      : GpuKernel(std::move(cpu)), a_(std::move(a)), max_(max), nhwc_(nhwc) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Shape& s = x.shape();
    ConvGeometry g;
    MS_RETURN_IF_ERROR(pool_geometry(a_.win, nhwc_ ? Shape{s[0], s[3], s[1], s[2]} : s, a_.ceil_mode, &g));
    return cuda_status(launch_pool(pool_geo(g, a_.include_pad, nhwc_), max_, nhwc_, x.data<float>(),
                                   ctx.output(0).data<float>(), cuda_context(ctx).stream()),
                       "pool kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_float32(ctx); }

 private:
  PoolAttrs a_;
  bool max_, nhwc_;
};

class GlobalPoolKernel final : public GpuKernel {
 public:
  GlobalPoolKernel(KernelPtr cpu, bool max) : GpuKernel(std::move(cpu)), max_(max) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Shape& s = x.shape();
    return cuda_status(launch_global_pool(max_, s[0] * s[1], s.prod(2, s.rank()), x.data<float>(),
                                          ctx.output(0).data<float>(), cuda_context(ctx).stream()),
                       "global pool kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_float32(ctx); }

 private:
  bool max_;
};

// The CPU's reading of the attributes: ceil_mode and dilations only from the opsets that have
// them (`ceil`, `dil`).
StatusOr<PoolAttrs> parse(const Node& n, bool ceil, bool dil) {
  PoolAttrs a;
  MS_ASSIGN_OR_RETURN(a.win, parse_window_attrs(n));
  if (!dil) a.win.dilations.clear();
  if (ceil) a.ceil_mode = n.attr_int("ceil_mode", 0) != 0;
  const size_t sp = a.win.kernel_shape.size();
  if (sp == 0) return InvalidArgument("the kernel_shape attribute is required");
  if (sp > 3) return Unsupported("the GPU pools run 1-D, 2-D and 3-D windows");
  MS_RETURN_IF_ERROR(check_window_lengths(a.win, sp));
  return a;
}

}  // namespace

StatusOr<KernelPtr> create_gpu_pool(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions&) {
  const std::string& op = node.op_type;
  if (op == "GlobalAveragePool" || op == "GlobalMaxPool")
    return KernelPtr(new GlobalPoolKernel(std::move(cpu), op == "GlobalMaxPool"));
  const bool max = op == "MaxPool" || op == "NhwcMaxPool";
  const bool nhwc = op == "NhwcMaxPool" || op == "NhwcAveragePool";
  if (!max && op != "AveragePool" && op != "NhwcAveragePool") return Unsupported(op + " is not a GPU pool");
  if (op == "MaxPool" && node.outputs.size() > 1 && node.outputs[1] != kNoValue)
    return Unsupported("the GPU MaxPool does not write the Indices output");
  // Nhwc pools carry the opset of the node they replace.
  const int64_t opset = nhwc ? node.attr_int("mserve_source_opset", max ? 12 : 19) : node.opset;
  MS_ASSIGN_OR_RETURN(PoolAttrs a, parse(node, opset >= 10, max ? opset >= 10 : opset >= 19));
  if (nhwc && a.win.kernel_shape.size() != 2) return InvalidArgument(op + " is 2-D");
  if (!max) a.include_pad = node.attr_int("count_include_pad", 0) != 0;
  return KernelPtr(new PoolKernel(std::move(cpu), std::move(a), max, nhwc));
}

}  // namespace mserve::gpu
