// 16-bit floats: HalfAsFloat (kernels computing float16/bfloat16 in float32, rounding each
// result once) and the widen_half_floats pass (a 16-bit model computing in float32 between its
// inputs and outputs). The reference is double-precision arithmetic on the 16-bit values.
#include <cmath>
#include <cstring>

#include "core/passes/passes.h"
#include "helpers.h"

namespace mserve::testing {
namespace {

template <class H>
Tensor to_half(const Tensor& f) {
  Tensor h = Tensor::empty(DTypeOf<H>::value, f.shape()).value();
  for (int64_t i = 0; i < f.numel(); ++i) h.data<H>()[i] = H(f.data<float>()[i]);
  return h;
}

template <class H>
double value(const Tensor& t, int64_t i) {
  return static_cast<double>(static_cast<float>(t.data<H>()[i]));
}

// y = relu(x W + b) in 16 bits, W and b constant: the Gemm kernel has no 16-bit path, so it is
// created over float32 copies of W and b and its result rounded once; Relu of a float16 runs
// natively, of a bfloat16 in float32.
template <class H>
void gemm_relu_rounds_each_node_once(bool optimize) {
  const int64_t M = 5, K = 33, N = 7;
  Tensor x = to_half<H>(random_tensor(Shape{M, K}, 1)), w = to_half<H>(random_tensor(Shape{K, N}, 2));
  Tensor b = to_half<H>(random_tensor(Shape{N}, 3));
  GraphBuilder gb;
  gb.input("x", DTypeOf<H>::value, {M, K}).constant("w", w).constant("b", b);
  gb.node("Gemm", {"x", "w", "b"}, {"g"});
  gb.node("Relu", {"g"}, {"y"});
  gb.output("y");
  Graph g = gb.build();
  g.values[g.outputs[0]].dtype = DTypeOf<H>::value;
  auto out = run_graph(g, {x}, 2, optimize);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].dtype(), DTypeOf<H>::value);
  ASSERT_EQ(out[0].shape(), (Shape{M, N}));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = value<H>(b, n);
      for (int64_t k = 0; k < K; ++k) acc += value<H>(x, m * K + k) * value<H>(w, k * N + n);
      // Rounded to 16 bits after the Gemm (optimize off) or only at the output (widened).
      const double g = optimize ? acc : static_cast<double>(static_cast<float>(H(static_cast<float>(acc))));
      const double want = static_cast<float>(H(static_cast<float>(std::max(g, 0.0))));
      const double ulp = std::is_same_v<H, Eigen::half> ? std::ldexp(1.0, -10) : std::ldexp(1.0, -7);
      // float32 accumulation differs from double by far less than half a 16-bit unit: the
      // result may round the other way only at a tie, one unit off.
      EXPECT_LE(std::abs(value<H>(out[0], m * N + n) - want), ulp * std::max(std::abs(want), 1.0))
          << "row " << m << " column " << n << (optimize ? " (widened)" : " (per node)");
    }
}

TEST(HalfAsFloat, Float16GemmReluPerNode) { gemm_relu_rounds_each_node_once<Eigen::half>(false); }
TEST(HalfAsFloat, BFloat16GemmReluPerNode) { gemm_relu_rounds_each_node_once<Eigen::bfloat16>(false); }
TEST(WidenHalf, Float16GemmReluRoundsAtTheOutput) { gemm_relu_rounds_each_node_once<Eigen::half>(true); }
TEST(WidenHalf, BFloat16GemmReluRoundsAtTheOutput) { gemm_relu_rounds_each_node_once<Eigen::bfloat16>(true); }

