#include "gpu/lib/blas.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstring>
#include <limits>

#include "gpu/context.h"

namespace mserve::gpu {

namespace {

Status lt_status(cublasStatus_t s, const std::string& what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::OK();
  return Internal("cuBLASLt " + what + " failed: " + cublasLtGetStatusName(s) + " (" + cublasLtGetStatusString(s) +
                  ")");
}

#define MS_LT(expr, what) MS_RETURN_IF_ERROR(lt_status((expr), (what)))

cublasLtEpilogue_t epilogue_of(Epilogue e) {
  switch (e) {
    case Epilogue::kNone: return CUBLASLT_EPILOGUE_DEFAULT;
    case Epilogue::kRelu: return CUBLASLT_EPILOGUE_RELU;
    case Epilogue::kBias: return CUBLASLT_EPILOGUE_BIAS;
    case Epilogue::kReluBias: return CUBLASLT_EPILOGUE_RELU_BIAS;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

bool has_bias(Epilogue e) { return e == Epilogue::kBias || e == Epilogue::kReluBias; }

cudaDataType_t data_type(Operand t) {
  switch (t) {
    case Operand::kF32: return CUDA_R_32F;
    case Operand::kF16: return CUDA_R_16F;
    case Operand::kBf16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

// A column-major layout rows x cols of `type` with leading dimension ld, batched.
Status make_layout(void** out, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld, int64_t batch,
                   int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  MS_LT(cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld), "matrix layout");
  *out = l;
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    MS_LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)),
          "batch count");
    MS_LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)),
          "batch stride");
  }
  return Status::OK();
}

}  // namespace

std::string GemmShape::str() const {
  return "gemm m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
         " batch=" + std::to_string(batch) + (trans_a ? " A^T" : "") + (trans_b ? " B^T" : "") +
         (operands == Operand::kF16    ? " fp16"
          : operands == Operand::kBf16 ? " bf16"
                                       : "");
}

bool GemmShape::operator==(const GemmShape& o) const {
  return m == o.m && n == o.n && k == o.k && trans_a == o.trans_a && trans_b == o.trans_b && batch == o.batch &&
         stride_a == o.stride_a && stride_b == o.stride_b && stride_c == o.stride_c && lda == o.lda && ldb == o.ldb &&
         ldc == o.ldc && alpha == o.alpha && beta == o.beta && epilogue == o.epilogue && tf32 == o.tf32 &&
         operands == o.operands;
}

StatusOr<std::shared_ptr<GemmPlan>> GemmPlan::create(const GemmShape& shape) {
  GemmShape s = shape;
  if (s.m < 1 || s.n < 1 || s.k < 1 || s.batch < 1)
    return InvalidArgument("a GPU matrix product needs positive sizes, got " + s.str());
  if (s.batch > std::numeric_limits<int32_t>::max()) return InvalidArgument("too many matrices in " + s.str());
  // Row-major strides: op(A) is [m, k], stored [m, k] or (transposed) [k, m]; likewise B.
  if (!s.lda) s.lda = s.trans_a ? s.m : s.k;
  if (!s.ldb) s.ldb = s.trans_b ? s.k : s.n;
  if (!s.ldc) s.ldc = s.n;
  if (s.lda < (s.trans_a ? s.m : s.k) || s.ldb < (s.trans_b ? s.k : s.n) || s.ldc < s.n)
    return InvalidArgument("row strides shorter than the rows in " + s.str());
  if (s.tf32 && s.operands != Operand::kF32) return InvalidArgument("TF32 is for float32 operands: " + s.str());
  std::shared_ptr<GemmPlan> p(new GemmPlan(s));
  cublasLtMatmulDesc_t op = nullptr;
  MS_LT(cublasLtMatmulDescCreate(&op, s.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F),
        "matmul descriptor");
  p->op_desc_ = op;
  // cuBLASLt is column-major: the row-major product C = op(A) op(B) is C^T = op(B)^T op(A)^T, so
  // its first operand is our B and its second our A. Row-major B [k, n] read column-major is
  // B^T [n, k], already the operand it needs (no transpose); a stored-transposed B needs one.
  const cublasOperation_t ta = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  MS_LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "transpose A");
  MS_LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "transpose B");
  const cublasLtEpilogue_t epi = epilogue_of(s.epilogue);
  MS_LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), "epilogue");
  // Stored shapes, column-major: our B is (trans_b ? k x n : n x k), our A (trans_a ? m x k : k x m).
  // A and B in the operand type; C (and the bias, which cuBLASLt takes in C's type) float32.
  const cudaDataType_t ab = data_type(s.operands);
  MS_RETURN_IF_ERROR(
      make_layout(&p->a_desc_, ab, s.trans_b ? s.k : s.n, s.trans_b ? s.n : s.k, s.ldb, s.batch, s.stride_b));
  MS_RETURN_IF_ERROR(
      make_layout(&p->b_desc_, ab, s.trans_a ? s.m : s.k, s.trans_a ? s.k : s.m, s.lda, s.batch, s.stride_a));
  MS_RETURN_IF_ERROR(make_layout(&p->c_desc_, CUDA_R_32F, s.n, s.m, s.ldc, s.batch, s.stride_c));
  return p;
}

