// Cast's element conversion, shared with CastLike (and any kernel that converts dtypes).
#pragma once
#include "core/kernels/kernel.h"
#include "core/tensor/lowbit.h"

namespace mserve {

// The runtime dtype for an ONNX TensorProto.DataType number; Unsupported names the type.
StatusOr<DType> dtype_from_onnx(int64_t to);

// Converts every element of `in` into `out` (same element count; out's dtype) with Cast's rules:
// float to integer truncates toward zero, nonzero to bool is true, float16 goes through float;
// numbers print to and parse from strings as ONNX Runtime does (see cast.cc). Same dtypes copy.
// Never allocates, except the strings' own storage.
Status cast_tensor(const Tensor& in, Tensor& out, ThreadPool& pool);
// A new tensor holding `in` converted to `to` (load-time use: one thread).
StatusOr<Tensor> cast_copy(const Tensor& in, DType to);
// The same, with Cast's `saturate` and `round_mode` for the narrow float types.
Status cast_tensor(const Tensor& in, Tensor& out, const LowBitCast& opt, ThreadPool& pool);

}  // namespace mserve
