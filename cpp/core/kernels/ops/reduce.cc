// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
// ReduceLogSum, ReduceLogSumExp, ReduceSumSquare; and ArgMax, ArgMin.
//
// Axes: an optional int64 input (the importer turns the `axes` attribute of ReduceSum before 13 and
// the others before 18 into it: onnx/normalize.h). No axes (input omitted or empty) reduces every
// axis, unless noop_with_empty_axes = 1, which reduces nothing. Negative axes count
// from the end. keepdims (default 1) keeps reduced axes as size 1.
// (noop_with_empty_axes still applies the op's map to each element: ReduceSumSquare squares.)
// Reducing an empty set gives the op's identity: 0 (Sum, L1, L2, SumSquare), 1 (Prod), the
// lowest value (Max: -inf, the type's minimum, false), the highest (Min), -inf (LogSum,
// LogSumExp); Mean of an empty set is NaN (0 for integers).
// Floats accumulate in double; integers in 64 bits (then wrap to the element type); L2, LogSum
// and LogSumExp of integers are computed in double and truncated.
//
// ArgMax/ArgMin: int64 index of the first (select_last_index = 1, opset 12+: last) extreme value
// along `axis` (default 0); keepdims as above.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

enum class RK { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

template <class T>
inline double to_d(T x) {
  if constexpr (std::is_same_v<T, Eigen::half>)
    return static_cast<double>(static_cast<float>(x));
  else
    return static_cast<double>(x);
}
template <class T>
inline T from_d(double v) {
  if constexpr (std::is_same_v<T, Eigen::half>)
    return Eigen::half(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

template <class T>
constexpr bool kIsFloat = !std::is_integral_v<T>;  // float, double, Eigen::half

struct LseAcc {
  double m = -std::numeric_limits<double>::infinity();
  double s = 0;
};

// One reduction kind over element type T: accumulator type A, its initial value, one step, and
// the final value from the accumulator and the number of reduced elements.
template <RK K, class T>
struct Red {
  static constexpr bool kViaDouble = kIsFloat<T> || K == RK::kL2 || K == RK::kLogSum || K == RK::kLogSumExp;
  static constexpr bool kMinMax = K == RK::kMax || K == RK::kMin;
  using Wide = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
  using A = std::conditional_t<K == RK::kLogSumExp, LseAcc,
                               std::conditional_t<kMinMax, std::conditional_t<kIsFloat<T>, double, T>,
                                                  std::conditional_t<kViaDouble, double, Wide>>>;

  static A init() {
    if constexpr (K == RK::kLogSumExp) {
      return LseAcc{};
    } else if constexpr (K == RK::kProd) {
      return A(1);
    } else if constexpr (K == RK::kMax) {
      if constexpr (kIsFloat<T>)
        return -std::numeric_limits<double>::infinity();
      else
        return std::numeric_limits<T>::lowest();
    } else if constexpr (K == RK::kMin) {
      if constexpr (kIsFloat<T>)
        return std::numeric_limits<double>::infinity();
      else
        return std::numeric_limits<T>::max();
    } else {
      return A(0);
    }
  }

  static void step(A& a, T x) {
    if constexpr (K == RK::kLogSumExp) {
      const double v = to_d(x);
      if (v == -std::numeric_limits<double>::infinity()) return;  // adds exp(-inf) = 0
      if (v > a.m) {
        a.s = a.s * std::exp(a.m - v) + 1;
        a.m = v;
      } else {
        a.s += std::exp(v - a.m);
      }
    } else if constexpr (kMinMax) {
      if constexpr (kIsFloat<T>) {
        const double v = to_d(x);
        // NaN propagates.
        if (K == RK::kMax ? (v > a || v != v) : (v < a || v != v)) a = v;
      } else {
        if (K == RK::kMax ? (x > a) : (x < a)) a = x;
      }
    } else {
      A v;
      if constexpr (kViaDouble)
        v = to_d(x);
      else
        v = static_cast<A>(x);
      if constexpr (K == RK::kSum || K == RK::kMean || K == RK::kLogSum) a += v;
      if constexpr (K == RK::kProd) a *= v;
      if constexpr (K == RK::kL1) a += v < 0 ? A(0) - v : v;
      if constexpr (K == RK::kL2 || K == RK::kSumSquare) a += v * v;
    }
  }

  static T fin(const A& a, int64_t n) {
    if constexpr (K == RK::kLogSumExp) {
      if (a.s == 0) return from_d<T>(-std::numeric_limits<double>::infinity());
      return from_d<T>(a.m + std::log(a.s));
    } else if constexpr (kMinMax) {
      if constexpr (kIsFloat<T>)
        return from_d<T>(a);
      else
        return a;
    } else if constexpr (K == RK::kMean) {
      if constexpr (kViaDouble)
        return from_d<T>(a / static_cast<double>(n));
      else
        return n == 0 ? T(0) : static_cast<T>(a / static_cast<A>(n));
    } else if constexpr (K == RK::kL2) {
      return from_d<T>(std::sqrt(a));
    } else if constexpr (K == RK::kLogSum) {
      return from_d<T>(std::log(a));
    } else {
      if constexpr (kViaDouble)
        return from_d<T>(a);
      else
        return static_cast<T>(a);
    }
  }
};

// The input shape as runs of kept / reduced dims: size-1 dims dropped, neighbours of the same
// kind merged. Kept runs give the output index, reduced runs the elements of one reduction.
struct Plan {
  int nk = 0, nr = 0;
  int64_t ks[Shape::kMaxRank], kst[Shape::kMaxRank];  // kept sizes, input strides
  int64_t rs[Shape::kMaxRank], rst[Shape::kMaxRank];  // reduced sizes, input strides
  bool last_kept = true;                              // the innermost run is kept
  int64_t out_n = 1, red_n = 1;
};

Plan make_plan(const Shape& s, uint32_t mask) {
  int64_t sz[Shape::kMaxRank];
  bool red[Shape::kMaxRank];
  int n = 0;
  Plan p;
  for (int d = 0; d < s.rank(); ++d) {
    const bool r = (mask >> d) & 1u;
    if (r)
      p.red_n *= s[d];
    else
      p.out_n *= s[d];
    if (s[d] == 1) continue;
    if (n > 0 && red[n - 1] == r) {
      sz[n - 1] *= s[d];
    } else {
      sz[n] = s[d];
      red[n] = r;
      ++n;
    }
  }
  int64_t stride = 1;
  // Fill from the innermost run outwards, then reverse each list.
  for (int i = n - 1; i >= 0; --i) {
    if (red[i]) {
      p.rs[p.nr] = sz[i];
      p.rst[p.nr++] = stride;
    } else {
      p.ks[p.nk] = sz[i];
      p.kst[p.nk++] = stride;
    }
    stride *= sz[i];
  }
  std::reverse(p.rs, p.rs + p.nr);
  std::reverse(p.rst, p.rst + p.nr);
  std::reverse(p.ks, p.ks + p.nk);
  std::reverse(p.kst, p.kst + p.nk);
  p.last_kept = n == 0 || !red[n - 1];
  return p;
}

// Input offset of element `idx` of the index space given by sizes/strides (row-major).
inline int64_t offset_of(int64_t idx, int n, const int64_t* sizes, const int64_t* strides) {
  int64_t off = 0;
  for (int d = n - 1; d >= 0; --d) {
    off += (idx % sizes[d]) * strides[d];
    idx /= sizes[d];
  }
  return off;
}

template <RK K, class T>
void reduce(const ComputeContext& ctx, const Plan& p, const T* x, T* y) {
  using R = Red<K, T>;
  using A = typename R::A;
  const int64_t out_n = p.out_n, red_n = p.red_n;
  if (out_n == 0) return;
  if (red_n == 0) {
    const T v = R::fin(R::init(), 0);
    std::fill(y, y + out_n, v);
    return;
  }
  if (!p.last_kept) {
    // Each output reduces runs along the contiguous innermost reduced dim.
    const int64_t inner = p.rs[p.nr - 1], runs = red_n / inner;
    ctx.pool().parallel_for(out_n, std::max<int64_t>(1, 16384 / red_n), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const T* xo = x + offset_of(o, p.nk, p.ks, p.kst);
        A a = R::init();
        for (int64_t q = 0; q < runs; ++q) {
          const T* xr = xo + offset_of(q, p.nr - 1, p.rs, p.rst);
          for (int64_t i = 0; i < inner; ++i) R::step(a, xr[i]);
        }
        y[o] = R::fin(a, red_n);
      }
    });
    return;
  }
  // The innermost run is kept: accumulate whole output rows (contiguous in x and y) at once.
  const int64_t row = p.nk ? p.ks[p.nk - 1] : 1, rows = out_n / row;
  A* acc = static_cast<A*>(ctx.workspace());
  ctx.pool().parallel_for(rows, std::max<int64_t>(1, 16384 / (red_n * row)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xo = x + (p.nk ? offset_of(r, p.nk - 1, p.ks, p.kst) : 0);
      A* ar = acc + r * row;
      for (int64_t i = 0; i < row; ++i) ar[i] = R::init();
      for (int64_t q = 0; q < red_n; ++q) {
        const T* xr = xo + offset_of(q, p.nr, p.rs, p.rst);
        for (int64_t i = 0; i < row; ++i) R::step(ar[i], xr[i]);
      }
      T* yr = y + r * row;
      for (int64_t i = 0; i < row; ++i) yr[i] = R::fin(ar[i], red_n);
    }
  });
}

