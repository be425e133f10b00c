// LayerNormalization and SkipLayerNormalization on the GPU (float32): the rows of rows_math.h.
// Callable from host code compiled by g++ (no CUDA headers here).
#pragma once
#include <cstdint>

#include "core/tensor/shape.h"

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
  // Rows of a and b before they repeat (row r reads row r % period); 0: one row per row of x.
  int64_t a_period = 0, b_period = 0;
  float eps = 1e-5f;
};

// How SkipLayerNormalization's input `in` broadcasts over the rows of x (normalized from axis
// a): 0 when it has x's shape; its row count k when it is x's last dims from some point on
// (leading 1s aside) and covers every normalized dim, so row r of x reads its row r % k (a
// position embedding [S, H] under [B, S, H]); -1 for any other broadcast.
int64_t row_period(const Shape& in, const Shape& x, int a);

// Returns the launch's cudaError_t as an int (0: queued). `stream` is a cudaStream_t.
int launch_layer_norm(const LayerNormArgs& args, void* stream);

}  // namespace mserve::gpu
