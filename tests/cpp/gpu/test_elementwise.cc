// The GPU's element-wise kernels (gpu/ops/elementwise*): their arithmetic, evaluated on the host
// through the same broadcast plans and index code the kernels use, against the CPU kernels run
// through a Session; and the kernels' plan-time answers (which dtypes they take or refuse).
//
// Exact equality (bit for bit; any NaN matches any NaN, since the GPU does not keep NaN payloads)
// wherever the CPU computes the same IEEE operation. The unary float functions where the CPU
// uses its own approximations (Exp, Log, Erf) or loses the sign of zero (Floor, Ceil,
// Round) are checked to the CPU's accuracy, each exception bounded and explained at
// unary_agrees. The host build of the GPU arithmetic calls glibc where the device calls CUDA's
// math library: equal for the IEEE operations, within the stated ulps for the others.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gpu/context.h"
#include "gpu/ops/elementwise.h"
#include "gpu/ops/families.h"
#include "helpers.h"

namespace mserve::gpu {
namespace {

using mserve::testing::GraphBuilder;

using Attrs = std::vector<std::pair<std::string, Attribute>>;

// ---- The CPU side -------------------------------------------------------------------------------

// Runs `op` on the CPU runtime as a one-node graph over `inputs` (graph inputs x0, x1, ...; an
// undefined tensor leaves that optional input out) and returns its output.
StatusOr<Tensor> run_cpu(const std::string& op, const std::vector<Tensor>& inputs, const Attrs& attrs = {},
                         int opset = 17) {
  GraphBuilder b;
  b.opset(opset);
  std::vector<std::string> names;
  std::vector<Tensor> fed;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      names.push_back("");
      continue;
    }
    names.push_back("x" + std::to_string(i));
    b.input(names.back(), inputs[i].dtype(), inputs[i].shape().vec());
    fed.push_back(inputs[i]);
  }
  Node& n = b.node(op, names, {"y"});
  for (const auto& [k, v] : attrs) n.attrs[k] = v;
  Graph g = b.output("y").build();
  SessionOptions o;
  o.threads = 2;
  o.optimize = false;
  MS_ASSIGN_OR_RETURN(auto session, Session::create(g, o));
  std::vector<Tensor> outs;
  MS_RETURN_IF_ERROR(session->run(fed, &outs));
  if (outs.size() != 1) return Internal("expected one output");
  return outs[0];
}

// ---- Shapes -------------------------------------------------------------------------------------

// numpy's broadcast of `shapes`, written out directly (no merging, no plan).
Shape numpy_broadcast(const std::vector<Shape>& shapes) {
  int r = 0;
  for (const Shape& s : shapes) r = std::max(r, s.rank());
  Shape out;
  out.resize(r, 1);
  for (const Shape& s : shapes)
    for (int d = 0; d < s.rank(); ++d) {
      const int o = d + r - s.rank();
      if (s[d] != 1) out[o] = s[d];
    }
  return out;
}

// The offset in `in` of output element i, by unravelling i over `out`.
int64_t numpy_offset(const Shape& in, const Shape& out, int64_t i) {
  int64_t off = 0, stride = 1;
  for (int d = out.rank() - 1; d >= 0; --d) {
    const int64_t idx = i % out[d];
    i /= out[d];
    const int j = d - (out.rank() - in.rank());
    if (j < 0) continue;
    if (in[j] != 1) off += idx * stride;
    stride *= in[j];
  }
  return off;
}

// Shapes of k inputs that broadcast together: an output shape of odd sizes, then per input some
// leading dims dropped (rank mismatch) and some dims set to 1; sometimes a scalar or [1].
std::vector<Shape> random_shapes(std::mt19937& rng, int k, int max_rank = 5, int64_t max_numel = 40000) {
  static const int64_t kSizes[] = {1, 3, 17, 257, 2, 5};
  Shape out;
  do {
    out = Shape();
    const int r = static_cast<int>(rng() % (max_rank + 1));
    for (int d = 0; d < r; ++d) out.push_back(kSizes[rng() % 6]);
  } while (out.numel() > max_numel);
  std::vector<Shape> in;
  for (int i = 0; i < k; ++i) {
    const uint32_t pick = rng() % 10;
    if (pick == 0) {
      in.push_back(Shape());
      continue;
    }
    if (pick == 1) {
      in.push_back(Shape{1});
      continue;
    }
    Shape s;
    const int drop = rng() % 3 == 0 ? static_cast<int>(rng() % (out.rank() + 1)) : 0;
    for (int d = drop; d < out.rank(); ++d) s.push_back(rng() % 3 == 0 ? 1 : out[d]);
    in.push_back(s);
  }
  return in;
}

// Output offsets -> input offsets the way the kernels choose them: the flat path when the plan
// allows it, else the general path in 32- or 64-bit indices.
template <int K>
void kernel_offsets(const BroadcastPlan<K>& p, int64_t i, int64_t* off) {
  if (p.flat) {
    for (int k = 0; k < K; ++k) off[k] = i * p.step[k];
  } else if (p.n < kIndex32Limit) {
    uint32_t o[K];
    broadcast_offsets<K, uint32_t>(p, static_cast<uint32_t>(i), o);
    for (int k = 0; k < K; ++k) off[k] = o[k];
  } else {
    uint64_t o[K];
    broadcast_offsets<K, uint64_t>(p, static_cast<uint64_t>(i), o);
    for (int k = 0; k < K; ++k) off[k] = static_cast<int64_t>(o[k]);
  }
}

template <int K>
BroadcastPlan<K> plan_of(const std::vector<Shape>& in, const Shape& out) {
  const Shape* ptrs[K];
  for (int k = 0; k < K; ++k) ptrs[k] = &in[k];
  BroadcastPlan<K> p;
  EXPECT_TRUE(plan_broadcast_shapes<K>(ptrs, out, &p)) << "no plan for output " << out.str();
  return p;
}

