// Element-wise operators on the GPU (ops/elementwise.cu), each giving what its CPU kernel gives
// (the arithmetic is ops/elementwise_math.h, which the tests compare with the CPU kernels):
//   Add, Sub, Mul (float32, int32, int64), Div (float32; int32 and int64 when the divisor is known
//     at plan time and has no zero: the CPU fails the run on a zero divisor, which a kernel cannot
//     report), Pow (float32 base and exponent), PRelu (float32), with numpy broadcasting.
//   Sum, Max, Min (float32, int32, int64), Mean (float32): any number of inputs, folded left into
//     the output as the CPU folds them.
//   Equal, Less, Greater, LessOrEqual, GreaterOrEqual (float32, int32, int64; bool for Equal);
//     And, Or, Xor, Not (bool); Where (a bool condition, X and Y of any fixed-size dtype).
//   Neg, Abs, Sqrt, Exp, Log, Erf, Reciprocal, Floor, Ceil, Round, Sign, Clip (float32; Clip's
//     min and max are read on the host).
//   Cast between float32, float64, int32, int64 and bool.
// Anything else is refused at plan time, and the node runs on the CPU.
#include "gpu/ops/elementwise.h"

#include <initializer_list>
#include <limits>
#include <string>
#include <utility>

#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"

namespace mserve::gpu {

static_assert(kMaxBroadcastRank == Shape::kMaxRank, "the GPU's broadcast plans cover every rank the runtime allows");

namespace {

bool elem_type(DType t, ElemType* e) {
  switch (t) {
    case DType::kFloat32: *e = ElemType::kFloat32; return true;
    case DType::kFloat64: *e = ElemType::kFloat64; return true;
    case DType::kInt32: *e = ElemType::kInt32; return true;
    case DType::kInt64: *e = ElemType::kInt64; return true;
    case DType::kBool: *e = ElemType::kBool; return true;
    default: return false;
  }
}

ElemType elem_type(DType t) {
  ElemType e = ElemType::kFloat32;
  elem_type(t, &e);
  return e;
}

bool is_one_of(DType t, std::initializer_list<DType> set) {
  for (DType s : set)
    if (t == s) return true;
  return false;
}

// Refuses unless every input is present and has one of `dtypes`; `takes` names them in the reason.
Status accept_inputs(const InferContext& ctx, std::initializer_list<DType> dtypes, const char* takes) {
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return InferContext::refuse("the GPU " + ctx.node().op_type + " needs every input");
    if (!is_one_of(ctx.dtype(i), dtypes))
      return InferContext::refuse("the GPU " + ctx.node().op_type + " takes " + takes + ", input " + std::to_string(i) +
                                  " is " + dtype_name(ctx.dtype(i)));
  }
  return Status::OK();
}

template <int K>
Status make_plan(const Shape* const (&in)[K], const Shape& out, BroadcastPlan<K>* plan) {
  if (plan_broadcast_shapes<K>(in, out, plan)) return Status::OK();
  std::string shapes;
  for (int k = 0; k < K; ++k) shapes += (k ? ", " : "") + in[k]->str();
  return InvalidArgument("input shapes " + shapes + " do not broadcast to the output shape " + out.str());
}

// The broadcast plan of a two-input step's inputs onto its output.
StatusOr<BroadcastPlan<2>> binary_plan(const ComputeContext& ctx) {
  BroadcastPlan<2> plan;
  MS_RETURN_IF_ERROR(make_plan<2>({&ctx.input(0).shape(), &ctx.input(1).shape()}, ctx.output(0).shape(), &plan));
  return plan;
}

// ---- Add, Sub, Mul, Div, Pow, PRelu ------------------------------------------------------------

class ArithKernel final : public GpuKernel {
 public:
  ArithKernel(KernelPtr cpu, ArithOp op) : GpuKernel(std::move(cpu)), op_(op) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    MS_ASSIGN_OR_RETURN(BroadcastPlan<2> plan, binary_plan(ctx));
    return cuda_status(
        launch_arith(op_, elem_type(out.dtype()), plan, a.raw(), b.raw(), out.raw(), 0.0, cuda_context(ctx).stream()),
        "element-wise arithmetic kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override {
    if (op_ == ArithOp::kPow || op_ == ArithOp::kPRelu) return accept_inputs(ctx, {DType::kFloat32}, "float32");
    MS_RETURN_IF_ERROR(accept_inputs(ctx, {DType::kFloat32, DType::kInt32, DType::kInt64}, "float32, int32 or int64"));
    if (op_ == ArithOp::kDiv && ctx.dtype(0) != DType::kFloat32) return accept_integer_divisor(ctx);
    return Status::OK();
  }

