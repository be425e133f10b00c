// cuBLASLt descriptors without a GPU: the plans' layouts, transposes and epilogues read back from
// cuBLASLt, and a host evaluation of exactly the column-major call they describe compared with a
// naive row-major product in double precision — so the operand swap is checked here.
#include <cublasLt.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "gpu/lib/blas.h"
#include "gpu/ops/matmul.h"

namespace mserve::gpu {
namespace {

// What cuBLASLt computes for the plan (column-major C' = op(A') op(B')), evaluated on the host
// with the descriptors' own layouts; A' is our B and B' our A.
std::vector<double> emulate(const GemmPlan& p, const std::vector<float>& a, const std::vector<float>& b,
                            const std::vector<float>& bias) {
  const auto la = p.layout('A'), lb = p.layout('B'), lc = p.layout('C');
  const bool ta = p.transposed('A'), tb = p.transposed('B');
  const int64_t rows = static_cast<int64_t>(lc.rows), cols = static_cast<int64_t>(lc.cols);
  const int64_t inner = static_cast<int64_t>(ta ? la.rows : la.cols);
  const int32_t batch = std::max(lc.batch, 1);
  std::vector<double> c(static_cast<size_t>(batch) * lc.batch_stride + rows * cols + lc.ld * cols);
  auto at = [](const std::vector<float>& m, int64_t base, int64_t ld, bool t, int64_t r, int64_t col) {
    return static_cast<double>(t ? m[base + col + r * ld] : m[base + r + col * ld]);
  };
  for (int32_t q = 0; q < batch; ++q)
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t i = 0; i < rows; ++i) {
        double s = 0;
        for (int64_t l = 0; l < inner; ++l)
          s += at(b, q * la.batch_stride, la.ld, ta, i, l) * at(a, q * lb.batch_stride, lb.ld, tb, l, j);
        s *= p.shape().alpha;
        if (!bias.empty()) s += bias[i];
        if (p.epilogue_code() & CUBLASLT_EPILOGUE_RELU) s = std::max(s, 0.0);
        c[q * lc.batch_stride + i + j * lc.ld] = s;
      }
  return c;
}

std::vector<float> random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Row-major reference: C[q][m][n] = alpha * op(A[q]) op(B[q]) (+ bias, relu).
void expect_matches_reference(const GemmShape& s, bool relu = false, bool with_bias = false) {
  auto plan = GemmPlan::create(s);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  const GemmPlan& p = *plan.value();
  const int64_t lda = p.shape().lda, ldb = p.shape().ldb;
  const int64_t a_rows = s.trans_a ? s.k : s.m, b_rows = s.trans_b ? s.n : s.k;
  const size_t na = (s.batch - 1) * s.stride_a + a_rows * lda, nb = (s.batch - 1) * s.stride_b + b_rows * ldb;
  auto a = random(na, 1), b = random(nb, 2), bias = with_bias ? random(s.n, 3) : std::vector<float>();
  auto got = emulate(p, a, b, bias);
  for (int64_t q = 0; q < s.batch; ++q)
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t j = 0; j < s.n; ++j) {
        double want = 0;
        for (int64_t l = 0; l < s.k; ++l) {
          const double av = s.trans_a ? a[q * s.stride_a + l * lda + i] : a[q * s.stride_a + i * lda + l];
          const double bv = s.trans_b ? b[q * s.stride_b + j * ldb + l] : b[q * s.stride_b + l * ldb + j];
          want += av * bv;
        }
        want = want * s.alpha + (with_bias ? bias[j] : 0.0);
        if (relu) want = std::max(want, 0.0);
        ASSERT_NEAR(got[q * s.stride_c + i * p.shape().ldc + j], want, 1e-9)
            << s.str() << " at " << q << "," << i << "," << j;
      }
}

