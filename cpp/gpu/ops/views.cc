// The views (Reshape, Flatten, Squeeze, Unsqueeze, Identity) on the GPU. Their shape and axes
// inputs are read on the host by the CPU kernel's infer, so the planner keeps them there.
#include "gpu/ops/views.h"

#include <cuda_runtime.h>

#include <string>

#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"

namespace mserve::gpu {

int copy_device_bytes(void* dst, const void* src, size_t bytes, void* stream) {
  if (dst == src || bytes == 0) return cudaSuccess;
  return static_cast<int>(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)));
}

namespace {

bool movable(DType t) {
  if (t == DType::kString || t == DType::kUndefined) return false;
  const size_t s = dtype_size(t);
  return s == 1 || s == 2 || s == 4 || s == 8;
}

}  // namespace

Status accept_movable(const InferContext& ctx, int input) {
  if (ctx.has_input(input) && !movable(ctx.dtype(input)))
    return InferContext::refuse(std::string("the GPU kernel moves numeric elements, input ") + std::to_string(input) +
                                " is " + dtype_name(ctx.dtype(input)));
  if (ctx.num_outputs() > 0 && ctx.node().outputs[0] != kNoValue && !movable(ctx.output(0).dtype))
    return InferContext::refuse(std::string("the GPU kernel moves numeric elements, output 0 is ") +
                                dtype_name(ctx.output(0).dtype));
  return Status::OK();
}

namespace {

class ViewKernel final : public GpuKernel {
 public:
  // params: the node has a shape or axes input 1 (Reshape, Squeeze, Unsqueeze).
  ViewKernel(KernelPtr cpu, bool params) : GpuKernel(std::move(cpu)), params_(params) {}
  bool host_input(int i) const override { return params_ && i == 1; }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (in.nbytes() != out.nbytes()) return Internal("view size mismatch");
    return cuda_status(copy_device_bytes(out.raw(), in.raw(), in.nbytes(), cuda_context(ctx).stream()),
                       "copying a view");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_movable(ctx); }

 private:
  bool params_;
};

}  // namespace

StatusOr<KernelPtr> create_gpu_views(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions&) {
  const std::string& op = node.op_type;
  if (op != "Reshape" && op != "Flatten" && op != "Squeeze" && op != "Unsqueeze" && op != "Identity")
    return Unsupported(op + " is not a GPU view");
  const bool params = op == "Reshape" || op == "Squeeze" || op == "Unsqueeze";
  return KernelPtr(new ViewKernel(std::move(cpu), params));
}

}  // namespace mserve::gpu
