// Softmax on the GPU: float32, any axis (opset 13 semantics; older opsets' flattened rows are
// rewritten into them by the importer, onnx/normalize.h), the rows of ops/rows_math.h.
#include "gpu/ops/softmax.h"

#include <string>

#include "core/kernels/common.h"
#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"

namespace mserve::gpu {
namespace {

class SoftmaxKernel final : public GpuKernel {
 public:
  SoftmaxKernel(KernelPtr cpu, int64_t axis) : GpuKernel(std::move(cpu)), axis_(axis) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Shape& s = x.shape();
    MS_ASSIGN_OR_RETURN(int a, normalize_axis(axis_, s.rank()));
    return cuda_status(launch_softmax(x.data<float>(), ctx.output(0).data<float>(), s.prod(0, a), s[a],
                                      s.prod(a + 1, s.rank()), cuda_context(ctx).stream()),
                       "softmax kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_float32(ctx); }

 private:
  int64_t axis_;
};

}  // namespace

StatusOr<KernelPtr> create_gpu_softmax(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions&) {
  if (node.op_type != "Softmax") return Unsupported(node.op_type + " has no GPU kernel");
  // The CPU kernel takes every Softmax as opset 13 does; an older node here did not come through
  // the importer's rewrite, and its flattened-rows meaning is not this kernel's.
  if (node.opset < 13)
    return Unsupported("Softmax of opset " + std::to_string(node.opset) +
                       " (flattened rows) runs on the GPU only as rewritten by the importer");
  return KernelPtr(new SoftmaxKernel(std::move(cpu), node.attr_int("axis", -1)));
}

}  // namespace mserve::gpu