// ---- Values -------------------------------------------------------------------------------------

template <class T>
T random_value(std::mt19937& rng) {
  if constexpr (std::is_same_v<T, bool>) {
    return rng() % 2 == 0;
  } else if constexpr (std::is_floating_point_v<T>) {
    using L = std::numeric_limits<T>;
    static const T kSpecial[] = {L::quiet_NaN(), L::infinity(), -L::infinity(), T(0),     -T(0),
                                 T(1),           T(-1),         T(0.5),         T(-2.5),  T(1e30),
                                 T(-1e30),       L::max(),      L::lowest(),    L::min(), L::denorm_min()};
    const uint32_t pick = rng() % 10;
    if (pick == 0) return kSpecial[rng() % (sizeof(kSpecial) / sizeof(T))];
    if (pick <= 2) return static_cast<T>(static_cast<int>(rng() % 9) - 4) * T(0.5);  // ties, exact values
    return std::uniform_real_distribution<T>(T(-4), T(4))(rng);
  } else {
    using L = std::numeric_limits<T>;
    static const T kSpecial[] = {L::min(), L::max(), T(0), T(1), T(-1), static_cast<T>(L::min() + 1), T(2)};
    const uint32_t pick = rng() % 10;
    if (pick == 0) return kSpecial[rng() % (sizeof(kSpecial) / sizeof(T))];
    if (pick == 1) return static_cast<T>(static_cast<int64_t>(rng()) << (sizeof(T) * 4));  // large
    return static_cast<T>(static_cast<int>(rng() % 41) - 20);
  }
}

template <class T>
Tensor random_tensor_of(const Shape& s, std::mt19937& rng) {
  Tensor t = Tensor::empty(DTypeOf<T>::value, s).value();
  for (int64_t i = 0; i < t.numel(); ++i) t.data<T>()[i] = random_value<T>(rng);
  return t;
}

template <class T>
bool same(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) && std::isnan(b)) return true;
    return std::memcmp(&a, &b, sizeof(T)) == 0;  // -0 differs from +0
  } else {
    return a == b;
  }
}

// Distance in ulps between two finite floats of one sign (as ordered integers).
int64_t ulps(float a, float b) {
  auto ordered = [](float f) {
    int32_t i;
    std::memcpy(&i, &f, 4);
    return i < 0 ? int64_t{INT32_MIN} - i : int64_t{i};
  };
  const int64_t d = ordered(a) - ordered(b);
  return d < 0 ? -d : d;
}

// Checks `got` (the CPU's) against the host evaluation `want`: shape, then every element.
template <class T>
void expect_same(const Tensor& got, const Shape& shape, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), DTypeOf<T>::value) << what;
  ASSERT_EQ(got.shape(), shape) << what;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const T g = got.data<T>()[i];
    ASSERT_TRUE(same(g, want[i])) << what << " at " << i << ": CPU " << +g << ", GPU arithmetic " << +want[i];
  }
}

std::string describe(const std::string& op, const std::vector<Shape>& in) {
  std::string s = op + "(";
  for (size_t i = 0; i < in.size(); ++i) s += (i ? ", " : "") + in[i].str();
  return s + ")";
}

// ---- Broadcast plans ----------------------------------------------------------------------------

template <int K>
void check_plan_offsets(const std::vector<Shape>& in) {
  const Shape out = numpy_broadcast(in);
  const BroadcastPlan<K> p = plan_of<K>(in, out);
  ASSERT_EQ(p.n, out.numel());
  bool flat = true;
  for (int k = 0; k < K; ++k) flat = flat && (in[k].numel() == out.numel() || in[k].numel() == 1);
  EXPECT_EQ(p.flat, flat) << describe("plan", in);
  for (int64_t i = 0; i < p.n; ++i) {
    uint32_t o32[K];
    uint64_t o64[K];
    broadcast_offsets<K, uint32_t>(p, static_cast<uint32_t>(i), o32);
    broadcast_offsets<K, uint64_t>(p, static_cast<uint64_t>(i), o64);
    for (int k = 0; k < K; ++k) {
      const int64_t want = numpy_offset(in[k], out, i);
      ASSERT_EQ(o32[k], want) << describe("plan", in) << " input " << k << " at " << i;
      ASSERT_EQ(static_cast<int64_t>(o64[k]), want) << describe("plan", in) << " input " << k << " at " << i;
      if (p.flat) {
        ASSERT_EQ(i * p.step[k], want) << describe("flat plan", in) << " input " << k << " at " << i;
      }
    }
  }
}

TEST(ElementwiseBroadcast, PlansMatchNumpyIndexing) {
  std::mt19937 rng(7);
  for (int t = 0; t < 300; ++t) {
    check_plan_offsets<2>(random_shapes(rng, 2));
    check_plan_offsets<3>(random_shapes(rng, 3));
  }
  // Hand-picked: channel broadcast, outer products, broadcast in every position, the maximal rank.
  check_plan_offsets<2>({Shape{2, 3, 17, 5}, Shape{3, 1, 1}});
  check_plan_offsets<2>({Shape{17, 1}, Shape{1, 257}});
  check_plan_offsets<2>({Shape{1, 3, 1, 5, 1}, Shape{2, 1, 4, 1, 3}});
  check_plan_offsets<2>({Shape{}, Shape{3, 17}});
  check_plan_offsets<2>({Shape{1}, Shape{}});
  check_plan_offsets<3>({Shape{3, 1}, Shape{}, Shape{1, 17}});
  check_plan_offsets<2>({Shape{2, 1, 3, 1, 2, 1, 3, 1}, Shape{1, 2, 1, 3, 1, 2, 1, 3}});
  check_plan_offsets<3>({Shape{2, 2, 2, 2, 2, 2, 2, 2}, Shape{2, 1, 2, 1, 2, 1, 2, 1}, Shape{2}});
  check_plan_offsets<2>({Shape{3, 0, 2}, Shape{1, 2}});  // empty output
}

