#include "core/kernels/int8_gemm.h"

#include <algorithm>
#include <cstring>

#include "core/kernels/common.h"
#include "core/kernels/dnnl_matmul.h"
#include "core/parallel/thread_pool.h"
#include "core/tensor/tensor.h"

namespace mserve {
namespace {

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

// Rows per parallel chunk of an [M, N] pass: about 16k elements.
int64_t row_grain(int64_t N) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, N)); }

// Above this K a uint8 x int8 sum may leave int32 (255 * 128 * K).
constexpr int64_t kMaxExactK = 65793;

}  // namespace

Int8Gemm::~Int8Gemm() = default;

StatusOr<std::unique_ptr<Int8Gemm>> Int8Gemm::create(const Tensor& b, const Tensor* b_zero_point, PackStore* store) {
  const DType t = b.dtype();
  if (t != DType::kInt8 && t != DType::kUInt8) return Unsupported("integer weights must be int8 or uint8");
  if (b.rank() != 2) return Unsupported("integer weights must be 2-D");
  const int64_t K = b.dim(0), N = b.dim(1);
  if (b_zero_point) {
    MS_CHECK_ARG(b_zero_point->dtype() == t, "b_zero_point must have b's dtype");
    MS_CHECK_ARG(b_zero_point->numel() == 1 || b_zero_point->numel() == N,
                 "b_zero_point must have 1 or N values, got shape " + b_zero_point->shape().str());
  }
  std::unique_ptr<Int8Gemm> g(new Int8Gemm());
  g->K_ = K;
  g->N_ = N;
  const int off = t == DType::kUInt8 ? 128 : 0;
  std::vector<int8_t> bs(static_cast<size_t>(K * N));
  if (t == DType::kUInt8) {
    const uint8_t* p = b.data<uint8_t>();
    for (int64_t i = 0; i < K * N; ++i) bs[i] = static_cast<int8_t>(static_cast<int>(p[i]) - off);
  } else if (K * N > 0) {
    std::memcpy(bs.data(), b.data<int8_t>(), bs.size());
  }
  g->zb_.assign(static_cast<size_t>(N), -off);
  if (b_zero_point)
    for (int64_t n = 0; n < N; ++n)
      g->zb_[n] = static_cast<int32_t>(b_zero_point->int_at(b_zero_point->numel() == 1 ? 0 : n)) - off;
  g->zb_nonzero_ = std::any_of(g->zb_.begin(), g->zb_.end(), [](int32_t z) { return z != 0; });
  g->col_.assign(static_cast<size_t>(N), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) g->col_[n] += bs[k * N + n];
  if (K <= kMaxExactK) g->dnnl_ = DnnlMatMul::create_u8s8(K, N, bs.data(), store);
  if (!g->dnnl_ || !DnnlMatMul::always_takes(K, N)) g->b_ = std::move(bs);
  return g;
}

size_t Int8Gemm::converted_bytes(int64_t M, bool a_signed) const {
  return a_signed ? align64(static_cast<size_t>(M * K_)) : 0;
}

size_t Int8Gemm::split_bytes(int64_t M) const {
  if (!dnnl_ || !DnnlMatMul::u8s8_saturates()) return 0;
  return 2 * align64(static_cast<size_t>(M * K_)) + align64(static_cast<size_t>(M * N_) * 4);
}

StatusOr<size_t> Int8Gemm::prepare(int64_t M, bool a_signed, int threads) const {
  // [a as uint8][acc int32 M x N][rows int32 M][split: lo, hi, hi sums][oneDNN's scratchpad]
  size_t bytes =
      converted_bytes(M, a_signed) + align64(static_cast<size_t>(M * N_) * 4) + align64(M * 4) + split_bytes(M);
  if (dnnl_) {
    auto ws = dnnl_->prepare(M, threads);
    if (ws.ok()) return bytes + ws.value();
    if (b_.empty()) return ws.status();  // the weights live only in oneDNN's copy
  }
  return bytes;
}

