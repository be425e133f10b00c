// The pools on the GPU: MaxPool, AveragePool (NCHW, 1-D to 3-D), GlobalAveragePool,
// GlobalMaxPool and com.mserve NhwcMaxPool / NhwcAveragePool, float32. Launch functions callable
// from host code compiled by g++ (no CUDA headers here).
#pragma once
#include <cstdint>

#include "gpu/ops/pool_math.h"

namespace mserve {
struct ConvGeometry;
}

namespace mserve::gpu {

// The kernels' geometry of a CPU geometry (pool_geometry of the NCHW shape; for NHWC pools the
// shape [N, C, H, W] of X [N, H, W, C]).
PoolGeo pool_geo(const ConvGeometry& g, bool include_pad, bool nhwc);

// y[i] = pool_nchw / pool_nhwc<max>(g, x, i) for every output element. On `stream`; returns the
// cudaError_t as an int.
int launch_pool(const PoolGeo& g, bool max, bool nhwc, const float* x, float* y, void* stream);

// y[p] = the max or mean of the `len` elements of plane p < planes of x, one warp per plane.
int launch_global_pool(bool max, int64_t planes, int64_t len, const float* x, float* y, void* stream);

}  // namespace mserve::gpu
