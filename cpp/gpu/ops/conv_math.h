// The convolution epilogue, element by element: what the Conv / NhwcConv kernels add to cuDNN's
// plain convolution (bias, fused activation, residual, activation after the residual), written
// once for the device and for the host tests.
#pragma once
#include <cstdint>

#include "core/kernels/fused_activation.h"
#include "gpu/ops/activation_math.h"

namespace mserve::gpu {

struct ConvEpilogue {
  const float* bias = nullptr;      // [M] or null
  const float* residual = nullptr;  // same shape as y, or null
  int64_t channels = 1;             // M
  int64_t plane = 1;                // NCHW: elements per channel plane; NHWC: 0 (channel innermost)
  FusedActivation::Kind act = FusedActivation::Kind::kNone, after = FusedActivation::Kind::kNone;
  float act_a = 0, act_b = 0, after_a = 0, after_b = 0;
};

// y = after(act(y + bias[channel]) + residual), the order of NhwcConv's fused attributes.
MS_HD float conv_epilogue(const ConvEpilogue& e, int64_t i, float y) {
  if (e.bias) y += e.bias[e.plane ? (i / e.plane) % e.channels : i % e.channels];
  y = activate(e.act, y, e.act_a, e.act_b);
  if (e.residual) y += e.residual[i];
  return activate(e.after, y, e.after_a, e.after_b);
}

}  // namespace mserve::gpu