TEST(ElementwiseBroadcast, PlansMergeDimensions) {
  // [N, C, H, W] + [N, C, 1, 1] walks as [N*C, H*W]; equal shapes as one dimension.
  BroadcastPlan<2> p = plan_of<2>({Shape{2, 3, 4, 5}, Shape{2, 3, 1, 1}}, Shape{2, 3, 4, 5});
  EXPECT_FALSE(p.flat);
  ASSERT_EQ(p.rank, 2);
  EXPECT_EQ(p.dims[0], 6);
  EXPECT_EQ(p.dims[1], 20);
  EXPECT_EQ(p.strides[1][1], 0);
  p = plan_of<2>({Shape{2, 3, 4}, Shape{2, 3, 4}}, Shape{2, 3, 4});
  EXPECT_TRUE(p.flat);
  EXPECT_EQ(p.rank, 1);
  EXPECT_EQ(p.dims[0], 24);
}

TEST(ElementwiseBroadcast, PlansRefuseShapesThatDoNotBroadcast) {
  BroadcastPlan<2> p;
  auto plan = [&](Shape a, Shape b, Shape out) {
    const Shape* in[2] = {&a, &b};
    return plan_broadcast_shapes<2>(in, out, &p);
  };
  EXPECT_FALSE(plan(Shape{3}, Shape{4}, Shape{4}));
  EXPECT_FALSE(plan(Shape{2, 3}, Shape{3}, Shape{3}));  // an input of higher rank than the output
  EXPECT_FALSE(plan(Shape{3, 2}, Shape{2}, Shape{2, 3}));
  EXPECT_TRUE(plan(Shape{3, 1}, Shape{1, 2}, Shape{3, 2}));
  // Raw arrays: negative dims, ranks beyond kMaxBroadcastRank.
  const int64_t neg[1] = {-1};
  const int64_t* rows[2] = {neg, neg};
  int ranks[2] = {1, 1};
  EXPECT_FALSE(plan_broadcast<2>(rows, ranks, neg, 1, &p));
  int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  const int64_t* rows9[2] = {nine, nine};
  int ranks9[2] = {9, 9};
  EXPECT_FALSE(plan_broadcast<2>(rows9, ranks9, nine, 9, &p));
}

// ---- Binary arithmetic --------------------------------------------------------------------------

struct ArithCase {
  const char* op;
  ArithOp code;
};

// One random broadcast case of `op` on T: the CPU's answer against ArithFn over the plan.
template <class T>
void check_arith(const ArithCase& c, std::mt19937& rng, std::vector<Shape> shapes) {
  Tensor a = random_tensor_of<T>(shapes[0], rng);
  Tensor b = random_tensor_of<T>(shapes[1], rng);
  if constexpr (std::is_integral_v<T>) {
    if (c.code == ArithOp::kDiv) {
      // The CPU fails on zero divisors, and MIN / -1 traps on x86: neither reaches it here.
      for (int64_t i = 0; i < b.numel(); ++i)
        if (b.data<T>()[i] == 0 || b.data<T>()[i] == -1) b.data<T>()[i] = 7;
    }
  }
  const std::string what = describe(c.op, shapes) + " " + dtype_name(DTypeOf<T>::value);
  auto got = run_cpu(c.op, {a, b});
  ASSERT_TRUE(got.ok()) << what << ": " << got.status().message();
  const Shape out = numpy_broadcast(shapes);
  const BroadcastPlan<2> p = plan_of<2>(shapes, out);
  const ArithFn<T> f{c.code, T(0)};
  std::vector<T> want(static_cast<size_t>(out.numel()));
  for (int64_t i = 0; i < p.n; ++i) {
    int64_t off[2];
    kernel_offsets<2>(p, i, off);
    want[i] = f(a.data<T>()[off[0]], b.data<T>()[off[1]]);
  }
  expect_same<T>(got.value(), out, want, what);
}

TEST(ElementwiseArith, Float32MatchesCpu) {
  const ArithCase cases[] = {{"Add", ArithOp::kAdd}, {"Sub", ArithOp::kSub}, {"Mul", ArithOp::kMul},
                             {"Div", ArithOp::kDiv}, {"Pow", ArithOp::kPow}, {"Max", ArithOp::kMax},
                             {"Min", ArithOp::kMin}};
  std::mt19937 rng(11);
  for (const ArithCase& c : cases) {
    for (int t = 0; t < 25; ++t) check_arith<float>(c, rng, random_shapes(rng, 2));
    check_arith<float>(c, rng, {Shape{}, Shape{}});
    check_arith<float>(c, rng, {Shape{257}, Shape{}});
    check_arith<float>(c, rng, {Shape{1}, Shape{3, 17}});
    check_arith<float>(c, rng, {Shape{2, 1, 3, 1, 2, 1, 3, 1}, Shape{1, 2, 1, 3, 1, 2, 1, 3}});
  }
}

TEST(ElementwiseArith, IntegersMatchCpu) {
  const ArithCase cases[] = {{"Add", ArithOp::kAdd}, {"Sub", ArithOp::kSub}, {"Mul", ArithOp::kMul},
                             {"Div", ArithOp::kDiv}, {"Max", ArithOp::kMax}, {"Min", ArithOp::kMin}};
  std::mt19937 rng(12);
  for (const ArithCase& c : cases) {
    for (int t = 0; t < 15; ++t) {
      check_arith<int32_t>(c, rng, random_shapes(rng, 2));
      check_arith<int64_t>(c, rng, random_shapes(rng, 2));
    }
    check_arith<int64_t>(c, rng, {Shape{}, Shape{17}});
  }
}

