// Add, Sub, Mul, Div with numpy multidirectional broadcasting (opset 7+; 6 and earlier used a
// `broadcast` attribute and are not supported). Every numeric dtype; integer Div truncates
// toward zero, as C++ does (and ONNX Runtime); integer division by zero is an error.
#include <algorithm>

#include "core/exec/thread_pool.h"
#include "core/kernels/common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

enum class BinOp { kAdd, kSub, kMul, kDiv };

template <BinOp OP, class T>
inline T apply(T a, T b) {
  if constexpr (OP == BinOp::kAdd) return static_cast<T>(a + b);
  if constexpr (OP == BinOp::kSub) return static_cast<T>(a - b);
  if constexpr (OP == BinOp::kMul) return static_cast<T>(a * b);
  if constexpr (OP == BinOp::kDiv) return static_cast<T>(a / b);
}

// out[i] = a[i*sa] op b[i*sb] over a run of n elements.
template <BinOp OP, class T>
inline void run_row(const T* a, int64_t sa, const T* b, int64_t sb, T* out, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = apply<OP>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const T y = b[0];
    for (int64_t i = 0; i < n; ++i) out[i] = apply<OP>(a[i], y);
  } else if (sa == 0 && sb == 1) {
    const T x = a[0];
    for (int64_t i = 0; i < n; ++i) out[i] = apply<OP>(x, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = apply<OP>(a[i * sa], b[i * sb]);
  }
}

template <BinOp OP, class T>
void binary(const Tensor& ta, const Tensor& tb, Tensor& tout, ThreadPool& pool) {
  const Shape& os = tout.shape();
  const T* a = ta.data<T>();
  const T* b = tb.data<T>();
  T* out = tout.data<T>();
  const int64_t n = os.numel();
  if (n == 0) return;
  const int r = os.rank();
  int64_t sa[Shape::kMaxRank], sb[Shape::kMaxRank];
  broadcast_strides(ta.shape(), os, sa);
  broadcast_strides(tb.shape(), os, sb);
  // Rows are runs along the last dimension; collapse to one row when both inputs are either
  // full-size or a single scalar.
  const bool flat = (ta.numel() == n || ta.numel() == 1) && (tb.numel() == n || tb.numel() == 1);
  const int64_t row = flat ? n : (r ? os[r - 1] : 1);
  const int64_t rs_a = flat ? (ta.numel() == 1 ? 0 : 1) : (r ? sa[r - 1] : 0);
  const int64_t rs_b = flat ? (tb.numel() == 1 ? 0 : 1) : (r ? sb[r - 1] : 0);
  if (flat) {
    pool.parallel_for(n, 1 << 15, [&](int64_t s, int64_t e) {
      run_row<OP>(a + s * rs_a, rs_a, b + s * rs_b, rs_b, out + s, e - s);
    });
    return;
  }
  const int64_t rows = n / row;
  pool.parallel_for(rows, std::max<int64_t>(1, (1 << 15) / row), [&](int64_t s, int64_t e) {
    for (int64_t q = s; q < e; ++q) {
      // Offsets of row q in each input, from its multi-index over the leading dims.
      int64_t rem = q, oa = 0, ob = 0;
      for (int d = r - 2; d >= 0; --d) {
        int64_t idx = rem % os[d];
        rem /= os[d];
        oa += idx * sa[d];
        ob += idx * sb[d];
      }
      run_row<OP>(a + oa, rs_a, b + ob, rs_b, out + q * row, row);
    }
  });
}

template <BinOp OP>
class BinaryKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs two inputs");
    if (ctx.dtype(0) != ctx.dtype(1))
      return InvalidArgument(std::string("input dtypes differ: ") + dtype_name(ctx.dtype(0)) + " and " +
                             dtype_name(ctx.dtype(1)));
    if (ctx.dtype(0) == DType::kBool) return Unsupported("bool inputs are not supported");
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx.shape(0), ctx.shape(1)));
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    if constexpr (OP == BinOp::kDiv) {
      if (!dtype_is_float(b.dtype())) {
        for (int64_t i = 0; i < b.numel(); ++i)
          if (b.int_at(i) == 0) return InvalidArgument("integer division by zero");
      }
    }
    MS_SWITCH_NUMERIC(out.dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(out.dtype())),
                      binary<OP, T>(a, b, out, ctx.pool()));
    return Status::OK();
  }
};

}  // namespace

StatusOr<KernelPtr> create_onnx_Add(const Node&, const KernelInit&) {
  return KernelPtr(new BinaryKernel<BinOp::kAdd>());
}
StatusOr<KernelPtr> create_onnx_Sub(const Node&, const KernelInit&) {
  return KernelPtr(new BinaryKernel<BinOp::kSub>());
}
StatusOr<KernelPtr> create_onnx_Mul(const Node&, const KernelInit&) {
  return KernelPtr(new BinaryKernel<BinOp::kMul>());
}
StatusOr<KernelPtr> create_onnx_Div(const Node&, const KernelInit&) {
  return KernelPtr(new BinaryKernel<BinOp::kDiv>());
}

}  // namespace mserve
