// Comparison, logical, bitwise and selection ops with numpy multidirectional broadcasting, on
// the shared row walker (kernels/broadcast.h):
//   Equal (7+; bool, integer and float inputs; strings from 19), Less, Greater (7+), LessOrEqual,
//     GreaterOrEqual (12+): numeric inputs of one dtype, bool output. NaN compares unequal.
//   And, Or, Xor (7+): bool inputs and output.
//   BitwiseAnd, BitwiseOr, BitwiseXor (18+): integer inputs of one dtype.
//   Where (9+): bool condition, X and Y of any one dtype (copied bitwise; strings assigned).
#include <type_traits>

#include "core/kernels/broadcast.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

Status unsupported_dtype(DType t) { return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported"); }

enum class Cmp { kEq, kLt, kGt, kLe, kGe };
enum class Logic { kAnd, kOr, kXor };

template <Cmp OP>
struct CmpOp {
  template <class T>
  bool operator()(T a, T b) const {
    if constexpr (OP == Cmp::kEq) return a == b;
    if constexpr (OP == Cmp::kLt) return a < b;
    if constexpr (OP == Cmp::kGt) return b < a;
    if constexpr (OP == Cmp::kLe) return a <= b;
    if constexpr (OP == Cmp::kGe) return b <= a;
  }
};

template <Logic OP>
struct LogicOp {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (OP == Logic::kAnd) return static_cast<T>(a & b);
    if constexpr (OP == Logic::kOr) return static_cast<T>(a | b);
    if constexpr (OP == Logic::kXor) return static_cast<T>(a ^ b);
  }
};

// Two inputs of one dtype; dtype_ok says which dtypes the op runs.
Status infer_binary(InferContext& ctx, bool (*dtype_ok)(DType), DType out_dtype) {
  MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs two inputs");
  if (ctx.dtype(0) != ctx.dtype(1))
    return InvalidArgument(std::string("input dtypes differ: ") + dtype_name(ctx.dtype(0)) + " and " +
                           dtype_name(ctx.dtype(1)));
  if (!dtype_ok(ctx.dtype(0))) return unsupported_dtype(ctx.dtype(0));
  MS_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx.shape(0), ctx.shape(1)));
  ctx.set_output(0, out_dtype == DType::kUndefined ? ctx.dtype(0) : out_dtype, out);
  return Status::OK();
}

bool is_bool(DType t) { return t == DType::kBool; }
bool is_numeric(DType t) { return t != DType::kBool && t != DType::kUndefined && t != DType::kString; }
bool is_any(DType t) { return t != DType::kUndefined; }
bool is_integer(DType t) { return !dtype_is_float(t) && is_numeric(t); }

template <Cmp OP>
class CompareKernel final : public Kernel {
 public:
  bool supports_strings() const override { return OP == Cmp::kEq; }
  Status infer(InferContext& ctx) const override {
    return infer_binary(ctx, OP == Cmp::kEq ? is_any : is_numeric, DType::kBool);
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    if (a.dtype() == DType::kString) {
      if constexpr (OP == Cmp::kEq) {
        const std::string* pa = a.data<std::string>();
        const std::string* pb = b.data<std::string>();
        bool* po = out.data<bool>();
        for_each_broadcast_row<2>({&a.shape(), &b.shape()}, out.shape(), ctx.pool(),
                                  [&](int64_t o, const int64_t* off, const int64_t* rs, int64_t n) {
                                    for (int64_t i = 0; i < n; ++i)
                                      po[o + i] = pa[off[0] + i * rs[0]] == pb[off[1] + i * rs[1]];
                                  });
        return Status::OK();
      }
      return unsupported_dtype(a.dtype());
    }
    MS_SWITCH_ALL(a.dtype(), T, return unsupported_dtype(a.dtype()),
                  broadcast_binary<T, T, bool>(a, b, out, ctx.pool(), CmpOp<OP>()));
    return Status::OK();
  }
};

// And/Or/Xor (bool) and BitwiseAnd/Or/Xor (integers) share the operation.
template <Logic OP>
class LogicKernel final : public Kernel {
 public:
  explicit LogicKernel(bool bitwise) : bitwise_(bitwise) {}

  Status infer(InferContext& ctx) const override {
    return infer_binary(ctx, bitwise_ ? is_integer : is_bool, DType::kUndefined);
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    switch (a.dtype()) {
      MS_INT_CASES(T, broadcast_binary<T, T, T>(a, b, out, ctx.pool(), LogicOp<OP>()))
      MS_CASE(kBool, bool, T, broadcast_binary<T, T, T>(a, b, out, ctx.pool(), LogicOp<OP>()))
      default: return unsupported_dtype(a.dtype());
    }
    return Status::OK();
  }

