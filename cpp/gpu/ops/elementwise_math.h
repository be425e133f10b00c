// The element-wise kernels' arithmetic (ops/elementwise.cu), as MS_HD code that nvcc builds for
// the GPU and g++ builds for tests/cpp/gpu, which compare it with the CPU kernels:
//   - the per-element functions, each written to give what the CPU kernel gives for the same
//     inputs (kernels/ops/elementwise.cc, unary.cc, compare.cc, cast.cc, activation.cc), NaN,
//     signed zeros and integer wrap-around included;
//   - numpy broadcasting as index arithmetic: a BroadcastPlan (per-input strides, 0 along
//     broadcast axes, over the output's dimensions with size-1 dims dropped and runs that every
//     input walks alike merged, as kernels/broadcast.h does) and the input offsets of an output
//     index.
// No CUDA headers: the host build uses libm where the device build uses CUDA's math library.
#pragma once
#include <math.h>

#include <cstdint>
#include <type_traits>

#include "gpu/ops/host_device.h"

// Loops over a compile-time bound that the device code wants unrolled, so that the plan's arrays
// (kernel parameters) are read at constant offsets instead of being copied to local memory.
#if defined(__CUDA_ARCH__)
#define MS_EW_UNROLL _Pragma("unroll")
#else
#define MS_EW_UNROLL
#endif

namespace mserve::gpu {

// Shape::kMaxRank (elementwise.cc checks that they agree).
constexpr int kMaxBroadcastRank = 8;

// ---- Broadcasting -----------------------------------------------------------------------------

// How K inputs broadcast to one output of n elements. dims (rank of them) are the output's
// dimensions after merging; strides[k][d] is input k's step along dims[d] in elements (0 where it
// is broadcast). flat: every input has n elements or one, so input k's offset for output element
// i is i * step[k] (step 1 or 0), the kernels' fast path.
template <int K>
struct BroadcastPlan {
  int64_t n = 0;
  int rank = 0;
  bool flat = true;
  int64_t step[K] = {};
  int64_t dims[kMaxBroadcastRank] = {};
  int64_t strides[K][kMaxBroadcastRank] = {};
};

// Fills *plan for inputs of ranks in_rank[k] and dimensions in_dims[k][0 .. in_rank[k]) broadcast
// to an output of out_rank dimensions out_dims. False when a rank is above kMaxBroadcastRank, an
// input has more dimensions than the output, a dimension is negative, or an input dimension is
// neither 1 nor the output's (numpy's rules, aligned on the last dimension).
template <int K>
MS_HD bool plan_broadcast(const int64_t* const* in_dims, const int* in_rank, const int64_t* out_dims, int out_rank,
                          BroadcastPlan<K>* plan) {
  BroadcastPlan<K>& p = *plan;
  p = BroadcastPlan<K>();
  if (out_rank < 0 || out_rank > kMaxBroadcastRank) return false;
  int64_t n = 1;
  for (int d = 0; d < out_rank; ++d) {
    if (out_dims[d] < 0) return false;
    n *= out_dims[d];
  }
  p.n = n;
  // Full strides of each input over the output's dimensions.
  int64_t full[K][kMaxBroadcastRank];
  for (int k = 0; k < K; ++k) {
    const int r = in_rank[k];
    if (r < 0 || r > out_rank) return false;
    int64_t count = 1;
    for (int d = out_rank - 1; d >= 0; --d) {
      const int j = d - (out_rank - r);  // the input's own dimension, when it has one
      const int64_t dim = j >= 0 ? in_dims[k][j] : 1;
      if (dim < 0 || (dim != 1 && dim != out_dims[d])) return false;
      full[k][d] = dim == 1 ? 0 : count;
      count *= dim;
    }
    p.step[k] = count == 1 ? 0 : 1;
    p.flat = p.flat && (count == n || count == 1);
  }
  // Merge: skip size-1 output dims; join dim d to the previous kept one when every input steps
  // across the boundary as if the two were one dimension (both dense, or both broadcast).
  int m = 0;
  for (int d = 0; d < out_rank; ++d) {
    if (out_dims[d] == 1) continue;
    bool merge = m > 0;
    for (int k = 0; k < K && merge; ++k) merge = p.strides[k][m - 1] == full[k][d] * out_dims[d];
    if (merge) {
      p.dims[m - 1] *= out_dims[d];
    } else {
      p.dims[m] = out_dims[d];
      ++m;
    }
    for (int k = 0; k < K; ++k) p.strides[k][m - 1] = full[k][d];
  }
  p.rank = m;
  return true;
}

// plan_broadcast for shapes of any type with rank() and operator[] (Shape): host code.
template <int K, class S>
inline bool plan_broadcast_shapes(const S* const (&in)[K], const S& out, BroadcastPlan<K>* plan) {
  int64_t dims[K][kMaxBroadcastRank] = {};
  const int64_t* rows[K];
  int ranks[K];
  for (int k = 0; k < K; ++k) {
    ranks[k] = in[k]->rank();
    if (ranks[k] > kMaxBroadcastRank) return false;
    for (int d = 0; d < ranks[k]; ++d) dims[k][d] = (*in[k])[d];
    rows[k] = dims[k];
  }
  if (out.rank() > kMaxBroadcastRank) return false;
  int64_t out_dims[kMaxBroadcastRank] = {};
  for (int d = 0; d < out.rank(); ++d) out_dims[d] = out[d];
  return plan_broadcast<K>(rows, ranks, out_dims, out.rank(), plan);
}

// Input offsets of output element i under a plan (its general path: valid whether or not the
// plan is flat). I is the index type: uint32_t where the output has fewer than 2^31 elements
// (every input offset is then below that too), since 64-bit division is several times slower on
// the GPU, else uint64_t.
template <int K, class I>
MS_HD void broadcast_offsets(const BroadcastPlan<K>& p, I i, I* off) {
  MS_EW_UNROLL
  for (int k = 0; k < K; ++k) off[k] = 0;
  MS_EW_UNROLL
  for (int d = kMaxBroadcastRank - 1; d >= 0; --d) {
    if (d >= p.rank) continue;
    const I dim = static_cast<I>(p.dims[d]);
    const I idx = i % dim;
    i /= dim;
    MS_EW_UNROLL
    for (int k = 0; k < K; ++k) off[k] += idx * static_cast<I>(p.strides[k][d]);
  }
}

// Output elements per launch below which the kernels index in 32 bits: well under 2^32, so a
// thread's index plus the grid's stride never wraps.
constexpr int64_t kIndex32Limit = int64_t{1} << 31;

// ---- Element types ---------------------------------------------------------------------------

// The element types the kernels are built for (elementwise.cc maps DType onto these).
enum class ElemType : int { kFloat32, kFloat64, kInt32, kInt64, kBool };

// ---- Binary arithmetic (Add, Sub, Mul, Div, Pow, Max, Min, PRelu, Sum and Mean folds) ---------

enum class ArithOp : int {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMax,
  kMin,
  kPRelu,   // a < 0 ? a * b : a (a is X, b the slope)
  kAddDiv,  // (a + b) / c: the last step of Mean, which the CPU divides after summing
};

// Integer +, -, * wrap as two's complement (the CPU's loops wrap in practice; unsigned arithmetic
// makes it defined here).
template <class T>
MS_HD T wrap_add(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
}
template <class T>
MS_HD T wrap_sub(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(a) - static_cast<U>(b)));
}
template <class T>
MS_HD T wrap_mul(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
}