GemmPlan::~GemmPlan() {
  if (a_desc_) cublasLtMatrixLayoutDestroy(static_cast<cublasLtMatrixLayout_t>(a_desc_));
  if (b_desc_) cublasLtMatrixLayoutDestroy(static_cast<cublasLtMatrixLayout_t>(b_desc_));
  if (c_desc_) cublasLtMatrixLayoutDestroy(static_cast<cublasLtMatrixLayout_t>(c_desc_));
  if (op_desc_) cublasLtMatmulDescDestroy(static_cast<cublasLtMatmulDesc_t>(op_desc_));
}

bool GemmPlan::has_algorithm() const {
  std::lock_guard<std::mutex> lk(mu_);
  return algo_ != nullptr;
}

bool GemmPlan::epilogue_in_product() const {
  std::lock_guard<std::mutex> lk(mu_);
  return !epilogue_dropped_;
}

Status GemmPlan::drop_epilogue() const {
  std::lock_guard<std::mutex> lk(mu_);
  return without_epilogue();
}

Status GemmPlan::without_epilogue() const {
  const cublasLtEpilogue_t none = CUBLASLT_EPILOGUE_DEFAULT;
  MS_LT(cublasLtMatmulDescSetAttribute(static_cast<cublasLtMatmulDesc_t>(op_desc_), CUBLASLT_MATMUL_DESC_EPILOGUE,
                                       &none, sizeof(none)),
        "epilogue");
  epilogue_dropped_ = true;
  return Status::OK();
}

// The heuristic's first choice for this shape within the context's workspace; once per plan
// (kernels keep plans per shape, so once per shape), never an exhaustive search. Where it has
// none with the epilogue (a combination of types cuBLASLt fuses no bias for), the plan goes on
// without the epilogue and the caller applies it.
Status GemmPlan::choose_algorithm(CudaContext& ctx) const {
  Status st = heuristic(ctx);
  if (st.ok() || shape_.epilogue == Epilogue::kNone || epilogue_dropped_) return st;
  MS_RETURN_IF_ERROR(without_epilogue());
  return heuristic(ctx);
}

Status GemmPlan::heuristic(CudaContext& ctx) const {
  cublasLtMatmulPreference_t pref = nullptr;
  MS_LT(cublasLtMatmulPreferenceCreate(&pref), "preference");
  const uint64_t ws = ctx.blas_workspace_bytes();
  cublasStatus_t st =
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulAlgoGetHeuristic(
        static_cast<cublasLtHandle_t>(ctx.cublaslt()), static_cast<cublasLtMatmulDesc_t>(op_desc_),
        static_cast<cublasLtMatrixLayout_t>(a_desc_), static_cast<cublasLtMatrixLayout_t>(b_desc_),
        static_cast<cublasLtMatrixLayout_t>(c_desc_), static_cast<cublasLtMatrixLayout_t>(c_desc_), pref, 1, &result,
        &found);
  cublasLtMatmulPreferenceDestroy(pref);
  MS_LT(st, "heuristic for " + shape_.str());
  if (found < 1) return Internal("cuBLASLt has no algorithm for " + shape_.str());
  algo_.reset(new char[sizeof(cublasLtMatmulAlgo_t)]);
  std::memcpy(algo_.get(), &result.algo, sizeof(result.algo));
  return Status::OK();
}

