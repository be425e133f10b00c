// Eigen's GEMM for one instruction set (see isa.h): compiled once per variant, with Eigen's
// namespace renamed so the variants share no code. Called through gemm() (kernels/gemm.h).
#include <Eigen/Core>
#include <algorithm>

#include "core/kernels/isa/isa.h"
#include "core/parallel/thread_pool.h"

namespace mserve::MSERVE_ISA {

namespace {

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ColMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using OuterStride = Eigen::OuterStride<>;

// One block of rows [m0, m1) and columns [n0, n1) of C.
template <class T>
void gemm_block(bool ta, bool tb, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  const int64_t m = m1 - m0, n = n1 - n0;
  Eigen::Map<RowMat<T>, 0, OuterStride> c(C + m0 * ldc + n0, m, n, OuterStride(ldc));
  // A transposed in row-major is A in column-major: map it that way instead of copying.
  auto run = [&](const auto& a) {
    auto product = [&](const auto& b) {
      // noalias() lets Eigen accumulate straight into C with no temporary (no allocation).
      if (beta == T(0)) {
        c.noalias() = alpha * (a * b);
      } else {
        if (beta != T(1)) c *= beta;
        c.noalias() += alpha * (a * b);
      }
    };
    if (tb)
      product(Eigen::Map<const ColMat<T>, 0, OuterStride>(B + n0 * ldb, K, n, OuterStride(ldb)));
    else
      product(Eigen::Map<const RowMat<T>, 0, OuterStride>(B + n0, K, n, OuterStride(ldb)));
  };
  if (ta)
    run(Eigen::Map<const ColMat<T>, 0, OuterStride>(A + m0, m, K, OuterStride(lda)));
  else
    run(Eigen::Map<const RowMat<T>, 0, OuterStride>(A + m0 * lda, m, K, OuterStride(lda)));
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc, ThreadPool& pool) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  // Below ~512k multiply-adds a single thread beats the hand-off (measured: a batch-32 LSTM
  // step, 32x192x48, took 16 us split over 2 threads and 10 us on one).
  const double flops = static_cast<double>(M) * N * K;
  if (pool.threads() == 1 || flops < 524288.0) {
    gemm_block(trans_a, trans_b, 0, M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // One panel of C per thread along its longer side: every panel repacks the shared operand,
  // so more panels than threads would only repeat that work. Panel edges are multiples of 16
  // to keep Eigen's register blocking whole.
  const int64_t nt = pool.threads();
  const bool split_m = M >= N;
  const int64_t len = split_m ? M : N;
  const int64_t per = (len + nt - 1) / nt;
  const int64_t panel = std::max<int64_t>(16, (per + 15) / 16 * 16);
  const int64_t panels = (len + panel - 1) / panel;
  pool.parallel_for(panels, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const int64_t b = p * panel, e = std::min(len, b + panel);
      if (split_m)
        gemm_block(trans_a, trans_b, b, e, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      else
        gemm_block(trans_a, trans_b, 0, M, b, e, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
  });
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t, ThreadPool&);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t, ThreadPool&);

}  // namespace mserve::MSERVE_ISA