TEST(ElementwiseArith, MaxMinPropagateNanAndOrderSignedZeros) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(arith(ArithOp::kMax, nan, 1.0f, 0.0f)));
  EXPECT_TRUE(std::isnan(arith(ArithOp::kMax, 1.0f, nan, 0.0f)));
  EXPECT_TRUE(std::isnan(arith(ArithOp::kMin, nan, 1.0f, 0.0f)));
  EXPECT_TRUE(std::signbit(arith(ArithOp::kMax, -0.0f, 0.0f, 0.0f)));  // the first of two equals
  EXPECT_FALSE(std::signbit(arith(ArithOp::kMin, 0.0f, -0.0f, 0.0f)));
}

// What the CPU cannot show (it fails or traps): the GPU's integer division stays defined.
TEST(ElementwiseArith, IntegerDivisionTruncatesAndNeverTraps) {
  EXPECT_EQ(int_div<int32_t>(-7, 2), -3);
  EXPECT_EQ(int_div<int32_t>(7, -2), -3);
  EXPECT_EQ(int_div<int64_t>(-7, -2), 3);
  EXPECT_EQ(int_div<int32_t>(INT32_MIN, -1), INT32_MIN);
  EXPECT_EQ(int_div<int64_t>(INT64_MIN, -1), INT64_MIN);
  EXPECT_EQ(int_div<int64_t>(5, 0), 0);
  EXPECT_EQ(wrap_add<int32_t>(INT32_MAX, 1), INT32_MIN);
  EXPECT_EQ(wrap_mul<int64_t>(INT64_MAX, 2), -2);
}

TEST(ElementwisePRelu, MatchesCpu) {
  std::mt19937 rng(13);
  const std::vector<std::pair<Shape, Shape>> cases = {{Shape{2, 3, 17, 5}, Shape{3, 1, 1}},
                                                      {Shape{2, 3, 17, 5}, Shape{}},
                                                      {Shape{257}, Shape{257}},
                                                      {Shape{3, 17}, Shape{17}},
                                                      {Shape{4, 3, 1}, Shape{3, 1}},
                                                      {Shape{1, 257, 3}, Shape{1, 1, 3}}};
  for (const auto& [xs, ss] : cases) {
    Tensor x = random_tensor_of<float>(xs, rng);
    Tensor s = random_tensor_of<float>(ss, rng);
    auto got = run_cpu("PRelu", {x, s});
    ASSERT_TRUE(got.ok()) << got.status().message();
    const BroadcastPlan<2> p = plan_of<2>({xs, ss}, xs);
    std::vector<float> want(static_cast<size_t>(xs.numel()));
    for (int64_t i = 0; i < p.n; ++i) {
      int64_t off[2];
      kernel_offsets<2>(p, i, off);
      want[i] = arith(ArithOp::kPRelu, x.data<float>()[off[0]], s.data<float>()[off[1]], 0.0f);
    }
    expect_same<float>(got.value(), xs, want, describe("PRelu", {xs, ss}));
  }
}

// ---- Sum, Max, Min, Mean ------------------------------------------------------------------------

// The kernel's fold: out = f(in0, in1), then out = f(out, in_k), Mean's last step dividing.
template <class T>
void check_variadic(const char* op, ArithOp code, bool mean, int n, std::mt19937& rng) {
  const std::vector<Shape> shapes = random_shapes(rng, n, 4);
  std::vector<Tensor> in;
  for (const Shape& s : shapes) in.push_back(random_tensor_of<T>(s, rng));
  const std::string what = describe(op, shapes) + " " + dtype_name(DTypeOf<T>::value);
  auto got = run_cpu(op, in);
  ASSERT_TRUE(got.ok()) << what << ": " << got.status().message();
  const Shape out = numpy_broadcast(shapes);
  std::vector<T> acc(static_cast<size_t>(out.numel()));
  if (n == 1) {
    for (int64_t i = 0; i < out.numel(); ++i) acc[i] = in[0].data<T>()[i];
  }
  for (int k = 1; k < n; ++k) {
    const std::vector<Shape> pair = {k == 1 ? shapes[0] : out, shapes[k]};
    const BroadcastPlan<2> p = plan_of<2>(pair, out);
    const ArithFn<T> f{mean && k == n - 1 ? ArithOp::kAddDiv : code, static_cast<T>(n)};
    const std::vector<T> prev = acc;
    for (int64_t i = 0; i < p.n; ++i) {
      int64_t off[2];
      kernel_offsets<2>(p, i, off);
      const T a = k == 1 ? in[0].data<T>()[off[0]] : prev[off[0]];
      acc[i] = f(a, in[k].data<T>()[off[1]]);
    }
  }
  expect_same<T>(got.value(), out, acc, what);
}

TEST(ElementwiseVariadic, SumMaxMinMeanMatchCpu) {
  std::mt19937 rng(14);
  for (int n = 1; n <= 4; ++n) {
    for (int t = 0; t < 8; ++t) {
      check_variadic<float>("Sum", ArithOp::kAdd, false, n, rng);
      check_variadic<float>("Max", ArithOp::kMax, false, n, rng);
      check_variadic<float>("Min", ArithOp::kMin, false, n, rng);
      check_variadic<float>("Mean", ArithOp::kAdd, true, n, rng);
      check_variadic<int64_t>("Sum", ArithOp::kAdd, false, n, rng);
      check_variadic<int32_t>("Max", ArithOp::kMax, false, n, rng);
      check_variadic<int64_t>("Min", ArithOp::kMin, false, n, rng);
    }
  }
}

// ---- Comparisons and logic ----------------------------------------------------------------------

template <class T, class F>
void check_to_bool(const char* op, F f, std::mt19937& rng, const std::vector<Shape>& shapes) {
  Tensor a = random_tensor_of<T>(shapes[0], rng);
  Tensor b = random_tensor_of<T>(shapes[1], rng);
  const std::string what = describe(op, shapes) + " " + dtype_name(DTypeOf<T>::value);
  auto got = run_cpu(op, {a, b});
  ASSERT_TRUE(got.ok()) << what << ": " << got.status().message();
  const Shape out = numpy_broadcast(shapes);
  const BroadcastPlan<2> p = plan_of<2>(shapes, out);
  std::vector<bool> want(static_cast<size_t>(out.numel()));
  ASSERT_EQ(got.value().dtype(), DType::kBool) << what;
  ASSERT_EQ(got.value().shape(), out) << what;
  for (int64_t i = 0; i < p.n; ++i) {
    int64_t off[2];
    kernel_offsets<2>(p, i, off);
    const bool w = f(a.data<T>()[off[0]], b.data<T>()[off[1]]);
    ASSERT_EQ(got.value().data<bool>()[i], w) << what << " at " << i;
  }
}

