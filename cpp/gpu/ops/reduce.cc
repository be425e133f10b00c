// ReduceSum, ReduceMean, ReduceMax and ReduceMin on the GPU: float32, the outputs of
// ops/rows_math.h (sums in double, as the CPU's; Max / Min propagate NaN). The axes come from
// input 1 (the importer moves the older opsets' attribute there), read on the host; keepdims only
// shapes the output (the CPU kernel infers it), noop_with_empty_axes as the CPU takes it.
#include "gpu/ops/reduce.h"

#include <string>

#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"

namespace mserve::gpu {
namespace {

static_assert(rows::kMaxRank == Shape::kMaxRank, "a reduce plan holds every dim of a tensor");

class ReduceKernel final : public GpuKernel {
 public:
  ReduceKernel(KernelPtr cpu, rows::ReduceKind kind, bool noop) : GpuKernel(std::move(cpu)), kind_(kind), noop_(noop) {}

  bool host_input(int i) const override { return i == 1; }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_ASSIGN_OR_RETURN(uint32_t mask, axes_mask(ctx.has_input(1) ? &ctx.input(1) : nullptr, x.rank()));
    const rows::ReducePlan p = rows::make_reduce_plan(x.shape().begin(), x.rank(), mask);
    return cuda_status(
        launch_reduce(kind_, x.data<float>(), ctx.output(0).data<float>(), p, cuda_context(ctx).stream()),
        "reduce kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override {
    if (ctx.dtype(0) != DType::kFloat32)
      return InferContext::refuse(std::string("the GPU kernel takes float32, input 0 is ") + dtype_name(ctx.dtype(0)));
    if (ctx.shape(0).rank() > rows::kMaxRank)
      return InferContext::refuse("the GPU kernel reduces tensors of rank up to " + std::to_string(rows::kMaxRank));
    return Status::OK();
  }

 private:
  // Bit d set when axis d is reduced; `axes` is input 1 on the host (null when omitted).
  StatusOr<uint32_t> axes_mask(const Tensor* axes, int rank) const {
    const uint32_t all = rank >= 32 ? ~0u : ((1u << rank) - 1u);
    if (!axes || axes->numel() == 0) return noop_ ? 0u : all;
    if (axes->dtype() != DType::kInt64 && axes->dtype() != DType::kInt32)
      return InvalidArgument("axes must be an int64 tensor");
    uint32_t mask = 0;
    for (int64_t i = 0; i < axes->numel(); ++i) {
      const int64_t a = axes->int_at(i);
      if (a < -rank || a >= rank)
        return InvalidArgument("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
      mask |= 1u << (a < 0 ? a + rank : a);
    }
    return mask;
  }

  rows::ReduceKind kind_;
  bool noop_;
};

}  // namespace

StatusOr<KernelPtr> create_gpu_reduce(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions&) {
  rows::ReduceKind kind;
  if (node.op_type == "ReduceSum")
    kind = rows::ReduceKind::kSum;
  else if (node.op_type == "ReduceMean")
    kind = rows::ReduceKind::kMean;
  else if (node.op_type == "ReduceMax")
    kind = rows::ReduceKind::kMax;
  else if (node.op_type == "ReduceMin")
    kind = rows::ReduceKind::kMin;
  else
    return Unsupported(node.op_type + " has no GPU kernel");
  // The CPU kernel reads the axes from input 1 only; an attribute left on the node means it did
  // not come through the importer, and the two would disagree on what is reduced.
  if (node.attr("axes")) return Unsupported("axes as an attribute (the importer moves them to input 1)");
  return KernelPtr(new ReduceKernel(std::move(cpu), kind, node.attr_int("noop_with_empty_axes", 0) != 0));
}

}  // namespace mserve::gpu