// Integer division truncating toward zero, as C++ (and the CPU kernel) does. The divisor is never
// 0 on the GPU (the kernel runs only divisors known at plan time to have no zero); 0 is answered
// with 0 so that the host build never traps. MIN / -1 wraps to MIN instead of trapping.
template <class T>
MS_HD T int_div(T a, T b) {
  if (b == 0) return 0;
  if (b == -1) return wrap_sub(T(0), a);
  return static_cast<T>(a / b);
}

template <class T>
MS_HD T arith(ArithOp op, T a, T b, T c) {
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case ArithOp::kAdd: return a + b;
      case ArithOp::kSub: return a - b;
      case ArithOp::kMul: return a * b;
      case ArithOp::kDiv: return a / b;
      case ArithOp::kPow:
        if constexpr (std::is_same_v<T, float>)
          return powf(a, b);
        else
          return pow(a, b);
      // NaN propagates; otherwise the CPU's comparison order, which also fixes max(-0, +0) = -0.
      case ArithOp::kMax:
        if (a != a) return a;
        if (b != b) return b;
        return a < b ? b : a;
      case ArithOp::kMin:
        if (a != a) return a;
        if (b != b) return b;
        return b < a ? b : a;
      case ArithOp::kPRelu: return a < T(0) ? a * b : a;
      case ArithOp::kAddDiv: {
        const T s = a + b;  // rounded before the division, as the CPU's two passes round it
        return s / c;
      }
    }
    return a;
  } else {
    switch (op) {
      case ArithOp::kAdd: return wrap_add(a, b);
      case ArithOp::kSub: return wrap_sub(a, b);
      case ArithOp::kMul: return wrap_mul(a, b);
      case ArithOp::kDiv: return int_div(a, b);
      case ArithOp::kMax: return a < b ? b : a;
      case ArithOp::kMin: return b < a ? b : a;
      case ArithOp::kPRelu: return a < T(0) ? wrap_mul(a, b) : a;
      case ArithOp::kAddDiv: return int_div(wrap_add(a, b), c);
      case ArithOp::kPow: break;  // integer Pow is refused at plan time
    }
    return a;
  }
}