Status Int8Gemm::product(const void* a, bool a_signed, int32_t* za, int64_t M, int32_t* acc, int32_t* rows,
                         void* workspace, ThreadPool& pool) const {
  const int64_t K = K_, N = N_;
  auto* ws = static_cast<char*>(workspace);
  const uint8_t* au = static_cast<const uint8_t*>(a);
  if (a_signed) {  // a + 128 as uint8: flipping the sign bit
    auto* conv = reinterpret_cast<uint8_t*>(ws);
    const auto* as = static_cast<const uint8_t*>(a);
    pool.parallel_for(M * K, 65536, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) conv[i] = as[i] ^ 0x80u;
    });
    au = conv;
    *za += 128;
    ws += converted_bytes(M, a_signed);
  }
  if (rows)
    pool.parallel_for(M, row_grain(K), [&](int64_t b, int64_t e) {
      for (int64_t m = b; m < e; ++m) {
        int32_t s = 0;
        for (int64_t k = 0; k < K; ++k) s += au[m * K + k];
        rows[m] = s;
      }
    });
  ws += align64(static_cast<size_t>(M * N) * 4) + align64(M * 4);
  if (dnnl_ && DnnlMatMul::u8s8_saturates()) {
    // a = lo + 128 hi: two products that cannot saturate, then acc = lo b' + 128 hi b'.
    auto* lo = reinterpret_cast<uint8_t*>(ws);
    auto* hi = lo + align64(static_cast<size_t>(M * K));
    auto* hi_acc = reinterpret_cast<int32_t*>(hi + align64(static_cast<size_t>(M * K)));
    void* scratch = ws + split_bytes(M);
    pool.parallel_for(M * K, 65536, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        lo[i] = au[i] & 0x7fu;
        hi[i] = au[i] >> 7;
      }
    });
    Status st = dnnl_->run_u8s8(lo, acc, M, scratch, pool.threads());
    if (st.ok()) st = dnnl_->run_u8s8(hi, hi_acc, M, scratch, pool.threads());
    if (st.ok()) {
      pool.parallel_for(M * N, 65536, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) acc[i] += hi_acc[i] * 128;
      });
      return st;
    }
    if (st.code() != Code::kUnsupported || b_.empty()) return st;
  } else if (dnnl_) {
    Status st = dnnl_->run_u8s8(au, acc, M, ws, pool.threads());
    if (st.code() != Code::kUnsupported) return st;
    if (b_.empty()) return st;
  }
  pool.parallel_for(M, row_grain(K * N / 16 + 1), [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m) {
      int32_t* row = acc + m * N;
      std::fill(row, row + N, 0);
      for (int64_t k = 0; k < K; ++k) {
        const int32_t av = au[m * K + k];
        if (av == 0) continue;
        const int8_t* brow = b_.data() + k * N;
        for (int64_t n = 0; n < N; ++n) row[n] += av * brow[n];
      }
    }
  });
  return Status::OK();
}

Status Int8Gemm::run_int32(const void* a, bool a_signed, int32_t za, int64_t M, int32_t* acc, void* workspace,
                           ThreadPool& pool) const {
  auto* ws = static_cast<char*>(workspace);
  int32_t* rows =
      needs_rows()
          ? reinterpret_cast<int32_t*>(ws + converted_bytes(M, a_signed) + align64(static_cast<size_t>(M * N_) * 4))
          : nullptr;
  MS_RETURN_IF_ERROR(product(a, a_signed, &za, M, acc, rows, workspace, pool));
  const int64_t N = N_;
  const int32_t kz = static_cast<int32_t>(K_) * za;
  if (za == 0 && !rows) return Status::OK();
  pool.parallel_for(M, row_grain(N), [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m) {
      int32_t* row = acc + m * N;
      const int32_t r = rows ? rows[m] - kz : 0;  // sum_k (a - za)
      for (int64_t n = 0; n < N; ++n) row[n] -= za * col_[n] + zb_[n] * r;
    }
  });
  return Status::OK();
}

Status Int8Gemm::run_float(const void* a, bool a_signed, int32_t za, int64_t M, float a_scale, const float* b_scale,
                           bool b_scale_per_column, const float* bias, float* y, void* workspace,
                           ThreadPool& pool) const {
  auto* ws = static_cast<char*>(workspace);
  auto* acc = reinterpret_cast<int32_t*>(ws + converted_bytes(M, a_signed));
  int32_t* rows = needs_rows() ? acc + align64(static_cast<size_t>(M * N_) * 4) / 4 : nullptr;
  MS_RETURN_IF_ERROR(product(a, a_signed, &za, M, acc, rows, workspace, pool));
  const int64_t N = N_;
  const int32_t kz = static_cast<int32_t>(K_) * za;
  pool.parallel_for(M, row_grain(N), [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m) {
      const int32_t* row = acc + m * N;
      float* out = y + m * N;
      const int32_t r = rows ? rows[m] - kz : 0;
      for (int64_t n = 0; n < N; ++n) {
        const int32_t v = row[n] - (za * col_[n] + zb_[n] * r);
        const float s = a_scale * b_scale[b_scale_per_column ? n : 0];
        const float f = static_cast<float>(v) * s;
        out[n] = bias ? f + bias[n] : f;
      }
    }
  });
  return Status::OK();
}

}  // namespace mserve
