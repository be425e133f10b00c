// float32 Y[M, N] = act(X[M, K] * W[K, N] + bias[N]) on oneDNN, for MatMul and Gemm whose
// weights are constants of the graph: W is packed once at load into the layout oneDNN's
// kernel wants (chosen by the CPU's instruction set at run time), a primitive is made per row
// count M and thread count, bias and activation are fused. Measured on the 2-core AVX-512 machine
// (see docs/design.md): 8x1024x4096 0.72 ms vs 2.04 ms with Eigen, one thread.
//
// The same for int8: Y[M, N] int32 = X[M, K] uint8 * W[K, N] int8 with W packed once
// (create_u8s8 / run_u8s8; no bias or activation). Exact where the CPU has VNNI (AVX512-VNNI and
// up). Without it (u8s8_saturates()) oneDNN multiplies through vpmaddubsw, whose int16 sums of the
// products of two adjacent rows of W saturate: the caller must keep every such sum within int16
// (Int8Gemm: weights whose adjacent pairs sum to within [-128, 128], or X below 128).
// Without AVX-512 oneDNN takes W as a plain matrix; its rows are padded (dnnl_util::padded_plain).
//
// Thread safety: prepare() and run() may be called concurrently.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/kernels/fused_activation.h"
#include "core/kernels/pack_store.h"
#include "core/status.h"

namespace mserve {

class DnnlMatMul {
 public:
  // w: [K, N] row-major, or [N, K] when trans_w (copied into oneDNN's layout, not kept);
  // bias: [N] or null. Null when oneDNN cannot take these parameters. With a store, the packed
  // weights come from it when it has them, and go to it when they are packed here.
  static std::unique_ptr<DnnlMatMul> create(int64_t K, int64_t N, const float* w, bool trans_w, const float* bias,
                                            const FusedActivation& act, PackStore* store = nullptr);
  ~DnnlMatMul();

  // Null when oneDNN cannot take these weights.
  static std::unique_ptr<DnnlMatMul> create_u8s8(int64_t K, int64_t N, const int8_t* w, PackStore* store = nullptr);
  static bool has_vnni();
  // Whether run_u8s8's pair sums saturate on this CPU (no VNNI): X must then stay below 128.
  static bool u8s8_saturates() { return !has_vnni(); }
  // What oneDNN's packed layouts follow besides the weights and parameters: its version and the
  // instruction set it runs on ("oneDNN 2.6.3, isa 0x...").
  static std::string packing_environment();

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
  // The int8 product (an object made by create_u8s8), on the same terms.
  Status run_u8s8(const uint8_t* x, int32_t* y, int64_t M, void* workspace, int threads) const;

 private:
  struct Impl;
  explicit DnnlMatMul(std::unique_ptr<Impl> impl);
  static std::unique_ptr<DnnlMatMul> make(std::unique_ptr<Impl> impl, const void* w, bool trans_w, PackStore* store);
  Status run_raw(const void* x, void* y, int64_t M, void* workspace, int threads) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mserve
