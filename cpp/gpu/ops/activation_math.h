// One fused activation of the table (core/kernels/activation_table.h) on a float, as the GPU's
// kernels apply it: the stand-alone activations (activation.cu) and the convolution epilogue
// (conv_math.h). Compiled by nvcc and g++ (MS_HD). The kind is uniform across a launch, so the
// switch costs one branch per warp, not divergence.
#pragma once
#include "core/kernels/activation_table.h"
#include "core/kernels/fused_activation.h"
#include "gpu/ops/host_device.h"

namespace mserve::gpu {

MS_HD float activate(FusedActivation::Kind k, float x, float a, float b) {
  switch (k) {
#define MSERVE_GPU_ACTIVATION_CASE(KIND, ...) \
  case FusedActivation::Kind::k##KIND: return activation_math::KIND<float>(x, a, b);
    MSERVE_ACTIVATIONS(MSERVE_GPU_ACTIVATION_CASE)
#undef MSERVE_GPU_ACTIVATION_CASE
    case FusedActivation::Kind::kNone: break;
  }
  return x;
}

}  // namespace mserve::gpu