TEST(ElementwiseCompare, MatchesCpu) {
  const std::pair<const char*, CompareOp> ops[] = {{"Equal", CompareOp::kEqual},
                                                   {"Less", CompareOp::kLess},
                                                   {"Greater", CompareOp::kGreater},
                                                   {"LessOrEqual", CompareOp::kLessOrEqual},
                                                   {"GreaterOrEqual", CompareOp::kGreaterOrEqual}};
  std::mt19937 rng(15);
  for (const auto& [name, code] : ops) {
    for (int t = 0; t < 12; ++t) {
      check_to_bool<float>(name, CompareFn<float>{code}, rng, random_shapes(rng, 2));
      check_to_bool<int32_t>(name, CompareFn<int32_t>{code}, rng, random_shapes(rng, 2));
      check_to_bool<int64_t>(name, CompareFn<int64_t>{code}, rng, random_shapes(rng, 2));
    }
  }
  for (int t = 0; t < 12; ++t)
    check_to_bool<bool>("Equal", CompareFn<bool>{CompareOp::kEqual}, rng, random_shapes(rng, 2));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (CompareOp op : {CompareOp::kEqual, CompareOp::kLess, CompareOp::kGreaterOrEqual})
    EXPECT_FALSE(compare(op, nan, nan));
}

TEST(ElementwiseLogic, AndOrXorNotMatchCpu) {
  const std::pair<const char*, LogicOp> ops[] = {{"And", LogicOp::kAnd}, {"Or", LogicOp::kOr}, {"Xor", LogicOp::kXor}};
  std::mt19937 rng(16);
  for (const auto& [name, code] : ops)
    for (int t = 0; t < 20; ++t) check_to_bool<bool>(name, LogicFn{code}, rng, random_shapes(rng, 2));
  Tensor x = random_tensor_of<bool>(Shape{3, 17}, rng);
  auto got = run_cpu("Not", {x});
  ASSERT_TRUE(got.ok()) << got.status().message();
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(got.value().data<bool>()[i], !x.data<bool>()[i]);
}

// ---- Where --------------------------------------------------------------------------------------

// The kernel moves words of the element's size; the CPU must agree bit for bit.
template <class T>
void check_where(std::mt19937& rng, const std::vector<Shape>& shapes) {
  Tensor c = random_tensor_of<bool>(shapes[0], rng);
  Tensor x = random_tensor_of<T>(shapes[1], rng);
  Tensor y = random_tensor_of<T>(shapes[2], rng);
  const std::string what = describe("Where", shapes) + " " + dtype_name(DTypeOf<T>::value);
  auto got = run_cpu("Where", {c, x, y});
  ASSERT_TRUE(got.ok()) << what << ": " << got.status().message();
  const Shape out = numpy_broadcast(shapes);
  const BroadcastPlan<3> p = plan_of<3>(shapes, out);
  std::vector<T> want(static_cast<size_t>(out.numel()));
  for (int64_t i = 0; i < p.n; ++i) {
    int64_t off[3];
    kernel_offsets<3>(p, i, off);
    want[i] = c.data<bool>()[off[0]] ? x.data<T>()[off[1]] : y.data<T>()[off[2]];
  }
  expect_same<T>(got.value(), out, want, what);
}

TEST(ElementwiseWhere, ThreeWayBroadcastMatchesCpu) {
  std::mt19937 rng(17);
  for (int t = 0; t < 30; ++t) {
    check_where<float>(rng, random_shapes(rng, 3));
    check_where<int64_t>(rng, random_shapes(rng, 3));
    check_where<int32_t>(rng, random_shapes(rng, 3));
    check_where<bool>(rng, random_shapes(rng, 3));
    check_where<double>(rng, random_shapes(rng, 3));
  }
  check_where<float>(rng, {Shape{}, Shape{257}, Shape{3, 1}});
  check_where<float>(rng, {Shape{2, 1, 3, 1, 2, 1, 3, 1}, Shape{1, 2, 1, 3, 1, 2, 1, 3}, Shape{}});
}

// ---- Unary float math and Clip ------------------------------------------------------------------

// Whether the CPU's y = op(x) and the GPU arithmetic's agree. Where the CPU computes the IEEE
// operation (Sqrt included: both sides are correctly rounded) they must be equal; the
// exceptions are the CPU's own approximations (Eigen's vectorized float functions), each bounded
// as tightly as the CPU allows:
//   - Exp, Log: Eigen's are within 1 ulp of glibc's (over 2^20 inputs) in the normal range (the
//     CPU recomputes the edges, underflow and subnormal inputs, with glibc); CUDA's expf is
//     within 2 ulps of the true value and logf 1, so 2 ulps bound the host comparison.
//   - Erf: Eigen's rational approximation differs from erff by up to 4.2e-7 absolutely (over
//     2^20 inputs; 7 ulps near ±1, more in ulps near 0 where it flushes subnormals); erff is
//     within 2 ulps of the true value. Bound: 5e-7 absolute.
//   - Floor, Ceil, Round of values that give zero: the CPU's packet path drops the sign of zero
//     (ceil(-0.5) is +0 there, -0 in IEEE and on the GPU), and its scalar tail keeps it, so zeros
//     are compared by value.
::testing::AssertionResult unary_agrees(UnaryOp op, float x, float cpu, float gpu) {
  auto fail = [&] { return ::testing::AssertionFailure() << "x = " << x << ": CPU " << cpu << ", GPU " << gpu; };
  if (std::isnan(cpu) || std::isnan(gpu))
    return std::isnan(cpu) && std::isnan(gpu) ? ::testing::AssertionSuccess() : fail();
  if (same(cpu, gpu)) return ::testing::AssertionSuccess();
  switch (op) {
    case UnaryOp::kFloor:
    case UnaryOp::kCeil:
    case UnaryOp::kRound: return cpu == 0.0f && gpu == 0.0f ? ::testing::AssertionSuccess() : fail();
    case UnaryOp::kExp: return std::isfinite(cpu) && ulps(cpu, gpu) <= 2 ? ::testing::AssertionSuccess() : fail();
    case UnaryOp::kLog:
      return std::isfinite(cpu) && std::signbit(cpu) == std::signbit(gpu) && ulps(cpu, gpu) <= 2
                 ? ::testing::AssertionSuccess()
                 : fail();
    case UnaryOp::kErf: return std::fabs(cpu - gpu) <= 5e-7f ? ::testing::AssertionSuccess() : fail();
    default: return fail();
  }
}