 private:
  // The CPU fails a run whose integer divisor has a zero; a kernel cannot (the stream reports no
  // value errors), so only divisors known now, without a zero, run here.
  static Status accept_integer_divisor(const InferContext& ctx) {
    const Tensor* d = ctx.value(1);
    if (!d || !d->on_host())
      return InferContext::refuse(
          "the GPU's integer Div needs a divisor known at plan time (a zero divisor is an "
          "error that only the CPU kernel reports)");
    for (int64_t i = 0; i < d->numel(); ++i)
      if (d->int_at(i) == 0)
        return InferContext::refuse("the GPU's integer Div refuses a divisor with a zero (the CPU kernel reports it)");
    return Status::OK();
  }

  ArithOp op_;
};

// ---- Sum, Max, Min, Mean ----------------------------------------------------------------------

class VariadicKernel final : public GpuKernel {
 public:
  VariadicKernel(KernelPtr cpu, ArithOp op, bool mean) : GpuKernel(std::move(cpu)), op_(op), mean_(mean) {}

  Status compute(const ComputeContext& ctx) const override {
    Tensor& out = ctx.output(0);
    void* stream = cuda_context(ctx).stream();
    const int n = ctx.num_inputs();
    if (n == 1) return cuda_status(launch_copy(ctx.input(0).raw(), out.raw(), out.nbytes(), stream), "copy");
    const ElemType t = elem_type(out.dtype());
    // out = f(in0, in1), then out = f(out, in_k): the CPU's order, so float sums round alike.
    for (int k = 1; k < n; ++k) {
      const Tensor& a = k == 1 ? ctx.input(0) : out;
      const Tensor& b = ctx.input(k);
      BroadcastPlan<2> plan;
      MS_RETURN_IF_ERROR(make_plan<2>({&a.shape(), &b.shape()}, out.shape(), &plan));
      const bool last_of_mean = mean_ && k == n - 1;
      MS_RETURN_IF_ERROR(cuda_status(launch_arith(last_of_mean ? ArithOp::kAddDiv : op_, t, plan, a.raw(), b.raw(),
                                                  out.raw(), static_cast<double>(n), stream),
                                     "element-wise fold kernel"));
    }
    return Status::OK();
  }

 protected:
  Status accept(InferContext& ctx) const override {
    if (mean_) return accept_inputs(ctx, {DType::kFloat32}, "float32");
    return accept_inputs(ctx, {DType::kFloat32, DType::kInt32, DType::kInt64}, "float32, int32 or int64");
  }

 private:
  ArithOp op_;
  bool mean_;
};

// ---- Comparisons, And / Or / Xor, Not ---------------------------------------------------------

class CompareKernel final : public GpuKernel {
 public:
  CompareKernel(KernelPtr cpu, CompareOp op) : GpuKernel(std::move(cpu)), op_(op) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    MS_ASSIGN_OR_RETURN(BroadcastPlan<2> plan, binary_plan(ctx));
    return cuda_status(
        launch_compare(op_, elem_type(a.dtype()), plan, a.raw(), b.raw(), out.data<bool>(), cuda_context(ctx).stream()),
        "comparison kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override {
    if (op_ == CompareOp::kEqual)
      return accept_inputs(ctx, {DType::kFloat32, DType::kInt32, DType::kInt64, DType::kBool},
                           "float32, int32, int64 or bool");
    return accept_inputs(ctx, {DType::kFloat32, DType::kInt32, DType::kInt64}, "float32, int32 or int64");
  }

