#include "core/kernels/gemm.h"

#include "core/kernels/isa/isa.h"

namespace mserve {

// The Eigen GEMM of the instruction set this CPU runs best (kernels/isa/variant_gemm.cc).
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc, ThreadPool& pool) {
  MSERVE_ISA_DISPATCH(gemm<T>, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t, ThreadPool&);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t, ThreadPool&);

}  // namespace mserve