template <class T>
struct ArithFn {
  ArithOp op;
  T c;  // kAddDiv's divisor
  MS_HD T operator()(T a, T b) const { return arith(op, a, b, c); }
};

// ---- Comparisons and logic --------------------------------------------------------------------

enum class CompareOp : int { kEqual, kLess, kGreater, kLessOrEqual, kGreaterOrEqual };

// Every comparison with NaN is false (IEEE), as on the CPU.
template <class T>
MS_HD bool compare(CompareOp op, T a, T b) {
  switch (op) {
    case CompareOp::kEqual: return a == b;
    case CompareOp::kLess: return a < b;
    case CompareOp::kGreater: return b < a;
    case CompareOp::kLessOrEqual: return a <= b;
    case CompareOp::kGreaterOrEqual: return b <= a;
  }
  return false;
}

template <class T>
struct CompareFn {
  CompareOp op;
  MS_HD bool operator()(T a, T b) const { return compare(op, a, b); }
};

enum class LogicOp : int { kAnd, kOr, kXor };

MS_HD bool logic(LogicOp op, bool a, bool b) {
  switch (op) {
    case LogicOp::kAnd: return a && b;
    case LogicOp::kOr: return a || b;
    case LogicOp::kXor: return a != b;
  }
  return false;
}

struct LogicFn {
  LogicOp op;
  MS_HD bool operator()(bool a, bool b) const { return logic(op, a, b); }
};

// ---- Unary float math (and Clip) ---------------------------------------------------------------

enum class UnaryOp : int {
  kNeg,
  kAbs,
  kSqrt,
  kExp,
  kLog,
  kErf,
  kReciprocal,
  kFloor,
  kCeil,
  kRound,  // half to even, as the CPU's rint
  kSign,   // NaN and ±0 pass through, as on the CPU (numpy's sign)
  kClip,   // min(max(x, lo), hi) in the CPU's order: lo first, so lo > hi gives hi; NaN stays NaN
};

MS_HD float unary(UnaryOp op, float x, float lo, float hi) {
  switch (op) {
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kAbs: return fabsf(x);
    case UnaryOp::kSqrt: return sqrtf(x);
    case UnaryOp::kExp: return expf(x);
    case UnaryOp::kLog: return logf(x);
    case UnaryOp::kErf: return erff(x);
    case UnaryOp::kReciprocal: return 1.0f / x;
    case UnaryOp::kFloor: return floorf(x);
    case UnaryOp::kCeil: return ceilf(x);
    case UnaryOp::kRound: return rintf(x);
    case UnaryOp::kSign: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);
    case UnaryOp::kClip: {
      const float v = x < lo ? lo : x;
      return v > hi ? hi : v;
    }
  }
  return x;
}

// ---- Cast -------------------------------------------------------------------------------------

// static_cast, as the CPU's Cast, with its undefined cases pinned down: a float that is NaN or
// whose truncation does not fit the integer gives the integer's minimum, what x86's truncating
// conversions (and so the CPU kernel on x86) give; ONNX leaves these values unspecified, and the
// GPU's own conversion would saturate instead. bool targets test != 0 (NaN is true); bool sources
// are 1 or 0.
template <class To, class From>
MS_HD To cast_value(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_same_v<From, bool>) {
    return static_cast<To>(v ? 1 : 0);
  } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    using U = std::make_unsigned_t<To>;
    constexpr int kBits = static_cast<int>(sizeof(To) * 8);
    const To lowest = static_cast<To>(static_cast<U>(U(1) << (kBits - 1)));
    // 2^(bits-1) is a power of two, exact in every float type.
    const From hi = static_cast<From>(static_cast<double>(uint64_t{1} << (kBits - 1)));
    const From lo = -hi;
    // In range when the truncation lies in [lo, hi): v >= lo, or v in (lo - 1, lo) where the
    // type resolves that interval (double for 32-bit targets). NaN fails every comparison.
    const bool fits = v < hi && (v >= lo || v > lo - From(1));
    return fits ? static_cast<To>(v) : lowest;
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace mserve::gpu
