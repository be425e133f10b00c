// The activation table (kernels/activation_table.h) computes the same function wherever it
// runs: as a stand-alone operator, fused into a Conv, Gemm or MatMul (oneDNN post-op or
// FusedActivation::apply) and as a recurrent gate, over edge values.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/kernels/activation_table.h"
#include "core/kernels/fused_activation.h"
#include "helpers.h"

namespace mserve::testing {
namespace {

using Kind = FusedActivation::Kind;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// NaN, infinities, signed zeros, large and tiny magnitudes, and values at and either side of
// `marks` (parameters and Clip's bounds).
std::vector<float> edge_values(std::vector<float> marks) {
  std::vector<float> v = {kNaN,    kInf, -kInf, 0.0f, -0.0f, 1e30f, -1e30f, 3e38f, -3e38f, 1e-30f, -1e-30f, 1e-45f,
                          -1e-45f, 0.5f, -0.5f, 3.0f, -3.0f, 16.0f, -16.0f, 88.0f, -88.0f, 100.0f, -100.0f};
  marks.insert(marks.end(), {0.0f, 1.0f, -1.0f, 6.0f, -6.0f});
  for (float m : marks)
    for (float x : {m, std::nextafter(m, kInf), std::nextafter(m, -kInf)}) v.push_back(x);
  return v;
}

Tensor column(const std::vector<float>& v) {
  Tensor t = Tensor::empty(DType::kFloat32, Shape{static_cast<int64_t>(v.size()), 1}).value();
  for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = v[i];
  return t;
}

std::vector<Tensor> run(const Graph& g, const std::vector<Tensor>& inputs, bool optimize) {
  return run_graph(g, inputs, 2, optimize);
}

// got[i] == want[i] up to a few float ulp (oneDNN's and Eigen's tanh, erf and exp differ in the
// last bits), NaN where want is NaN, and the same infinity.
// skip_nan: compare only where x is not NaN.
void expect_same(const Tensor& got, const Tensor& want, const std::vector<float>& x, const std::string& what,
                 bool skip_nan = false) {
  ASSERT_EQ(got.numel(), want.numel()) << what;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.float_at(i), w = want.float_at(i);
    if (skip_nan && std::isnan(x[i])) continue;
    if (std::isnan(w)) {
      EXPECT_TRUE(std::isnan(g)) << what << " at x = " << x[i] << ": got " << g << ", want NaN";
    } else if (std::isinf(w)) {
      EXPECT_EQ(g, w) << what << " at x = " << x[i];
    } else {
      EXPECT_NEAR(g, w, 1e-6 + 1e-5 * std::abs(w)) << what << " at x = " << x[i];
    }
  }
}

// The stand-alone operator of `act` on input "p" writing "y" (Clip from opset 11: bounds as
// constant inputs).
void add_operator(GraphBuilder& b, const FusedActivation& act) {
  const FusedActivation::Info& info = FusedActivation::info(act.kind);
  if (act.kind == Kind::kClip) {
    b.constant("lo", Tensor::from<float>(Shape{}, {act.alpha}));
    b.constant("hi", Tensor::from<float>(Shape{}, {act.beta}));
    b.node("Clip", {"p", "lo", "hi"}, {"y"});
    return;
  }
  const bool tanh_gelu = act.kind == Kind::kGeluTanh;
  Node& n = b.node(tanh_gelu ? "Gelu" : info.name, {"p"}, {"y"});
  if (tanh_gelu) n.attrs["approximate"] = string_attr("tanh");
  if (info.alpha_attr) n.attrs[info.alpha_attr] = float_attr(act.alpha);
  if (info.beta_attr) n.attrs[info.beta_attr] = float_attr(act.beta);
}

// Every fusable activation, with non-default parameters where it has any.
std::vector<FusedActivation> fusable() {
  std::vector<FusedActivation> v;
  for (int k = 1; k <= FusedActivation::kKinds; ++k) {
    const auto kind = static_cast<Kind>(k);
    if (!FusedActivation::info(kind).fuses) continue;
    FusedActivation a;
    a.kind = kind;
    a.alpha = FusedActivation::info(kind).alpha_default;
    a.beta = FusedActivation::info(kind).beta_default;
    if (kind == Kind::kLeakyRelu) a.alpha = 0.25f;
    if (kind == Kind::kClip) a.alpha = -1.0f, a.beta = 6.0f;
    v.push_back(a);
  }
  return v;
}

TEST(Activation, TableNamesRoundTrip) {
  for (int k = 1; k <= FusedActivation::kKinds; ++k) {
    const auto kind = static_cast<Kind>(k);
    const FusedActivation::Info& info = FusedActivation::info(kind);
    EXPECT_EQ(FusedActivation::named(info.name).kind, kind) << info.name;
  }
  EXPECT_EQ(FusedActivation::named("relu").kind, Kind::kNone);
  EXPECT_EQ(FusedActivation::named("relu", /*any_case=*/true).kind, Kind::kRelu);
}

// Conv (1x1, one channel), Gemm and MatMul with weight 1 and K = 1 leave x as it is (NaN and
// infinities included), so the fused activation sees exactly what the stand-alone one does.
TEST(Activation, FusedMatchesUnfusedOverEdgeValues) {
  for (const FusedActivation& act : fusable()) {
    const std::string name = FusedActivation::info(act.kind).name;
    const std::vector<float> x = edge_values({act.alpha, act.beta});
    const int64_t n = static_cast<int64_t>(x.size());
    for (const std::string producer : {"MatMul", "Gemm", "Conv"}) {
      GraphBuilder b;
      b.opset(act.kind == Kind::kSwish ? 24 : 20);  // Swish is opset 24
      if (producer == "Conv") {
        b.input("x", DType::kFloat32, {1, 1, n, 1});
        b.constant("w", Tensor::from<float>(Shape{1, 1, 1, 1}, {1.0f}));
      } else {
        b.input("x", DType::kFloat32, {n, 1});
        b.constant("w", Tensor::from<float>(Shape{1, 1}, {1.0f}));
      }
      b.node(producer, {"x", "w"}, {"p"});
      add_operator(b, act);
      b.output("y");
      const Graph g = b.build();
      Tensor in = column(x);
      if (producer == "Conv") in = in.reshaped(Shape{1, 1, n, 1});
      const auto fused = run(g, {in}, true), unfused = run(g, {in}, false);
      ASSERT_EQ(fused.size(), 1u);
      ASSERT_EQ(unfused.size(), 1u);
      // oneDNN's convolution post-ops eltwise_relu and eltwise_clip_v2 turn NaN into 0 and into
      // min; the stand-alone operators keep NaN, as ONNX defines them.
      const bool dnnl_nan = producer == "Conv" && (act.kind == Kind::kRelu || act.kind == Kind::kClip);
      expect_same(fused[0], unfused[0], x, name + " after " + producer, dnnl_nan);
    }
  }
}

// y = RNN with one hidden unit, W = 1, R = 0 and no bias: y[b] = f(x[b]), the gate activation f.
Tensor rnn_gate(const std::string& activation, const std::vector<float>& alphas, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  GraphBuilder b;
  b.opset(14);
  b.input("x", DType::kFloat32, {1, n, 1});
  b.constant("w", Tensor::from<float>(Shape{1, 1, 1}, {1.0f}));
  b.constant("r", Tensor::from<float>(Shape{1, 1, 1}, {0.0f}));
  Node& rnn = b.node("RNN", {"x", "w", "r"}, {"y"});
  rnn.attrs["hidden_size"] = int_attr(1);
  Attribute acts;
  acts.kind = Attribute::Kind::kStrings;
  acts.strings = {activation};
  rnn.attrs["activations"] = acts;
  if (!alphas.empty()) {
    Attribute a;
    a.kind = Attribute::Kind::kFloats;
    a.floats = alphas;
    rnn.attrs["activation_alpha"] = a;
  }
  b.output("y");
  const auto out = run(b.build(), {column(x).reshaped(Shape{1, n, 1})}, true);
  return out.empty() ? Tensor() : out[0];
}

// The recurrent gates and the stand-alone operators of the same name agree.
TEST(Activation, RecurrentGatesMatchOperators) {
  for (const char* name :
       {"Relu", "Tanh", "Sigmoid", "LeakyRelu", "ThresholdedRelu", "HardSigmoid", "Elu", "Softplus", "Softsign"}) {
    const FusedActivation act = FusedActivation::named(name);
    const std::vector<float> x = edge_values({act.alpha, act.beta});
    const int64_t n = static_cast<int64_t>(x.size());
    GraphBuilder b;
    b.opset(14);
    b.input("p", DType::kFloat32, {n, 1});
    add_operator(b, act);
    b.output("y");
    const auto op = run(b.build(), {column(x)}, false);
    ASSERT_EQ(op.size(), 1u);
    const Tensor gate = rnn_gate(name, {}, x);
    expect_same(gate.reshaped(Shape{n, 1}), op[0], x, std::string(name) + " as a recurrent gate");
  }
}

// ONNX ThresholdedRelu: y = x when x > alpha, else 0 (x == alpha gives 0).
TEST(Activation, RecurrentThresholdedReluAgainstDoubleReference) {
  for (float alpha : {1.0f, 0.5f, -2.0f}) {
    const std::vector<float> x = edge_values({alpha});
    const Tensor y = rnn_gate("ThresholdedRelu", {alpha}, x);
    ASSERT_EQ(y.numel(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const double xd = x[i], want = xd > static_cast<double>(alpha) ? xd : 0.0;
      const double got = y.float_at(static_cast<int64_t>(i));
      if (std::isnan(xd))
        EXPECT_EQ(got, 0.0) << "alpha " << alpha << ", x NaN";  // NaN > alpha is false
      else
        EXPECT_EQ(got, want) << "alpha " << alpha << ", x = " << x[i];
    }
  }
}

// The scalar form of every table row, which the CUDA kernels compile (cpp/gpu/ops/activation.cu),
// against the CPU kernels' vectorized form (FusedActivation::apply, per ISA) over edge values:
// the GPU's arithmetic, checked here by g++.
TEST(Activation, ScalarFormMatchesTheCpuKernels) {
  for (int k = 1; k <= FusedActivation::kKinds; ++k) {
    FusedActivation act;
    act.kind = static_cast<Kind>(k);
    const FusedActivation::Info& info = FusedActivation::info(act.kind);
    act.alpha = info.alpha_default;
    act.beta = info.beta_default;
    const std::vector<float> x = edge_values({act.alpha, act.beta});
    const int64_t n = static_cast<int64_t>(x.size());
    Tensor want = column(x), got = column(x);
    act.apply(want.data<float>(), n);
    for (int64_t i = 0; i < n; ++i) {
      float& y = got.data<float>()[i];
      switch (act.kind) {
#define MSERVE_ACTIVATION_CASE(KIND, ...) \
  case Kind::k##KIND: y = activation_math::KIND<float>(x[i], act.alpha, act.beta); break;
        MSERVE_ACTIVATIONS(MSERVE_ACTIVATION_CASE)
#undef MSERVE_ACTIVATION_CASE
        case Kind::kNone: break;
      }
    }
    expect_same(got, want, x, std::string("scalar ") + info.name);
  }
}

}  // namespace
}  // namespace mserve::testing