TEST(Blas, DescriptorsOfABertProjection) {
  GemmShape s;
  s.m = 128, s.n = 768, s.k = 768;
  s.epilogue = Epilogue::kBias;
  auto p = GemmPlan::create(s).value();
  EXPECT_EQ(p->compute_type(), CUBLAS_COMPUTE_32F);  // exact fp32 unless TF32 is asked for
  EXPECT_EQ(p->epilogue_code(), CUBLASLT_EPILOGUE_BIAS);
  EXPECT_FALSE(p->transposed('A'));
  EXPECT_FALSE(p->transposed('B'));
  const auto a = p->layout('A'), c = p->layout('C');
  EXPECT_EQ(a.rows, 768u);  // our B [k, n] read column-major: n x k
  EXPECT_EQ(a.cols, 768u);
  EXPECT_EQ(c.rows, 768u);  // C^T: n x m
  EXPECT_EQ(c.cols, 128u);
  EXPECT_EQ(c.ld, 768);
  EXPECT_FALSE(p->has_algorithm());  // the heuristic needs a device: chosen at the first run
  s.tf32 = true;
  EXPECT_EQ(GemmPlan::create(s).value()->compute_type(), CUBLAS_COMPUTE_32F_FAST_TF32);
}

TEST(Blas, TheOperandSwapComputesTheRowMajorProduct) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      GemmShape s;
      s.m = 5, s.n = 7, s.k = 3;
      s.trans_a = ta, s.trans_b = tb;
      s.alpha = 0.5f;
      expect_matches_reference(s);
    }
}

TEST(Blas, BatchedStridedAndSharedOperands) {
  GemmShape s;
  s.m = 4, s.n = 6, s.k = 5, s.batch = 3;
  s.stride_a = s.m * s.k, s.stride_b = s.k * s.n, s.stride_c = s.m * s.n;
  expect_matches_reference(s);
  s.stride_b = 0;  // one B for every A
  expect_matches_reference(s);
  s.trans_b = true;
  expect_matches_reference(s);
}

TEST(Blas, BiasAndReluEpilogues) {
  GemmShape s;
  s.m = 9, s.n = 11, s.k = 13;
  s.epilogue = Epilogue::kReluBias;
  EXPECT_EQ(GemmPlan::create(s).value()->epilogue_code(), CUBLASLT_EPILOGUE_RELU_BIAS);
  expect_matches_reference(s, true, true);
  s.epilogue = Epilogue::kRelu;
  expect_matches_reference(s, true, false);
}

TEST(Blas, RejectsEmptyAndInconsistentShapes) {
  GemmShape s;
  s.m = 4, s.n = 4, s.k = 0;
  EXPECT_EQ(GemmPlan::create(s).status().code(), Code::kInvalidArgument);
  s.k = 4;
  s.lda = 2;  // shorter than a row of A
  EXPECT_EQ(GemmPlan::create(s).status().code(), Code::kInvalidArgument);
}

TEST(Blas, MatMulShapesMapOntoOneGemm) {
  // B without batch: A's batches fold into rows.
  auto g = matmul_gemm_shape(Shape{2, 3, 4}, Shape{4, 5}, false, false).value();
  EXPECT_EQ(g.m, 6);
  EXPECT_EQ(g.batch, 1);
  // Equal batches: strided.
  g = matmul_gemm_shape(Shape{2, 3, 4}, Shape{2, 4, 5}, false, false).value();
  EXPECT_EQ(g.batch, 2);
  EXPECT_EQ(g.stride_a, 12);
  EXPECT_EQ(g.stride_b, 20);
  EXPECT_EQ(g.stride_c, 15);
  // A shared by every B.
  g = matmul_gemm_shape(Shape{3, 4}, Shape{2, 4, 5}, false, false).value();
  EXPECT_EQ(g.batch, 2);
  EXPECT_EQ(g.stride_a, 0);
  // Attention's K^T: transposed B, batched.
  g = matmul_gemm_shape(Shape{12, 128, 64}, Shape{12, 128, 64}, false, true).value();
  EXPECT_EQ(g.m, 128);
  EXPECT_EQ(g.n, 128);
  EXPECT_EQ(g.k, 64);
  EXPECT_TRUE(g.trans_b);
  // 1-D operands.
  g = matmul_gemm_shape(Shape{4}, Shape{4, 5}, false, false).value();
  EXPECT_EQ(g.m, 1);
  g = matmul_gemm_shape(Shape{3, 4}, Shape{4}, false, false).value();
  EXPECT_EQ(g.n, 1);
  // Broadcasting batches against each other: not on the GPU.
  EXPECT_EQ(matmul_gemm_shape(Shape{2, 1, 3, 4}, Shape{3, 4, 5}, false, false).status().code(), Code::kUnsupported);
  EXPECT_EQ(matmul_gemm_shape(Shape{2, 3, 4}, Shape{5, 5}, false, false).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace mserve::gpu
