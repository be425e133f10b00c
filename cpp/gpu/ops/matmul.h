// MatMul, Gemm and com.mserve FusedMatMul on cuBLASLt: how an ONNX product's shapes map onto one
// (strided-batched) GemmPlan. Host code only; tested without a GPU.
#pragma once
#include "core/tensor/shape.h"
#include "gpu/lib/blas.h"

namespace mserve::gpu {

// The GemmShape of numpy-style matmul of A and B (1-D operands promoted; transposes of the last
// two axes when ta / tb): B without batch folds A's batch into rows; equal batches, or one side
// without batch, run strided-batched. Unsupported for other batch broadcasting.
StatusOr<GemmShape> matmul_gemm_shape(const Shape& a, const Shape& b, bool ta, bool tb);

}  // namespace mserve::gpu
