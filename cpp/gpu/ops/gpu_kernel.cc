#include "gpu/ops/gpu_kernel.h"

#include <string>

namespace mserve::gpu {

Status accept_float32(const InferContext& ctx) {
  for (int i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i) && ctx.dtype(i) != DType::kFloat32)
      return InferContext::refuse(std::string("the GPU kernel takes float32, input ") + std::to_string(i) + " is " +
                                  dtype_name(ctx.dtype(i)));
  for (int o = 0; o < ctx.num_outputs(); ++o)
    if (ctx.node().outputs[o] != kNoValue && ctx.output(o).dtype != DType::kFloat32)
      return InferContext::refuse(std::string("the GPU kernel writes float32, output ") + std::to_string(o) + " is " +
                                  dtype_name(ctx.output(o).dtype));
  return Status::OK();
}

}  // namespace mserve::gpu
