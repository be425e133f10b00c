// Launch of the convolution epilogue (ops/conv_math.h) over y in place. No CUDA headers.
#pragma once
#include <cstdint>
#include <vector>

#include "gpu/ops/conv_math.h"

namespace mserve::gpu {

// Returns the launch's cudaError_t as an int.
int launch_conv_epilogue(const ConvEpilogue& e, float* y, int64_t n, void* stream);

// ONNX's [M, C/g, kh, kw] filter in the [M, kh, kw, C/g] order cuDNN takes with NHWC data.
std::vector<float> nhwc_filter(const float* w, int64_t M, int64_t Cg, int64_t KH, int64_t KW);

}  // namespace mserve::gpu