 private:
  CompareOp op_;
};

class LogicKernel final : public GpuKernel {
 public:
  LogicKernel(KernelPtr cpu, LogicOp op) : GpuKernel(std::move(cpu)), op_(op) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    MS_ASSIGN_OR_RETURN(BroadcastPlan<2> plan, binary_plan(ctx));
    return cuda_status(
        launch_logic(op_, plan, a.data<bool>(), b.data<bool>(), out.data<bool>(), cuda_context(ctx).stream()),
        "logic kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_inputs(ctx, {DType::kBool}, "bool"); }

 private:
  LogicOp op_;
};

class NotKernel final : public GpuKernel {
 public:
  explicit NotKernel(KernelPtr cpu) : GpuKernel(std::move(cpu)) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    return cuda_status(launch_not(x.data<bool>(), ctx.output(0).data<bool>(), x.numel(), cuda_context(ctx).stream()),
                       "Not kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_inputs(ctx, {DType::kBool}, "bool"); }
};

// ---- Where ------------------------------------------------------------------------------------

class WhereKernel final : public GpuKernel {
 public:
  explicit WhereKernel(KernelPtr cpu) : GpuKernel(std::move(cpu)) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& c = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& y = ctx.input(2);
    Tensor& out = ctx.output(0);
    BroadcastPlan<3> plan;
    MS_RETURN_IF_ERROR(make_plan<3>({&c.shape(), &x.shape(), &y.shape()}, out.shape(), &plan));
    return cuda_status(launch_where(plan, c.data<bool>(), x.raw(), y.raw(), out.raw(),
                                    static_cast<int>(dtype_size(out.dtype())), cuda_context(ctx).stream()),
                       "Where kernel");
  }

 protected:
  // Selection moves elements as words and never looks at them, so every fixed-size dtype runs.
  Status accept(InferContext& ctx) const override {
    const DType t = ctx.dtype(1);
    if (t == DType::kString || t == DType::kUndefined)
      return InferContext::refuse(std::string("the GPU Where takes fixed-size dtypes, X is ") + dtype_name(t));
    return Status::OK();
  }
};

// ---- Unary float math, Clip -------------------------------------------------------------------

class UnaryKernel final : public GpuKernel {
 public:
  UnaryKernel(KernelPtr cpu, UnaryOp op) : GpuKernel(std::move(cpu)), op_(op) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    return cuda_status(launch_unary(op_, x.data<float>(), ctx.output(0).data<float>(), x.numel(), 0.0f, 0.0f,
                                    cuda_context(ctx).stream()),
                       "unary kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_float32(ctx); }

 private:
  UnaryOp op_;
};

// min and max are optional one-element inputs, read on the host: the planner leaves them there.
class ClipKernel final : public GpuKernel {
 public:
  explicit ClipKernel(KernelPtr cpu) : GpuKernel(std::move(cpu)) {}
  bool host_input(int i) const override { return i == 1 || i == 2; }

