#include "core/kernels/int8_gemm.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/kernels/common.h"
#include "core/kernels/dnnl_matmul.h"
#include "core/kernels/int8_window.h"
#include "core/kernels/isa/isa.h"
#include "core/parallel/thread_pool.h"
#include "core/tensor/tensor.h"

namespace mserve {
namespace {

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

// Rows per parallel chunk of an [M, N] pass: about 16k elements.
int64_t row_grain(int64_t N) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, N)); }

// Above this K a uint8 x int8 sum may leave int32 (255 * 128 * K).
constexpr int64_t kMaxExactK = 65793;

// b' (int8): b, or b - 128 for uint8 b.
std::vector<int8_t> as_int8(const Tensor& b) {
  std::vector<int8_t> bs(static_cast<size_t>(b.numel()));
  if (b.dtype() == DType::kUInt8) {
    const uint8_t* p = b.data<uint8_t>();
    for (size_t i = 0; i < bs.size(); ++i) bs[i] = static_cast<int8_t>(static_cast<int>(p[i]) - 128);
  } else if (!bs.empty()) {
    std::memcpy(bs.data(), b.data<int8_t>(), bs.size());
  }
  return bs;
}

// Whether the fixes are too many: over 1/128 of the K x N values (a fix costs a scalar
// multiply-add per row; the vectorized product is some 30 times cheaper per value, an estimate:
// beyond this the two products of the split cost less).
bool too_many(size_t fixes, int64_t K, int64_t N) { return static_cast<int64_t>(fixes) > K * N / 128; }

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
  std::vector<int8_t> bs = as_int8(b);
  g->zb_.assign(static_cast<size_t>(N), -off);
  if (b_zero_point)
    for (int64_t n = 0; n < N; ++n)
      g->zb_[n] = static_cast<int32_t>(b_zero_point->int_at(b_zero_point->numel() == 1 ? 0 : n)) - off;
  g->zb_nonzero_ = std::any_of(g->zb_.begin(), g->zb_.end(), [](int32_t z) { return z != 0; });
  g->col_.assign(static_cast<size_t>(N), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) g->col_[n] += bs[k * N + n];
  if (K <= kMaxExactK) {
    const int8_t* packs = bs.data();
    std::vector<int8_t> safe;
    if (DnnlMatMul::u8s8_saturates()) {
      safe = bs;
      g->fixes_ = unsaturating(K, N, safe.data());
      g->split_ = too_many(g->fixes_.size(), K, N);
      if (g->split_) {
        g->fixes_.clear();
        if (t == DType::kInt8) {
          g->b_int8_ = b;  // shares its bytes
          g->b_rows_ = g->b_int8_.data<int8_t>();
        } else {
          g->b_copy_ = bs;
          g->b_rows_ = g->b_copy_.data();
        }
      } else {
        packs = safe.data();
      }
    }
    g->dnnl_ = DnnlMatMul::create_u8s8(K, N, packs, store);
  }
  if (!g->dnnl_ || !DnnlMatMul::always_takes(K, N)) g->b_ = std::move(bs);
  return g;
}

std::vector<Int8Gemm::Fix> Int8Gemm::unsaturating(int64_t K, int64_t N, int8_t* b) {
  // Down each column, a pair summing beyond [-128, 128] has its second value moved toward zero
  // (it keeps its sign, so the pair it starts next only gets safer).
  std::vector<Fix> fixes;
  for (int64_t k = 0; k + 1 < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      const int sum = b[k * N + n] + b[(k + 1) * N + n];
      const int excess = sum > 128 ? sum - 128 : sum < -128 ? sum + 128 : 0;
      if (excess == 0) continue;
      int8_t& w = b[(k + 1) * N + n];
      w = static_cast<int8_t>(w - excess);
      fixes.push_back({k + 1, n, excess});
    }
  return fixes;
}

size_t Int8Gemm::converted_bytes(int64_t M, bool a_signed) const {
  return a_signed ? align64(static_cast<size_t>(M * K_)) : 0;
}

size_t Int8Gemm::split_bytes(int64_t M) const {
  if (!dnnl_ || !split_) return 0;
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
  if (dnnl_ && split_) {
    auto* lo = reinterpret_cast<uint8_t*>(ws);
    auto* hi = lo + align64(static_cast<size_t>(M * K));
    auto* hi_acc = reinterpret_cast<int32_t*>(hi + align64(static_cast<size_t>(M * K)));
    void* scratch = ws + split_bytes(M);
    // a in a window around za: a7 in lo, the rows' flags in hi.
    const Int8Window win = Int8Window::around(*za, false);
    std::atomic<int64_t> outside{0};
    pool.parallel_for(M, row_grain(K), [&](int64_t b, int64_t e) {
      outside += clamp_to_window(au + b * K, false, e - b, K, win.lo, lo + b * K, hi + b);
    });
    if (outside.load() <= M * K / 32) {
      Status st = dnnl_->run_u8s8(lo, acc, M, scratch, pool.threads());
      if (st.ok()) {
        pool.parallel_for(M, row_grain(N), [&](int64_t b, int64_t e) {
          std::vector<int32_t> channel(static_cast<size_t>(K)), excess(static_cast<size_t>(K));
          for (int64_t m = b; m < e; ++m) {
            int32_t* row = acc + m * N;
            if (win.lo)
              for (int64_t n = 0; n < N; ++n) row[n] += win.lo * col_[n];
            if (!hi[m]) continue;
            const int64_t count = outside_window(au + m * K, K, false, win.lo, channel.data(), excess.data());
            for (int64_t t = 0; t < count; ++t) add_scaled_int8(row, b_rows_ + channel[t] * N, excess[t], N);
          }
        });
        return st;
      }
      if (st.code() != Code::kUnsupported || b_.empty()) return st;
    }
    // Many values outside: a = lo + 128 hi, two products that cannot saturate, acc = lo b' + 128 hi b'.
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
    if (st.ok() && !fixes_.empty())  // what the unsaturating weights left out
      pool.parallel_for(M, row_grain(static_cast<int64_t>(fixes_.size())), [&](int64_t b, int64_t e) {
        for (int64_t m = b; m < e; ++m) {
          const uint8_t* arow = au + m * K;
          int32_t* row = acc + m * N;
          for (const Fix& f : fixes_) row[f.n] += arow[f.k] * f.r;
        }
      });
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