template <RK K>
constexpr size_t acc_size() {
  return K == RK::kLogSumExp ? sizeof(LseAcc) : 8;
}

template <RK K>
class ReduceKernel final : public Kernel {
 public:
  explicit ReduceKernel(const Node& n)
      : keepdims_(n.attr_int("keepdims", 1) != 0), noop_(n.attr_int("noop_with_empty_axes", 0) != 0) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "missing input data");
    const DType t = ctx.dtype(0);
    const bool ok = t == DType::kBool ? (K == RK::kMax || K == RK::kMin) : t != DType::kUndefined;
    if (!ok) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const Shape& s = ctx.shape(0);
    if (ctx.has_input(1) && !ctx.value(1)) return ctx.need_value();
    MS_ASSIGN_OR_RETURN(uint32_t mask, axes_mask(ctx.value(1), s.rank()));
    Shape out;
    for (int d = 0; d < s.rank(); ++d) {
      if (!((mask >> d) & 1u))
        out.push_back(s[d]);
      else if (keepdims_)
        out.push_back(1);
    }
    const Plan p = make_plan(s, mask);
    if (p.last_kept && p.red_n > 0) ctx.set_workspace(static_cast<size_t>(p.out_n) * acc_size<K>());
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    auto mask = axes_mask(ctx.has_input(1) ? &ctx.input(1) : nullptr, x.rank());
    if (!mask.ok()) return mask.status();
    const Plan p = make_plan(x.shape(), mask.value());
    Tensor& y = ctx.output(0);
    if (x.dtype() == DType::kBool) {
      if constexpr (K == RK::kMax || K == RK::kMin) reduce<K, bool>(ctx, p, x.data<bool>(), y.data<bool>());
      return Status::OK();
    }
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x.dtype())),
                      reduce<K, T>(ctx, p, x.data<T>(), y.data<T>()));
    return Status::OK();
  }

 private:
  // Bit d set when axis d is reduced. `axes` is the axes input (null when omitted). With
  // noop_with_empty_axes and no axes nothing is reduced: the op still maps each element alone
  // (ReduceL1 gives |x|, ReduceLogSum log(x), ...), as ONNX Runtime and onnx.reference do.
  StatusOr<uint32_t> axes_mask(const Tensor* axes, int rank) const {
    const uint32_t all = rank >= 32 ? ~0u : ((1u << rank) - 1u);
    uint32_t mask = 0;
    auto add = [&](int64_t a) -> Status {
      if (a < -rank || a >= rank)
        return InvalidArgument("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
      mask |= 1u << (a < 0 ? a + rank : a);
      return Status::OK();
    };
    if (axes) {
      if (axes->dtype() != DType::kInt64 && axes->dtype() != DType::kInt32)
        return InvalidArgument("axes must be an int64 tensor");
      if (axes->rank() > 1) return InvalidArgument("axes must be 1-D");
      for (int64_t i = 0; i < axes->numel(); ++i) MS_RETURN_IF_ERROR(add(axes->int_at(i)));
    }
    if (!axes || axes->numel() == 0) return noop_ ? 0u : all;
    return mask;
  }

  bool keepdims_, noop_;
};

