// Element-wise kernels on the GPU (ops/elementwise.cu): broadcast binary arithmetic, comparisons
// and logic, Where, unary float math and Clip, Cast. Callable from host code compiled by g++ (no
// CUDA headers here).
//
// Pointers are device pointers; `stream` is a cudaStream_t (null: the legacy default stream).
// Each function returns the launch's cudaError_t as an int (0: queued); nothing is launched for
// an empty output.
#pragma once
#include <cstddef>
#include <cstdint>

#include "gpu/ops/elementwise_math.h"

namespace mserve::gpu {

// out = op(a, b) under `plan`. t is the inputs' and the output's type: kFloat32 for every op;
// kInt32 and kInt64 for every op but kPow. c is kAddDiv's divisor (converted to t).
int launch_arith(ArithOp op, ElemType t, const BroadcastPlan<2>& plan, const void* a, const void* b, void* out,
                 double c, void* stream);

// out = op(a, b) under `plan`, a bool tensor; t is the inputs' type (any ElemType but kFloat64).
int launch_compare(CompareOp op, ElemType t, const BroadcastPlan<2>& plan, const void* a, const void* b, bool* out,
                   void* stream);

// out = op(a, b) under `plan`, over bools.
int launch_logic(LogicOp op, const BroadcastPlan<2>& plan, const bool* a, const bool* b, bool* out, void* stream);

// out = cond ? x : y under `plan` (inputs in that order). The elements are moved as words of
// elem_bytes (1, 2, 4 or 8) bytes; any other size is cudaErrorInvalidValue.
int launch_where(const BroadcastPlan<3>& plan, const bool* cond, const void* x, const void* y, void* out,
                 int elem_bytes, void* stream);

// y[i] = unary(op, x[i], lo, hi) for i < n; x and y may be equal. lo and hi matter for kClip only.
int launch_unary(UnaryOp op, const float* x, float* y, int64_t n, float lo, float hi, void* stream);

// y[i] = !x[i] for i < n.
int launch_not(const bool* x, bool* y, int64_t n, void* stream);

// y[i] = cast_value<to, from>(x[i]) for i < n; from == to copies the bytes.
int launch_cast(ElemType from, ElemType to, const void* x, void* y, int64_t n, void* stream);

// Copies `bytes` bytes between device buffers, on the stream.
int launch_copy(const void* x, void* y, size_t bytes, void* stream);

}  // namespace mserve::gpu
