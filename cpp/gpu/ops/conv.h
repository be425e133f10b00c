// Launches of the convolution epilogue (ops/conv_math.h): over y in place, or from cuDNN's 16-bit
// output into y. No CUDA headers.
#pragma once
#include <cstdint>
#include <vector>

#include "gpu/ops/conv_math.h"
#include "gpu/options.h"

namespace mserve::gpu {

// Returns the launch's cudaError_t as an int.
int launch_conv_epilogue(const ConvEpilogue& e, float* y, int64_t n, void* stream);
// y[i] = conv_epilogue(e, i, src[i] widened from the 16-bit type t).
int launch_conv_epilogue16(const ConvEpilogue& e, const uint16_t* src, Operand t, float* y, int64_t n, void* stream);

// ONNX's [M, C/g, kh, kw] filter in the [M, kh, kw, C/g] order cuDNN takes with NHWC data.
std::vector<float> nhwc_filter(const float* w, int64_t M, int64_t Cg, int64_t KH, int64_t KW);

}  // namespace mserve::gpu