template <RK K>
StatusOr<KernelPtr> make_reduce(const Node& n) {
  return KernelPtr(new ReduceKernel<K>(n));
}

// ArgMax / ArgMin.
template <bool kMax>
class ArgKernel final : public Kernel {
 public:
  explicit ArgKernel(const Node& n)
      : axis_(n.attr_int("axis", 0)),
        keepdims_(n.attr_int("keepdims", 1) != 0),
        last_(n.opset >= 12 && n.attr_int("select_last_index", 0) != 0) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "missing input data");
    const DType t = ctx.dtype(0);
    if (t == DType::kBool || t == DType::kUndefined)
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const Shape& s = ctx.shape(0);
    MS_ASSIGN_OR_RETURN(int a, normalize_axis(axis_, s.rank()));
    MS_CHECK_ARG(s[a] > 0, "cannot take the arg" + std::string(kMax ? "max" : "min") + " of an empty axis: " + s.str());
    Shape out = s;
    if (keepdims_)
      out[a] = 1;
    else
      out.erase(a);
    ctx.set_output(0, DType::kInt64, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x.dtype())), run<T>(ctx, x));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx, const Tensor& xt) const {
    const Shape& s = xt.shape();
    const int a = normalize_axis(axis_, s.rank()).value();
    const int64_t outer = s.prod(0, a), len = s[a], inner = s.prod(a + 1, s.rank());
    const T* x = xt.data<T>();
    int64_t* y = ctx.output(0).data<int64_t>();
    ctx.pool().parallel_for(outer * inner, std::max<int64_t>(1, 16384 / len), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xi = x + (r / inner) * len * inner + r % inner;
        double best = to_d(xi[0]);
        int64_t bi = 0;
        for (int64_t i = 1; i < len; ++i) {
          const double v = to_d(xi[i * inner]);
          const bool better = kMax ? (last_ ? v >= best : v > best) : (last_ ? v <= best : v < best);
          if (better) {
            best = v;
            bi = i;
          }
        }
        y[r] = bi;
      }
    });
  }

  int64_t axis_;
  bool keepdims_, last_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_ReduceSum(const Node& n, const KernelInit&) { return make_reduce<RK::kSum>(n); }