 private:
  bool bitwise_;
};

class WhereKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1) && ctx.has_input(2), "needs three inputs");
    if (ctx.dtype(0) != DType::kBool)
      return InvalidArgument(std::string("condition must be bool, got ") + dtype_name(ctx.dtype(0)));
    if (ctx.dtype(1) != ctx.dtype(2))
      return InvalidArgument(std::string("X and Y dtypes differ: ") + dtype_name(ctx.dtype(1)) + " and " +
                             dtype_name(ctx.dtype(2)));
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_inputs(ctx, 3));
    ctx.set_output(0, ctx.dtype(1), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    Tensor& out = ctx.output(0);
    if (out.dtype() == DType::kString) {
      run<std::string>(ctx, out);
      return Status::OK();
    }
    switch (dtype_size(out.dtype())) {
      case 1: run<uint8_t>(ctx, out); break;
      case 2: run<uint16_t>(ctx, out); break;
      case 4: run<uint32_t>(ctx, out); break;
      case 8: run<uint64_t>(ctx, out); break;
      default: return unsupported_dtype(out.dtype());
    }
    return Status::OK();
  }

 private:
  // Elements are moved as same-size unsigned words (strings as std::string): selection never
  // looks at the values.
  template <class W>
  static void run(const ComputeContext& ctx, Tensor& out) {
    const Tensor& c = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& y = ctx.input(2);
    const bool* pc = c.data<bool>();
    const W* px = x.data<W>();
    const W* py = y.data<W>();
    W* po = out.data<W>();
    for_each_broadcast_row<3>({&c.shape(), &x.shape(), &y.shape()}, out.shape(), ctx.pool(),
                              [&](int64_t o, const int64_t* off, const int64_t* rs, int64_t n) {
                                const bool* cc = pc + off[0];
                                const W* xx = px + off[1];
                                const W* yy = py + off[2];
                                W* oo = po + o;
                                if (rs[0] == 1 && rs[1] == 1 && rs[2] == 1) {
                                  for (int64_t i = 0; i < n; ++i) oo[i] = cc[i] ? xx[i] : yy[i];
                                } else {
                                  for (int64_t i = 0; i < n; ++i) oo[i] = cc[i * rs[0]] ? xx[i * rs[1]] : yy[i * rs[2]];
                                }
                              });
  }
};

}  // namespace

StatusOr<KernelPtr> create_onnx_Equal(const Node&, const KernelInit&) {
  return KernelPtr(new CompareKernel<Cmp::kEq>());
}
StatusOr<KernelPtr> create_onnx_Less(const Node&, const KernelInit&) {
  return KernelPtr(new CompareKernel<Cmp::kLt>());
}
StatusOr<KernelPtr> create_onnx_Greater(const Node&, const KernelInit&) {
  return KernelPtr(new CompareKernel<Cmp::kGt>());
}
StatusOr<KernelPtr> create_onnx_LessOrEqual(const Node&, const KernelInit&) {
  return KernelPtr(new CompareKernel<Cmp::kLe>());
}
StatusOr<KernelPtr> create_onnx_GreaterOrEqual(const Node&, const KernelInit&) {
  return KernelPtr(new CompareKernel<Cmp::kGe>());
}

StatusOr<KernelPtr> create_onnx_And(const Node&, const KernelInit&) {
  return KernelPtr(new LogicKernel<Logic::kAnd>(false));
}
StatusOr<KernelPtr> create_onnx_Or(const Node&, const KernelInit&) {
  return KernelPtr(new LogicKernel<Logic::kOr>(false));
}
StatusOr<KernelPtr> create_onnx_Xor(const Node&, const KernelInit&) {
  return KernelPtr(new LogicKernel<Logic::kXor>(false));
}
StatusOr<KernelPtr> create_onnx_BitwiseAnd(const Node&, const KernelInit&) {
  return KernelPtr(new LogicKernel<Logic::kAnd>(true));
}
StatusOr<KernelPtr> create_onnx_BitwiseOr(const Node&, const KernelInit&) {
  return KernelPtr(new LogicKernel<Logic::kOr>(true));
}
StatusOr<KernelPtr> create_onnx_BitwiseXor(const Node&, const KernelInit&) {
  return KernelPtr(new LogicKernel<Logic::kXor>(true));
}

StatusOr<KernelPtr> create_onnx_Where(const Node&, const KernelInit&) { return KernelPtr(new WhereKernel()); }

}  // namespace mserve