TEST(ElementwiseUnary, MatchesCpu) {
  const std::pair<const char*, UnaryOp> cases[] = {{"Neg", UnaryOp::kNeg},     {"Abs", UnaryOp::kAbs},
                                                   {"Sqrt", UnaryOp::kSqrt},   {"Reciprocal", UnaryOp::kReciprocal},
                                                   {"Floor", UnaryOp::kFloor}, {"Ceil", UnaryOp::kCeil},
                                                   {"Round", UnaryOp::kRound}, {"Sign", UnaryOp::kSign},
                                                   {"Exp", UnaryOp::kExp},     {"Log", UnaryOp::kLog},
                                                   {"Erf", UnaryOp::kErf}};
  std::mt19937 rng(18);
  for (const auto& [name, code] : cases) {
    for (const Shape& s : {Shape{}, Shape{1}, Shape{3}, Shape{17}, Shape{257}, Shape{3, 17, 5}}) {
      Tensor x = random_tensor_of<float>(s, rng);
      // Wider inputs for the transcendental functions: overflow, underflow and large arguments.
      for (int64_t i = 0; i < x.numel(); ++i)
        if (rng() % 4 == 0) x.data<float>()[i] *= 30.0f;
      auto got = run_cpu(name, {x});
      ASSERT_TRUE(got.ok()) << name << ": " << got.status().message();
      ASSERT_EQ(got.value().shape(), s);
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float in = x.data<float>()[i];
        EXPECT_TRUE(unary_agrees(code, in, got.value().data<float>()[i], unary(code, in, 0.0f, 0.0f))) << name;
      }
    }
  }
}

TEST(ElementwiseUnary, SignKeepsNanAndSignedZeros) {
  EXPECT_TRUE(std::isnan(unary(UnaryOp::kSign, std::numeric_limits<float>::quiet_NaN(), 0, 0)));
  EXPECT_TRUE(std::signbit(unary(UnaryOp::kSign, -0.0f, 0, 0)));
  EXPECT_EQ(unary(UnaryOp::kSign, -1e-40f, 0, 0), -1.0f);
  EXPECT_EQ(unary(UnaryOp::kRound, 2.5f, 0, 0), 2.0f);  // half to even
  EXPECT_EQ(unary(UnaryOp::kRound, -3.5f, 0, 0), -4.0f);
}

