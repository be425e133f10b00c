// cuBLASLt matrix products for the CUDA kernels: row-major, batched, with bias / ReLU epilogues;
// operands float32, float16 or bfloat16, C (and the bias) float32, float32 accumulation. No CUDA
// headers here.
//
// Row-major C[m, n] = A[m, k] * B[k, n] is column-major C^T = B^T * A^T, so the plan describes
// the product to cuBLASLt with the operands swapped. Compute is CUBLAS_COMPUTE_32F (exact fp32,
// or fp32 accumulation of 16-bit operands on the tensor cores) unless TF32 is asked for. A GemmPlan holds the matmul
// descriptors and the algorithm cuBLASLt's heuristic chose for one shape; kernels create it at plan time (infer) and
// cache it per shape, so a run only launches. Descriptors work without a GPU; the heuristic needs one (plan() runs it
// on the first run when no device was there at plan time).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "gpu/options.h"

namespace mserve::gpu {

class CudaContext;

enum class Epilogue : uint8_t {
  kNone,      // C = alpha * op(A) op(B) + beta * C
  kRelu,      // relu(...)
  kBias,      // ... + bias[n] broadcast over rows
  kReluBias,  // relu(... + bias[n])
};

struct GemmShape {
  int64_t m = 0, n = 0, k = 0;                       // C is [m, n]; op(A) [m, k]; op(B) [k, n]
  bool trans_a = false;                              // A is stored [k, m] (row-major) and used transposed
  bool trans_b = false;                              // B is stored [n, k] and used transposed
  int64_t batch = 1;                                 // batched with the strides below (0: the operand is shared)
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // elements between batch entries
  int64_t lda = 0, ldb = 0, ldc = 0;                 // row strides in elements; 0: densely packed
  float alpha = 1.0f, beta = 0.0f;
  Epilogue epilogue = Epilogue::kNone;
  bool tf32 = false;                 // CUBLAS_COMPUTE_32F_FAST_TF32 instead of exact fp32 (float32 operands only)
  Operand operands = Operand::kF32;  // A's and B's element type

  std::string str() const;  // for messages: "gemm m=.. n=.. k=.. batch=.."
  bool operator==(const GemmShape& o) const;
};

// The descriptors (and, once a device has been seen, the heuristic's algorithm) for one shape.
class GemmPlan {
 public:
  // Validates the shape and builds the cuBLASLt descriptors (no device needed).
  static StatusOr<std::shared_ptr<GemmPlan>> create(const GemmShape& shape);
  ~GemmPlan();
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;

  const GemmShape& shape() const { return shape_; }
  // C = epilogue(alpha * op(A) op(B) + beta * C (+ bias)) on ctx's stream, using ctx's
  // workspace. Device pointers, A and B of the shape's operand type; bias is read only with a
  // bias epilogue.
  Status run(CudaContext& ctx, const void* a, const void* b, const float* bias, float* c) const;
  // Whether the heuristic has picked an algorithm yet (it needs a device and a handle).
  bool has_algorithm() const;
  // Whether run() applies the shape's bias / ReLU epilogue. False once the heuristic found no
  // algorithm with it for these types and the plan fell back to none (drop_epilogue): the caller
  // then adds the bias and applies the ReLU after the product.
  bool epilogue_in_product() const;
  // The fallback: the descriptor without its epilogue. Called by the heuristic's failure; public
  // for the tests.
  Status drop_epilogue() const;

  // For tests: the descriptors' view of the problem, read back through cuBLASLt's getters
  // (column-major terms: rows, cols and leading dimension of each of the swapped operands).
  struct Layout {
    uint64_t rows = 0, cols = 0;
    int64_t ld = 0;
    int32_t batch = 0;
    int64_t batch_stride = 0;
    int32_t type = 0;  // the cudaDataType_t of the elements
  };
  Layout layout(char operand) const;    // 'A', 'B' or 'C' of the cuBLASLt call (A = our B, B = our A)
  bool transposed(char operand) const;  // CUBLASLT_MATMUL_DESC_TRANSA / TRANSB ('A' / 'B') is OP_T
  int32_t epilogue_code() const;        // the cublasLtEpilogue_t set on the descriptor
  int32_t compute_type() const;         // the cublasComputeType_t of the descriptor

 private:
  explicit GemmPlan(const GemmShape& s) : shape_(s) {}
  // Under mu_.
  Status choose_algorithm(CudaContext& ctx) const;
  Status heuristic(CudaContext& ctx) const;
  Status without_epilogue() const;
  GemmShape shape_;
  void* op_desc_ = nullptr;  // cublasLtMatmulDesc_t
  void* a_desc_ = nullptr;   // cublasLtMatrixLayout_t of the cuBLASLt call's A (our B)
  void* b_desc_ = nullptr;   // ... its B (our A)
  void* c_desc_ = nullptr;
  mutable std::mutex mu_;
  mutable std::unique_ptr<char[]> algo_;  // cublasLtMatmulAlgo_t, once chosen
  mutable bool epilogue_dropped_ = false;
};

}  // namespace mserve::gpu
