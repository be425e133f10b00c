// float32 Y[M, N] = act(X[M, K] * W[K, N] + bias[N]) on oneDNN, for MatMul and Gemm whose
// weights are constants of the graph: W is packed once at load into the layout oneDNN's
// kernel wants (chosen by the CPU's instruction set at run time), a primitive is made per row
// count M and thread count, bias and activation are fused. Measured on the 2-core AVX-512 machine
// (see docs/design.md): 8x1024x4096 0.72 ms vs 2.04 ms with Eigen, one thread.
//
// Thread safety: prepare() and run() may be called concurrently.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/kernels/fused_activation.h"
#include "core/status.h"

namespace mserve {

class DnnlMatMul {
 public:
  // w: [K, N] row-major, or [N, K] when trans_w (copied into oneDNN's layout, not kept);
  // bias: [N] or null. Null when oneDNN cannot take these parameters.
  static std::unique_ptr<DnnlMatMul> create(int64_t K, int64_t N, const float* w, bool trans_w, const float* bias,
                                            const FusedActivation& act);
  ~DnnlMatMul();

  int64_t K() const;
  int64_t N() const;
  // Whether prepare() takes every row count M >= 1 for these weights (it refuses products too
  // small to pay off, below 128k multiply-adds).
  static bool always_takes(int64_t K, int64_t N) { return K * N >= kMinMacs; }
  static constexpr int64_t kMinMacs = 131072;
  // Plans M rows on `threads` threads: the workspace bytes run() needs, or an error when oneDNN
  // cannot take it or it is too small to pay off (the caller runs it another way).
  StatusOr<size_t> prepare(int64_t M, int threads) const;
  // x: [M, K] row-major, y: [M, N]. Returns Unsupported, having done nothing, exactly when
  // prepare() fails for the same arguments.
  Status run(const float* x, float* y, int64_t M, void* workspace, int threads) const;

 private:
  struct Impl;
  explicit DnnlMatMul(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mserve
