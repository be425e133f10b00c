// The convolution epilogue, element by element: what the Conv / NhwcConv kernels add to cuDNN's
// plain convolution (bias, fused activation, residual, activation after the residual), written
// once for the device and for the host tests.
#pragma once
#include <cstdint>

#include "core/kernels/activation_table.h"
#include "core/kernels/fused_activation.h"
#include "gpu/ops/host_device.h"

namespace mserve::gpu {

// One fused activation of the table evaluated on a float (kind kNone: x).
MS_HD float activate(FusedActivation::Kind k, float x, float a, float b) {
  switch (k) {
#define MSERVE_EPILOGUE_CASE(KIND, ...) \
  case FusedActivation::Kind::k##KIND: return activation_math::KIND<float>(x, a, b);
    MSERVE_ACTIVATIONS(MSERVE_EPILOGUE_CASE)
#undef MSERVE_EPILOGUE_CASE
    case FusedActivation::Kind::kNone: break;
  }
  return x;
}

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