StatusOr<KernelPtr> create_onnx_ReduceMean(const Node& n, const KernelInit&) { return make_reduce<RK::kMean>(n); }
StatusOr<KernelPtr> create_onnx_ReduceMax(const Node& n, const KernelInit&) { return make_reduce<RK::kMax>(n); }
StatusOr<KernelPtr> create_onnx_ReduceMin(const Node& n, const KernelInit&) { return make_reduce<RK::kMin>(n); }
StatusOr<KernelPtr> create_onnx_ReduceProd(const Node& n, const KernelInit&) { return make_reduce<RK::kProd>(n); }
StatusOr<KernelPtr> create_onnx_ReduceL1(const Node& n, const KernelInit&) { return make_reduce<RK::kL1>(n); }
StatusOr<KernelPtr> create_onnx_ReduceL2(const Node& n, const KernelInit&) { return make_reduce<RK::kL2>(n); }
StatusOr<KernelPtr> create_onnx_ReduceLogSum(const Node& n, const KernelInit&) { return make_reduce<RK::kLogSum>(n); }
StatusOr<KernelPtr> create_onnx_ReduceLogSumExp(const Node& n, const KernelInit&) {
  return make_reduce<RK::kLogSumExp>(n);
}
StatusOr<KernelPtr> create_onnx_ReduceSumSquare(const Node& n, const KernelInit&) {
  return make_reduce<RK::kSumSquare>(n);
}
StatusOr<KernelPtr> create_onnx_ArgMax(const Node& n, const KernelInit&) { return KernelPtr(new ArgKernel<true>(n)); }
StatusOr<KernelPtr> create_onnx_ArgMin(const Node& n, const KernelInit&) { return KernelPtr(new ArgKernel<false>(n)); }

}  // namespace mserve