TEST(ElementwiseClip, MatchesCpu) {
  std::mt19937 rng(19);
  const float inf = std::numeric_limits<float>::infinity();
  struct Bounds {
    bool has_lo, has_hi;
    float lo, hi;
  };
  const Bounds cases[] = {{true, true, -0.5f, 0.5f},  {true, false, 0.0f, 0.0f}, {false, true, 0.0f, 1.0f},
                          {false, false, 0.0f, 0.0f}, {true, true, 1.0f, -1.0f}, {true, true, -inf, inf},
                          {true, true, 2.0f, 2.0f}};
  for (const Bounds& b : cases) {
    Tensor x = random_tensor_of<float>(Shape{3, 257}, rng);
    std::vector<Tensor> in = {x, Tensor(), Tensor()};
    if (b.has_lo) in[1] = Tensor::from<float>(Shape{}, {b.lo});
    if (b.has_hi) in[2] = Tensor::from<float>(Shape{}, {b.hi});
    auto got = run_cpu("Clip", in, {}, 13);
    ASSERT_TRUE(got.ok()) << got.status().message();
    const float lo = b.has_lo ? b.lo : -inf, hi = b.has_hi ? b.hi : inf;
    std::vector<float> want(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) want[i] = unary(UnaryOp::kClip, x.data<float>()[i], lo, hi);
    expect_same<float>(got.value(), x.shape(), want, "Clip [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
}

// ---- Cast ---------------------------------------------------------------------------------------

// Values that stress each conversion: NaN, infinities, signed zeros, fractions, integer limits and
// floats just inside and outside them. Out-of-range float to integer is compared only on x86,
// where the CPU kernel's (undefined) answer is the instruction's; elsewhere it is skipped.
template <class From>
std::vector<From> cast_inputs(bool out_of_range) {
  std::vector<From> v;
  if constexpr (std::is_same_v<From, bool>) {
    v = {true, false};
  } else if constexpr (std::is_floating_point_v<From>) {
    using L = std::numeric_limits<From>;
    v = {From(0),
         -From(0),
         From(1.5),
         From(-1.5),
         From(-0.9),
         From(0.9),
         From(255.7),
         From(-1e-30),
         L::min(),
         From(16777217),
         From(2147483520),
         From(-2147483648.0),
         From(9.2233715e18),
         From(-9.2233720368547758e18)};
    if (std::is_same_v<From, double>) {
      v.push_back(From(2147483647.9));
      v.push_back(From(-2147483648.9));
      v.push_back(From(1e300));  // overflows float
    }
    if (out_of_range) {
      v.push_back(L::quiet_NaN());
      v.push_back(L::infinity());
      v.push_back(-L::infinity());
      v.push_back(From(2147483648.0));
      v.push_back(From(-2147483904.0));
      v.push_back(From(9.3e18));
      v.push_back(From(-9.3e18));
      v.push_back(L::max());
      v.push_back(L::lowest());
    }
  } else {
    using L = std::numeric_limits<From>;
    v = {From(0), From(1), From(-1), From(7), L::max(), L::min(), static_cast<From>(L::max() - 1), From(16777217)};
    if constexpr (sizeof(From) == 8)
      v.insert(v.end(), {From(4294967296LL + 5), From(-4294967296LL - 5), From((1LL << 53) + 1), From(2147483648LL)});
  }
  return v;
}

template <class To, class From>
void check_cast(int onnx_to) {
#if defined(__x86_64__) || defined(__i386__)
  constexpr bool kX86 = true;
#else
  constexpr bool kX86 = false;
#endif
  const bool floats_to_ints = std::is_floating_point_v<From> && std::is_integral_v<To> && !std::is_same_v<To, bool>;
  const std::vector<From> v = cast_inputs<From>(!floats_to_ints || kX86);
  Tensor x = Tensor::empty(DTypeOf<From>::value, Shape{static_cast<int64_t>(v.size())}).value();
  for (size_t i = 0; i < v.size(); ++i) x.data<From>()[i] = v[i];
  auto got = run_cpu("Cast", {x}, {{"to", mserve::testing::int_attr(onnx_to)}});
  const std::string what =
      std::string("Cast ") + dtype_name(DTypeOf<From>::value) + " -> " + dtype_name(DTypeOf<To>::value);
  ASSERT_TRUE(got.ok()) << what << ": " << got.status().message();
  std::vector<To> want(v.size());
  for (size_t i = 0; i < v.size(); ++i) want[i] = cast_value<To, From>(v[i]);
  expect_same<To>(got.value(), x.shape(), want, what);
}

TEST(CastValues, MatchCpuBetweenFloat32Float64Int32Int64Bool) {
  // The `to` attribute takes ONNX's codes: float 1, int32 6, int64 7, bool 9, double 11.
  auto all_to = [](auto from_tag) {
    using From = decltype(from_tag);
    check_cast<float, From>(1);
    check_cast<int32_t, From>(6);
    check_cast<int64_t, From>(7);
    check_cast<bool, From>(9);
    check_cast<double, From>(11);
  };
  all_to(float());
  all_to(double());
  all_to(int32_t());
  all_to(int64_t());
  all_to(bool());
}

TEST(CastValues, FloatToIntegerOutOfRangeGivesTheMinimum) {
  EXPECT_EQ((cast_value<int32_t, float>(std::numeric_limits<float>::quiet_NaN())), INT32_MIN);
  EXPECT_EQ((cast_value<int32_t, float>(3e9f)), INT32_MIN);
  EXPECT_EQ((cast_value<int32_t, float>(-2147483648.0f)), INT32_MIN);
  EXPECT_EQ((cast_value<int32_t, double>(-2147483648.9)), INT32_MIN);
  EXPECT_EQ((cast_value<int32_t, double>(2147483647.9)), INT32_MAX);
  EXPECT_EQ((cast_value<int64_t, double>(-9.3e18)), INT64_MIN);
  EXPECT_EQ((cast_value<int64_t, float>(-1.9f)), -1);
  EXPECT_TRUE((cast_value<bool, float>(std::numeric_limits<float>::quiet_NaN())));
}

// ---- The kernels at plan time -------------------------------------------------------------------

struct NodeCase {
  NodeCase(std::string o, std::vector<DType> i, Attrs a = {})
      : op(std::move(o)), in(std::move(i)), attrs(std::move(a)) {}
  std::string op;
  std::vector<DType> in;
  Attrs attrs;
  int opset = 17;
};

// The GPU kernel for a one-node graph of `c` (inputs [3] each), and its infer status.
Status gpu_infer(const NodeCase& c, const Tensor* divisor = nullptr) {
  GraphBuilder b;
  b.opset(c.opset);
  std::vector<std::string> names;
  for (size_t i = 0; i < c.in.size(); ++i) {
    names.push_back(c.in[i] == DType::kUndefined ? "" : "x" + std::to_string(i));
    if (c.in[i] != DType::kUndefined) b.input(names.back(), c.in[i], {3});
  }
  Node& n = b.node(c.op, names, {"y"});
  for (const auto& [k, v] : c.attrs) n.attrs[k] = v;
  Graph g = b.output("y").build();
  KernelInit init(g);
  MS_ASSIGN_OR_RETURN(KernelPtr k, CudaBackend().create_kernel(g.nodes[0], init));
  if (!k) return NotFound("no GPU kernel for " + c.op);
  if (k->device() != DeviceType::kCuda) return Internal(c.op + "'s kernel is not a CUDA kernel");
  std::vector<ValueInfo> infos(c.in.size());
  std::vector<const ValueInfo*> ptrs;
  for (size_t i = 0; i < c.in.size(); ++i) {
    infos[i] = ValueInfo{c.in[i], (c.op == "Clip" && i > 0) ? Shape{} : Shape{3}, nullptr};
    if (i == 1 && divisor) infos[i].value = divisor;
    ptrs.push_back(c.in[i] == DType::kUndefined ? nullptr : &infos[i]);
  }
  InferContext ctx(g.nodes[0], ptrs, 1);
  return k->infer(ctx);
}

Attrs cast_to(int onnx_type) { return {{"to", mserve::testing::int_attr(onnx_type)}}; }

TEST(ElementwiseKernels, EveryOpIsACudaKernelThatAcceptsItsDtypes) {
  const DType f = DType::kFloat32, i32 = DType::kInt32, i64 = DType::kInt64, b = DType::kBool;
  const std::vector<NodeCase> accepted = {
      {"Add", {f, f}},
      {"Add", {i32, i32}},
      {"Sub", {i64, i64}},
      {"Mul", {i32, i32}},
      {"Div", {f, f}},
      {"Pow", {f, f}},
      {"PRelu", {f, f}},
      {"Sum", {f, f, f}},
      {"Sum", {i64}},
      {"Max", {i32, i32, i32}},
      {"Min", {f, f}},
      {"Mean", {f, f, f, f}},
      {"Equal", {f, f}},
      {"Equal", {b, b}},
      {"Equal", {i64, i64}},
      {"Less", {i32, i32}},
      {"Greater", {f, f}},
      {"LessOrEqual", {i64, i64}},
      {"GreaterOrEqual", {f, f}},
      {"And", {b, b}},
      {"Or", {b, b}},
      {"Xor", {b, b}},
      {"Not", {b}},
      {"Where", {b, f, f}},
      {"Where", {b, i64, i64}},
      {"Where", {b, DType::kFloat16, DType::kFloat16}},
      {"Where", {b, b, b}},
      {"Neg", {f}},
      {"Abs", {f}},
      {"Sqrt", {f}},
      {"Exp", {f}},
      {"Log", {f}},
      {"Erf", {f}},
      {"Reciprocal", {f}},
      {"Floor", {f}},
      {"Ceil", {f}},
      {"Round", {f}},
      {"Sign", {f}},
      {"Clip", {f, f, f}},
      {"Clip", {f}},
      {"Clip", {f, DType::kUndefined, f}},
      {"Cast", {f}, cast_to(7)},
      {"Cast", {i64}, cast_to(1)},
      {"Cast", {b}, cast_to(11)},
      {"Cast", {DType::kFloat64}, cast_to(6)},
      {"Cast", {i32}, cast_to(9)},
      {"Cast", {f}, cast_to(1)},
  };
  for (const NodeCase& c : accepted) {
    Status st = gpu_infer(c);
    EXPECT_TRUE(st.ok()) << c.op << " with input 0 " << dtype_name(c.in[0]) << ": " << st.message();
  }
}

TEST(ElementwiseKernels, OtherDtypesAreRefusedAtPlanTime) {
  const DType f = DType::kFloat32, d = DType::kFloat64, h = DType::kFloat16, i32 = DType::kInt32, i64 = DType::kInt64,
              i8 = DType::kInt8, u8 = DType::kUInt8;
  const std::vector<NodeCase> refused = {
      {"Add", {d, d}},
      {"Sub", {h, h}},
      {"Mul", {i8, i8}},
      {"Div", {i32, i32}},
      {"Pow", {i64, i64}},
      {"Pow", {f, i32}},
      {"PRelu", {i32, i32}},
      {"Sum", {d, d}},
      {"Max", {u8, u8}},
      {"Mean", {d, d}},
      {"Equal", {d, d}},
      {"Less", {h, h}},
      {"Greater", {u8, u8}},
      {"Neg", {i32}},
      {"Abs", {i64}},
      {"Exp", {d}},
      {"Sqrt", {h}},
      {"Sign", {i32}},
      {"Clip", {d}},
      {"Clip", {i32, i32, i32}},
      {"Cast", {f}, cast_to(10)},
      {"Cast", {h}, cast_to(1)},
      {"Cast", {f}, cast_to(8)},
      {"Cast", {i8}, cast_to(1)},
      {"Cast", {f}, cast_to(2)},
  };
  for (const NodeCase& c : refused) {
    Status st = gpu_infer(c);
    EXPECT_EQ(st.code(), Code::kUnsupported) << c.op << " with input 0 " << dtype_name(c.in[0]) << ": " << st.message();
    EXPECT_NE(st.message().find("GPU"), std::string::npos)
        << c.op << ": refused by the CPU kernel, not the GPU's: " << st.message();
  }
}

TEST(ElementwiseKernels, IntegerDivNeedsADivisorKnownWithoutZeros) {
  const NodeCase c{"Div", {DType::kInt64, DType::kInt64}, {}};
  Status unknown = gpu_infer(c);
  EXPECT_EQ(unknown.code(), Code::kUnsupported);
  EXPECT_NE(unknown.message().find("known at plan time"), std::string::npos) << unknown.message();
  const Tensor nonzero = Tensor::from<int64_t>(Shape{3}, {2, -1, 7});
  EXPECT_TRUE(gpu_infer(c, &nonzero).ok());
  const Tensor zero = Tensor::from<int64_t>(Shape{3}, {2, 0, 7});
  Status z = gpu_infer(c, &zero);
  EXPECT_EQ(z.code(), Code::kUnsupported);
  EXPECT_NE(z.message().find("zero"), std::string::npos) << z.message();
}

TEST(ElementwiseKernels, ClipReadsMinAndMaxOnTheHost) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {3}).input("lo", DType::kFloat32, {}).input("hi", DType::kFloat32, {});
  b.node("Clip", {"x", "lo", "hi"}, {"y"});
  Graph g = b.output("y").build();
  KernelInit init(g);
  auto k = CudaBackend().create_kernel(g.nodes[0], init);
  ASSERT_TRUE(k.ok() && k.value()) << k.status().message();
  EXPECT_FALSE(k.value()->host_input(0));
  EXPECT_TRUE(k.value()->host_input(1));
  EXPECT_TRUE(k.value()->host_input(2));
}

TEST(ElementwiseKernels, TheFactoryRefusesOpsItHasNoKernelFor) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {3});
  b.node("Tan", {"x"}, {"y"});
  Graph g = b.output("y").build();
  auto k = create_gpu_elementwise(g.nodes[0], KernelInit(g), KernelPtr(), GpuOptions());
  EXPECT_EQ(k.status().code(), Code::kUnsupported);
}

}  // namespace
}  // namespace mserve::gpu
