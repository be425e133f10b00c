// Gather on the GPU: any axis (negative too), int32 or int64 indices, data of any dtype of 1, 2,
// 4 or 8 bytes (only bytes move). Indices live on the device, so they are checked there: an
// index outside [-n, n) raises kIndexOutOfRange in the context's flag, which the run reports as
// InvalidArgument once the stream synchronizes (the CPU kernel's answer, found later).
#include "gpu/ops/gather.h"

#include <cstdint>
#include <string>

#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"
#include "gpu/ops/views.h"

namespace mserve::gpu {
namespace {

class GatherKernel final : public GpuKernel {
 public:
  GatherKernel(KernelPtr cpu, int64_t axis) : GpuKernel(std::move(cpu)), axis_(axis) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& data = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    Tensor& out = ctx.output(0);
    const int r = data.rank();
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + r : axis_);
    if (axis < 0 || axis >= r) return InvalidArgument("axis " + std::to_string(axis_) + " is out of range");
    const int64_t block = data.shape().prod(axis + 1, r) * static_cast<int64_t>(dtype_size(data.dtype()));
    const int word =
        gather_word(block, reinterpret_cast<uintptr_t>(data.raw()), reinterpret_cast<uintptr_t>(out.raw()));
    GatherGeo g;
    g.outer = data.shape().prod(0, axis);
    g.size = data.dim(axis);
    g.nidx = indices.numel();
    g.inner = block / word;
    const int index_bytes = indices.dtype() == DType::kInt64 ? 8 : 4;
    CudaContext& cc = cuda_context(ctx);
    return cuda_status(launch_gather(g, word, data.raw(), indices.raw(), index_bytes, out.raw(), cc.error_flag(),
                                     kIndexOutOfRange, cc.stream()),
                       "Gather kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override {
    // The CPU's infer has checked that the indices are int32 or int64.
    return accept_movable(ctx);
  }

 private:
  int64_t axis_;
};

}  // namespace

StatusOr<KernelPtr> create_gpu_gather(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions&) {
  if (node.op_type != "Gather") return Unsupported(node.op_type + " is not in the GPU gather family");
  return KernelPtr(new GatherKernel(std::move(cpu), node.attr_int("axis", 0)));
}

}  // namespace mserve::gpu
