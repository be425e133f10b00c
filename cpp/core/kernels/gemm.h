// Dense matrix multiply on Eigen, split across the thread pool.
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// Row-major operands with leading dimensions lda/ldb/ldc (elements). When beta == 0, C is
// written without being read (it may hold garbage). T is float or double.
#pragma once
#include <cstdint>

namespace mserve {

class ThreadPool;

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc, ThreadPool& pool);

}  // namespace mserve