  Status compute(const ComputeContext& ctx) const override {
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    MS_RETURN_IF_ERROR(bound(ctx, 1, &lo));
    MS_RETURN_IF_ERROR(bound(ctx, 2, &hi));
    const Tensor& x = ctx.input(0);
    return cuda_status(launch_unary(UnaryOp::kClip, x.data<float>(), ctx.output(0).data<float>(), x.numel(), lo, hi,
                                    cuda_context(ctx).stream()),
                       "Clip kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_float32(ctx); }

 private:
  static Status bound(const ComputeContext& ctx, int i, float* v) {
    if (!ctx.has_input(i)) return Status::OK();
    const Tensor& t = ctx.input(i);
    if (!t.on_host()) return Internal(std::string(i == 1 ? "min" : "max") + " of the GPU Clip is not in host memory");
    if (t.dtype() != DType::kFloat32 || t.numel() != 1)
      return InvalidArgument(std::string(i == 1 ? "min" : "max") + " must be one float32, got " + t.desc());
    *v = t.data<float>()[0];
    return Status::OK();
  }
};

// ---- Cast -------------------------------------------------------------------------------------

class CastKernel final : public GpuKernel {
 public:
  explicit CastKernel(KernelPtr cpu) : GpuKernel(std::move(cpu)) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    return cuda_status(launch_cast(elem_type(x.dtype()), elem_type(y.dtype()), x.raw(), y.raw(), x.numel(),
                                   cuda_context(ctx).stream()),
                       "Cast kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override {
    ElemType e;
    const DType from = ctx.dtype(0), to = ctx.output(0).dtype;
    if (!elem_type(from, &e) || !elem_type(to, &e))
      return InferContext::refuse(std::string("the GPU Cast converts between float32, float64, int32, int64 and "
                                              "bool, not ") +
                                  dtype_name(from) + " to " + dtype_name(to));
    return Status::OK();
  }
};

// ---- The table's factory ----------------------------------------------------------------------

struct Row {
  const char* op;
  enum Kind { kArith, kVariadic, kMean, kCompare, kLogic, kUnary } kind;
  int code;  // the ArithOp, CompareOp, LogicOp or UnaryOp
};

constexpr Row kRows[] = {
    {"Add", Row::kArith, static_cast<int>(ArithOp::kAdd)},
    {"Sub", Row::kArith, static_cast<int>(ArithOp::kSub)},
    {"Mul", Row::kArith, static_cast<int>(ArithOp::kMul)},
    {"Div", Row::kArith, static_cast<int>(ArithOp::kDiv)},
    {"Pow", Row::kArith, static_cast<int>(ArithOp::kPow)},
    {"PRelu", Row::kArith, static_cast<int>(ArithOp::kPRelu)},
    {"Sum", Row::kVariadic, static_cast<int>(ArithOp::kAdd)},
    {"Max", Row::kVariadic, static_cast<int>(ArithOp::kMax)},
    {"Min", Row::kVariadic, static_cast<int>(ArithOp::kMin)},
    {"Mean", Row::kMean, static_cast<int>(ArithOp::kAdd)},
    {"Equal", Row::kCompare, static_cast<int>(CompareOp::kEqual)},
    {"Less", Row::kCompare, static_cast<int>(CompareOp::kLess)},
    {"Greater", Row::kCompare, static_cast<int>(CompareOp::kGreater)},
    {"LessOrEqual", Row::kCompare, static_cast<int>(CompareOp::kLessOrEqual)},
    {"GreaterOrEqual", Row::kCompare, static_cast<int>(CompareOp::kGreaterOrEqual)},
    {"And", Row::kLogic, static_cast<int>(LogicOp::kAnd)},
    {"Or", Row::kLogic, static_cast<int>(LogicOp::kOr)},
    {"Xor", Row::kLogic, static_cast<int>(LogicOp::kXor)},
    {"Neg", Row::kUnary, static_cast<int>(UnaryOp::kNeg)},
    {"Abs", Row::kUnary, static_cast<int>(UnaryOp::kAbs)},
    {"Sqrt", Row::kUnary, static_cast<int>(UnaryOp::kSqrt)},
    {"Exp", Row::kUnary, static_cast<int>(UnaryOp::kExp)},
    {"Log", Row::kUnary, static_cast<int>(UnaryOp::kLog)},
    {"Erf", Row::kUnary, static_cast<int>(UnaryOp::kErf)},
    {"Reciprocal", Row::kUnary, static_cast<int>(UnaryOp::kReciprocal)},
    {"Floor", Row::kUnary, static_cast<int>(UnaryOp::kFloor)},
    {"Ceil", Row::kUnary, static_cast<int>(UnaryOp::kCeil)},
    {"Round", Row::kUnary, static_cast<int>(UnaryOp::kRound)},
    {"Sign", Row::kUnary, static_cast<int>(UnaryOp::kSign)},
};

}  // namespace

StatusOr<KernelPtr> create_gpu_elementwise(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions&) {
  const std::string& op = node.op_type;
  if (op == "Not") return KernelPtr(new NotKernel(std::move(cpu)));
  if (op == "Where") return KernelPtr(new WhereKernel(std::move(cpu)));
  if (op == "Clip") return KernelPtr(new ClipKernel(std::move(cpu)));
  if (op == "Cast") return KernelPtr(new CastKernel(std::move(cpu)));
  for (const Row& r : kRows) {
    if (op != r.op) continue;
    switch (r.kind) {
      case Row::kArith: return KernelPtr(new ArithKernel(std::move(cpu), static_cast<ArithOp>(r.code)));
      case Row::kVariadic: return KernelPtr(new VariadicKernel(std::move(cpu), static_cast<ArithOp>(r.code), false));
      case Row::kMean: return KernelPtr(new VariadicKernel(std::move(cpu), ArithOp::kAdd, true));
      case Row::kCompare: return KernelPtr(new CompareKernel(std::move(cpu), static_cast<CompareOp>(r.code)));
      case Row::kLogic: return KernelPtr(new LogicKernel(std::move(cpu), static_cast<LogicOp>(r.code)));
      case Row::kUnary: return KernelPtr(new UnaryKernel(std::move(cpu), static_cast<UnaryOp>(r.code)));
    }
  }
  return Unsupported(op + " has no GPU element-wise kernel");
}

}  // namespace mserve::gpu
