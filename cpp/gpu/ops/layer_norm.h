// LayerNormalization and SkipLayerNormalization on the GPU (float32): the rows of rows_math.h.
// Callable from host code compiled by g++ (no CUDA headers here).
#pragma once
#include <cstdint>

namespace mserve::gpu {

// Device pointers of one launch over rows [rows, cols] of x = a (+ b).
struct LayerNormArgs {
  const float* a = nullptr;
  const float* b = nullptr;  // SkipLayerNormalization's second input, else null
  float* y = nullptr;
  float* sum = nullptr;          // a + b, when asked for
  const float* scale = nullptr;  // [cols]
  const float* bias = nullptr;   // [cols], or null
  float* mean = nullptr;         // [rows], when asked for
  float* inv_std = nullptr;      // [rows], when asked for
  int64_t rows = 0, cols = 0;
  float eps = 1e-5f;
};

// Returns the launch's cudaError_t as an int (0: queued). `stream` is a cudaStream_t.
int launch_layer_norm(const LayerNormArgs& args, void* stream);

}  // namespace mserve::gpu
