// Integer matrix products with constant weights, as MatMulInteger and onnxruntime's
// MatMulIntegerToFloat define them:
//   acc[m, n] = sum_k (a[m, k] - za) * (b[k, n] - zb[n])            exact, int32
//   y[m, n]   = float(acc[m, n]) * float(a_scale * b_scale[n]) + bias[n]
// a: [M, K] uint8 or int8 with one zero point; b: [K, N] int8 or uint8 with one zero point or
// one per column, given once at load. The product runs on oneDNN's int8 matmul (VNNI or AMX,
// weights packed once, dnnl_matmul.h) as uint8 x int8; the operands' other signednesses and the
// zero points are exact corrections around it:
//   int8 a  -> a + 128 (uint8) with za + 128;  uint8 b -> b - 128 (int8) with zb - 128;
//   sum (a - za)(b' - zb') = sum a b' - zb' rowsum(a) - za colsum(b') + K za zb'.
// Without VNNI oneDNN multiplies through vpmaddubsw, which adds the products of two adjacent
// rows k, k + 1 in int16 and saturates: exact only where the two weights of a column's pair sum
// to within [-128, 128] (255 * 128 = 32640 fits; a single int8 weight always does). Which rows
// pair up depends on how oneDNN blocks K (K = 301: rows 151 and 152 pair), so the weights
// oneDNN packs are made so for every two adjacent rows (unsaturating), and the few products
// taken out are added back from a list,
//   acc = a b'_safe + sum over fixes (k, n, r) of a[m, k] * r,
// one pass instead of two (quantized BERT-base: 0.03% of its even pairs exceed, 0.14% at most
// in one matrix). Weights that would need a fix in over 1/128 of their values (per-channel
// quantized ones: 3-7% of their pairs) take the slack from a instead, as int8 convolutions do
// (int8_window.h): oneDNN multiplies a clamped to a 7-bit window [lo, lo + 127] around za,
//   acc = (a7 b') + lo colsum(b') + sum over values outside of (a - clamp(a)) b'[k, :],
// the few values outside (a QDQ model's activations are calibrated around za) added row by row
// from b' (the graph's weights as given when int8, or a copy). Where over 1/32 of a call's values
// fall outside, a splits instead, a = lo + 128 hi (low 7 bits, top bit), and oneDNN runs both:
// acc = lo b' + 128 (hi b').
// For products too small to pay off, a portable int32 loop.
//
// Thread safety: const methods may be called concurrently.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/kernels/pack_store.h"
#include "core/status.h"
#include "core/tensor/tensor.h"

namespace mserve {

class DnnlMatMul;
class ThreadPool;

class Int8Gemm {
 public:
  // b: constant [K, N] int8 or uint8; b_zero_point: null, one value or N values of b's dtype.
  static StatusOr<std::unique_ptr<Int8Gemm>> create(const Tensor& b, const Tensor* b_zero_point,
                                                    PackStore* store = nullptr);
  ~Int8Gemm();

  int64_t K() const { return K_; }
  int64_t N() const { return N_; }
  // How the product runs without VNNI: products added back after oneDNN's, or a in a 7-bit
  // window (then split in two where many values are outside).
  int64_t fixed_products() const { return static_cast<int64_t>(fixes_.size()); }
  bool windowed() const { return split_; }

  // Workspace bytes run_*() needs for M rows of a (signed or not) on `threads` threads.
  StatusOr<size_t> prepare(int64_t M, bool a_signed, int threads) const;
  // acc[M, N] (int32) as above.
  Status run_int32(const void* a, bool a_signed, int32_t za, int64_t M, int32_t* acc, void* workspace,
                   ThreadPool& pool) const;
  // y[M, N] = float(acc) * float(a_scale * b_scale[n]) + bias[n]; b_scale has 1 or N values,
  // bias N values or null.
  Status run_float(const void* a, bool a_signed, int32_t za, int64_t M, float a_scale, const float* b_scale,
                   bool b_scale_per_column, const float* bias, float* y, void* workspace, ThreadPool& pool) const;

 private:
  Int8Gemm() = default;
  // acc without the finishing pass: raw sums into acc, row sums of a into rows (when needed).
  Status product(const void* a, bool a_signed, int32_t* za, int64_t M, int32_t* acc, int32_t* rows, void* workspace,
                 ThreadPool& pool) const;
  size_t converted_bytes(int64_t M, bool a_signed) const;
  // The split's buffers (lo, hi as uint8; hi's sums as int32), without VNNI.
  size_t split_bytes(int64_t M) const;
  bool needs_rows() const { return zb_nonzero_; }
  struct Fix {
    int64_t k, n;
    int32_t r;
  };
  // b [K, N] made unsaturating in place (every two adjacent rows sum to within [-128, 128] in
  // each column); returns what was taken out (b_old - b at (k, n)).
  static std::vector<Fix> unsaturating(int64_t K, int64_t N, int8_t* b);

  int64_t K_ = 0, N_ = 0;
  std::vector<int8_t> b_;     // b' [K, N] (int8), kept only without oneDNN
  std::vector<int32_t> zb_;   // zb' per column
  std::vector<int32_t> col_;  // colsum(b') per column
  bool zb_nonzero_ = false;
  std::vector<Fix> fixes_;      // without VNNI: added back after oneDNN's product
  bool split_ = false;          // without VNNI: a in a window (or split in two) instead (too many fixes)
  Tensor b_int8_;               // with split_: the rows of b' the window's values outside read (b itself
  std::vector<int8_t> b_copy_;  // when int8, else a copy)
  const int8_t* b_rows_ = nullptr;
  std::unique_ptr<DnnlMatMul> dnnl_;
};

}  // namespace mserve