Status GemmPlan::run(CudaContext& ctx, const void* a, const void* b, const float* bias, float* c) const {
  if (has_bias(shape_.epilogue) && !bias) return Internal("a bias epilogue without a bias for " + shape_.str());
  // The bias pointer is an attribute of the shared descriptor: set and launch under the lock.
  // cuBLASLt reads the descriptor when the call is made, not when the kernel runs.
  std::lock_guard<std::mutex> lk(mu_);
  if (!algo_) MS_RETURN_IF_ERROR(choose_algorithm(ctx));
  auto op = static_cast<cublasLtMatmulDesc_t>(op_desc_);
  if (has_bias(shape_.epilogue) && !epilogue_dropped_)
    MS_LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), "bias");
  const auto* algo = reinterpret_cast<const cublasLtMatmulAlgo_t*>(algo_.get());
  auto cd = static_cast<cublasLtMatrixLayout_t>(c_desc_);
  MS_LT(cublasLtMatmul(static_cast<cublasLtHandle_t>(ctx.cublaslt()), op, &shape_.alpha, b,
                       static_cast<cublasLtMatrixLayout_t>(a_desc_), a, static_cast<cublasLtMatrixLayout_t>(b_desc_),
                       &shape_.beta, c, cd, c, cd, algo, ctx.blas_workspace(), ctx.blas_workspace_bytes(),
                       static_cast<cudaStream_t>(ctx.stream())),
        "matmul " + shape_.str());
  return Status::OK();
}

GemmPlan::Layout GemmPlan::layout(char operand) const {
  void* d = operand == 'A' ? a_desc_ : operand == 'B' ? b_desc_ : c_desc_;
  Layout l;
  size_t written = 0;
  auto desc = static_cast<cublasLtMatrixLayout_t>(d);
  cublasLtMatrixLayoutGetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_ROWS, &l.rows, sizeof(l.rows), &written);
  cublasLtMatrixLayoutGetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_COLS, &l.cols, sizeof(l.cols), &written);
  cublasLtMatrixLayoutGetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_LD, &l.ld, sizeof(l.ld), &written);
  cublasLtMatrixLayoutGetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &l.batch, sizeof(l.batch), &written);
  cublasLtMatrixLayoutGetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &l.batch_stride,
                                   sizeof(l.batch_stride), &written);
  uint32_t type = 0;
  cublasLtMatrixLayoutGetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_TYPE, &type, sizeof(type), &written);
  l.type = static_cast<int32_t>(type);
  return l;
}

bool GemmPlan::transposed(char operand) const {
  int32_t op = CUBLAS_OP_N;
  size_t written = 0;
  cublasLtMatmulDescGetAttribute(static_cast<cublasLtMatmulDesc_t>(op_desc_),
                                 operand == 'A' ? CUBLASLT_MATMUL_DESC_TRANSA : CUBLASLT_MATMUL_DESC_TRANSB, &op,
                                 sizeof(op), &written);
  return op == CUBLAS_OP_T;
}

int32_t GemmPlan::epilogue_code() const {
  uint32_t e = 0;
  size_t written = 0;
  cublasLtMatmulDescGetAttribute(static_cast<cublasLtMatmulDesc_t>(op_desc_), CUBLASLT_MATMUL_DESC_EPILOGUE, &e,
                                 sizeof(e), &written);
  return static_cast<int32_t>(e);
}

int32_t GemmPlan::compute_type() const {
  int32_t t = 0;
  size_t written = 0;
  cublasLtMatmulDescGetAttribute(static_cast<cublasLtMatmulDesc_t>(op_desc_), CUBLASLT_MATMUL_DESC_COMPUTE_TYPE, &t,
                                 sizeof(t), &written);
  return t;
}

}  // namespace mserve::gpu
