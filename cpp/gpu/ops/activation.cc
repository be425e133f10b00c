// The activation table's operators on the GPU: float32, one element-wise kernel
// (ops/activation.cu) evaluating the CPU's own expressions.
#include "gpu/ops/activation.h"
#include "core/kernels/fused_activation.h"
#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"

namespace mserve::gpu {
namespace {

class ActivationKernel final : public GpuKernel {
 public:
  ActivationKernel(KernelPtr cpu, FusedActivation act) : GpuKernel(std::move(cpu)), act_(act) {}
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    return cuda_status(
        launch_activation(act_, x.data<float>(), ctx.output(0).data<float>(), x.numel(), cuda_context(ctx).stream()),
        "activation kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_float32(ctx); }

 private:
  FusedActivation act_;
};

}  // namespace

StatusOr<KernelPtr> create_gpu_activation(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions&) {
  const FusedActivation act = FusedActivation::of_operator(node);
  if (act.kind == FusedActivation::Kind::kNone) return Unsupported(node.op_type + " has no GPU activation");
  return KernelPtr(new ActivationKernel(std::move(cpu), act));
}

}  // namespace mserve::gpu