TEST(WidenHalf, OnlyTheInputsAndOutputsStay16Bit) {
  GraphBuilder gb;
  gb.input("x", DType::kFloat16, {4}).constant("k", to_half<Eigen::half>(random_tensor(Shape{4}, 4)));
  gb.node("Mul", {"x", "k"}, {"m"});
  gb.node("Cast", {"m"}, {"c"}).attrs["to"] = int_attr(10);  // to float16: becomes float32
  gb.node("Add", {"c", "x"}, {"y"});
  gb.output("y");
  Graph g = gb.build();
  Graph untyped = g;  // an output of unknown type may be a 16-bit one: nothing changes
  ASSERT_TRUE(widen_half_floats(untyped).ok());
  EXPECT_EQ(untyped.nodes.size(), 3u);
  g.values[g.outputs[0]].dtype = DType::kFloat16;
  ASSERT_TRUE(widen_half_floats(g).ok());
  int casts_in = 0, casts_out = 0;
  for (const Node& n : g.nodes) {
    if (n.op_type != "Cast") continue;
    const int64_t to = n.attr_int("to", 0);
    if (n.inputs[0] == g.inputs[0]) casts_in += to == 1;
    if (n.outputs[0] == g.outputs[0]) casts_out += to == 10;
    if (n.inputs[0] != g.inputs[0] && n.outputs[0] != g.outputs[0]) EXPECT_EQ(to, 1) << n.name;
  }
  EXPECT_EQ(casts_in, 1);
  EXPECT_EQ(casts_out, 1);
  for (const auto& [id, t] : g.initializers) EXPECT_EQ(t.dtype(), DType::kFloat32) << g.values[id].name;
  EXPECT_EQ(g.values[g.inputs[0]].dtype, DType::kFloat16);
  EXPECT_EQ(g.values[g.outputs[0]].dtype, DType::kFloat16);
  for (const Node& n : g.nodes)  // x itself is read only by its Cast
    if (n.op_type != "Cast")
      for (int v : n.inputs) EXPECT_NE(v, g.inputs[0]) << n.name;
}

TEST(WidenHalf, LeavesFloat32ModelsAndBitCastsAlone) {
  GraphBuilder f32;  // a float32 model that rounds through float16 on purpose
  f32.input("x", DType::kFloat32, {3});
  f32.node("Cast", {"x"}, {"h"}).attrs["to"] = int_attr(10);
  f32.node("Cast", {"h"}, {"y"}).attrs["to"] = int_attr(1);
  f32.output("y");
  Graph g = f32.build();
  g.values[g.outputs[0]].dtype = DType::kFloat32;
  ASSERT_TRUE(widen_half_floats(g).ok());
  EXPECT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].attr_int("to", 0), 10);

  GraphBuilder bits;  // the bits of a float16 are the answer
  bits.opset(26).input("x", DType::kFloat16, {3});
  bits.node("BitCast", {"x"}, {"y"}).attrs["to"] = int_attr(4);  // uint16
  bits.output("y");
  Graph b = bits.build();
  b.values[b.outputs[0]].dtype = DType::kUInt16;
  ASSERT_TRUE(widen_half_floats(b).ok());
  EXPECT_EQ(b.nodes.size(), 1u);
}

// bfloat16 from float rounds to nearest, ties to even (as ml_dtypes): checked on every float
// whose low 16 bits sit at, just below and just above the halfway point.
TEST(BFloat16, RoundsToNearestEven) {
  for (uint32_t hi = 0; hi < 0x10000; hi += 7) {
    for (uint32_t lo : {0x7fffu, 0x8000u, 0x8001u, 0x0001u, 0xffffu}) {
      const uint32_t bits = hi << 16 | lo;
      float f;
      std::memcpy(&f, &bits, 4);
      if (std::isnan(f)) continue;
      uint16_t want = static_cast<uint16_t>(hi);
      if (lo > 0x8000u || (lo == 0x8000u && (hi & 1u)))
        want = static_cast<uint16_t>(want + 1);  // carries into the exponent
      const Eigen::bfloat16 got(f);
      EXPECT_EQ(Eigen::numext::bit_cast<uint16_t>(got), want) << std::hex << bits;
    }
  }
}

}  // namespace
}  // namespace mserve::testing
