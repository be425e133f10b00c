// Integer matrix products (kernels/int8_gemm.h) against a naive int64 reference: every
// signedness of A and B, zero points absent, scalar and per column, products small enough for
// the portable loop and large enough for oneDNN's int8 matmul (without VNNI: weights made
// unsaturating plus fixes, or the split in two, at the largest activations); and the
// fuse_matmul_integer pass, whose fused graph must give the unfused graph's floats bit for bit;
// the one-pass quantize-dequantize row kernel; and oneDNN's int8 convolutions (DnnlConv::
// create_int8), on activations in a 7-bit window or as they are, against a naive int64 conv.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "core/kernels/dnnl_conv.h"
#include "core/kernels/dnnl_matmul.h"
#include "core/kernels/int8_gemm.h"
#include "core/kernels/isa/isa.h"
#include "core/parallel/thread_pool.h"
#include "core/passes/passes.h"
#include "helpers.h"

namespace mserve::testing {
namespace {

Tensor random_int8(DType t, const Shape& s, uint32_t seed) {
  Tensor x = Tensor::empty(t, s).value();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(0, 255);  // the full range: saturating products would show
  for (int64_t i = 0; i < x.numel(); ++i) static_cast<uint8_t*>(x.raw())[i] = static_cast<uint8_t>(d(rng));
  return x;
}

int64_t int_value(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kInt8 ? t.data<int8_t>()[i] : t.data<uint8_t>()[i];
}

// Weights like a quantizer's (normal, standard deviation 30, clipped to int8's range): a few pairs
// of rows sum beyond 128 in a column (the unsaturating weights' fixes, without VNNI).
Tensor quantizer_like_int8(const Shape& s, uint32_t seed) {
  Tensor x = Tensor::empty(DType::kInt8, s).value();
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 30.f);
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data<int8_t>()[i] = static_cast<int8_t>(std::clamp(std::nearbyint(d(rng)), -128.f, 127.f));
  return x;
}

// Weights zero but for three rows in every 300 (149 to 151, where oneDNN's second block of K
// starts for K = 301 or 302) of 127 or -128: pairs that saturate whichever way rows pair up.
Tensor straddling_int8(const Shape& s) {
  Tensor x = Tensor::empty(DType::kInt8, s).value();
  const int64_t N = s[1];
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = i / N % 300, n = i % N;
    x.data<int8_t>()[i] = static_cast<int8_t>(k >= 149 && k <= 151 ? (n % 2 ? 127 : -128) : 0);
  }
  return x;
}

struct Case {
  int64_t M, K, N;
  DType a, b;
  int zb;               // 0: none, 1: scalar, 2: per column
  int kind = 0;         // b: 0 uniform over the full range, 1 quantizer_like_int8, 2 straddling_int8
  bool a_max = false;   // every a 255 (uint8) or 127 (int8): the largest products
  bool a_near = false;  // a within 20 of its zero point but one value in 50 far from it (uniform
                        // b without VNNI: the 7-bit window with a few values added back)
};

void check(const Case& c) {
  SCOPED_TRACE(std::to_string(c.M) + "x" + std::to_string(c.K) + "x" + std::to_string(c.N) + " a " + dtype_name(c.a) +
               " b " + dtype_name(c.b) + " zb " + std::to_string(c.zb));
  Tensor a = random_int8(c.a, Shape{c.M, c.K}, 1);
  Tensor b = c.kind == 1   ? quantizer_like_int8(Shape{c.K, c.N}, 2)
             : c.kind == 2 ? straddling_int8(Shape{c.K, c.N})
                           : random_int8(c.b, Shape{c.K, c.N}, 2);
  if (c.a_max) std::memset(a.raw(), c.a == DType::kInt8 ? 0x7f : 0xff, static_cast<size_t>(a.numel()));
  Tensor zb = random_int8(c.b, c.zb == 2 ? Shape{c.N} : Shape{}, 3);
  const int32_t za = c.a == DType::kInt8 ? -7 : 131;
  if (c.a_near) {
    std::mt19937 rng(4);
    const int lo = c.a == DType::kInt8 ? -128 : 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      const int far = rng() % 50 == 0 ? (rng() % 2 ? 110 : -110) : 0;
      const int v = std::clamp(za + static_cast<int>(rng() % 41) - 20 + far, lo, lo + 255);
      static_cast<uint8_t*>(a.raw())[i] = static_cast<uint8_t>(v);
    }
  }
  auto g = Int8Gemm::create(b, c.zb ? &zb : nullptr);
  ASSERT_TRUE(g.ok()) << g.status().message();
  if (c.M * c.K * c.N >= DnnlMatMul::kMinMacs && DnnlMatMul::u8s8_saturates()) {  // the path under test
    EXPECT_EQ(g.value()->windowed(), c.kind == 0);
    if (c.kind) EXPECT_GT(g.value()->fixed_products(), 0);
  }
  ThreadPool pool(2);
  const bool a_signed = c.a == DType::kInt8;
  auto ws_bytes = g.value()->prepare(c.M, a_signed, 2);
  ASSERT_TRUE(ws_bytes.ok()) << ws_bytes.status().message();
  std::vector<char> ws(ws_bytes.value() + 64);
  void* wsp = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) / 64 * 64);
  std::vector<int32_t> acc(static_cast<size_t>(c.M * c.N));
  ASSERT_TRUE(g.value()->run_int32(a.raw(), a_signed, za, c.M, acc.data(), wsp, pool).ok());
  std::vector<float> bs(static_cast<size_t>(c.N)), bias(static_cast<size_t>(c.N)), y(acc.size());
  for (int64_t n = 0; n < c.N; ++n) bs[n] = 0.001f * static_cast<float>(n + 1), bias[n] = 0.5f - 0.01f * n;
  const float as = 0.0173f;
  ASSERT_TRUE(
      g.value()->run_float(a.raw(), a_signed, za, c.M, as, bs.data(), true, bias.data(), y.data(), wsp, pool).ok());
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      int64_t want = 0;
      const int64_t z = c.zb ? int_value(zb, c.zb == 2 ? n : 0) : 0;
      for (int64_t k = 0; k < c.K; ++k) want += (int_value(a, m * c.K + k) - za) * (int_value(b, k * c.N + n) - z);
      ASSERT_EQ(acc[m * c.N + n], want) << "at " << m << ", " << n;
      const float f = static_cast<float>(want) * (as * bs[n]) + bias[n];
      ASSERT_EQ(y[m * c.N + n], f) << "at " << m << ", " << n;
    }
}

TEST(Int8Gemm, MatchesNaiveProducts) {
  for (DType a : {DType::kUInt8, DType::kInt8})
    for (DType b : {DType::kInt8, DType::kUInt8})
      for (int zb : {0, 1, 2}) {
        check({3, 5, 7, a, b, zb});       // portable loop
        check({37, 300, 520, a, b, zb});  // oneDNN (without VNNI: split into two products)
        check({1, 768, 256, a, b, zb});   // one row
        // without VNNI: the 7-bit window with the values outside it added back
        check({37, 300, 520, a, b, zb, 0, false, true});
        check({1, 768, 256, a, b, zb, 0, false, true});
      }
}

// Without VNNI: one product over weights made unsaturating plus the fixes (quantizer-like and
// straddling weights), at the row counts where oneDNN runs other kernels (1, 2, 37, 128), K odd
// and even, against the largest activations.
TEST(Int8Gemm, ExactWhereProductsSaturate) {
  for (int kind : {1, 2})
    for (int64_t M : {1, 2, 37, 128})
      for (int64_t K : {300, 301, 302, 768})
        for (bool a_max : {false, true}) {
          check({M, K, 264, DType::kUInt8, DType::kInt8, 0, kind, a_max});
          check({M, K, 264, DType::kInt8, DType::kInt8, 2, kind, a_max});
        }
}

// com.mserve QuantizeDequantize's row kernel: the floats of quantize_8bit then dequantize_8bit,
// bit for bit, on the baseline variant and on this CPU's, ties, NaN and infinities included.
TEST(QuantizeDequantize, SameFloatsAsTheTwoOperators) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.f, 6.f);
  std::vector<float> x(4099);
  for (float& v : x) v = d(rng);
  const float scale = 0.037f;
  for (size_t i = 0; i < 64; ++i) x[i] = (static_cast<float>(i) - 32.f + 0.5f) * scale;  // ties
  x[64] = NAN, x[65] = INFINITY, x[66] = -INFINITY, x[67] = 1e30f, x[68] = -1e30f;
  for (bool is_signed : {false, true})
    for (float z : {0.f, 7.f, is_signed ? -128.f : 255.f}) {
      std::vector<uint8_t> q(x.size());
      std::vector<float> want(x.size()), got(x.size()), base(x.size());
      quantize_8bit(x.data(), static_cast<int64_t>(x.size()), scale, z, is_signed, q.data());
      dequantize_8bit(q.data(), is_signed, static_cast<int64_t>(x.size()), scale, static_cast<int32_t>(z), want.data());
      quantize_dequantize_8bit(x.data(), static_cast<int64_t>(x.size()), scale, z, is_signed, got.data());
      isa_base::quantize_dequantize_8bit(x.data(), static_cast<int64_t>(x.size()), scale, z, is_signed, base.data());
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(got[i], want[i]) << "x " << x[i] << " signed " << is_signed << " z " << z;
        ASSERT_EQ(base[i], want[i]) << "x " << x[i] << " signed " << is_signed << " z " << z;
      }
    }
}

TEST(Int8Gemm, RefusesWhatItCannotTake) {
  Tensor f = random_tensor(Shape{4, 4}, 1);
  EXPECT_FALSE(Int8Gemm::create(f, nullptr).ok());
  Tensor b = random_int8(DType::kInt8, Shape{4, 4}, 1), zb = random_int8(DType::kInt8, Shape{3}, 2);
  EXPECT_FALSE(Int8Gemm::create(b, &zb).ok());
}

// x -> DynamicQuantizeLinear -> MatMulInteger(w) -> Cast -> Mul(x_scale * w_scale) -> Add(bias),
// as onnxruntime's quantize_dynamic writes it.
Graph dynamic_quantized_linear(int64_t M, int64_t K, int64_t N, bool per_column) {
  GraphBuilder gb;
  Tensor w = random_int8(DType::kInt8, Shape{K, N}, 4);
  Tensor wz = Tensor::empty(DType::kInt8, per_column ? Shape{N} : Shape{}).value();
  std::memset(wz.raw(), 0, wz.nbytes());
  Tensor ws = random_tensor(per_column ? Shape{N} : Shape{}, 5, 0.001f, 0.01f);
  gb.input("x", DType::kFloat32, {M, K}).constant("w", w).constant("wz", wz).constant("ws", ws);
  gb.constant("bias", random_tensor(Shape{N}, 6));
  gb.node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"});
  gb.node("MatMulInteger", {"xq", "w", "xz", "wz"}, {"acc"});
  gb.node("Cast", {"acc"}, {"accf"}).attrs["to"] = int_attr(1);
  gb.node("Mul", {"xs", "ws"}, {"s"});
  gb.node("Mul", {"accf", "s"}, {"p"});
  gb.node("Add", {"bias", "p"}, {"y"});
  gb.output("y");
  return gb.build();
}

TEST(FuseMatMulInteger, FusesAndKeepsTheFloats) {
  for (bool per_column : {false, true}) {
    Graph g = dynamic_quantized_linear(17, 200, 700, per_column);
    Graph fused = g;
    ASSERT_TRUE(optimize_graph(fused).ok());
    int mm = 0;
    for (const Node& n : fused.nodes) mm += n.op_type == "MatMulIntegerToFloat";
    EXPECT_EQ(mm, 1);
    EXPECT_EQ(fused.nodes.size(), 2u) << "DynamicQuantizeLinear and MatMulIntegerToFloat";
    Tensor x = random_tensor(Shape{17, 200}, 7, -3.f, 2.f);
    auto want = run_graph(g, {x}, 2, false), got = run_graph(g, {x}, 2, true);
    ASSERT_EQ(want.size(), 1u);
    ASSERT_EQ(got.size(), 1u);
    ASSERT_EQ(got[0].shape(), want[0].shape());
    EXPECT_EQ(std::memcmp(got[0].raw(), want[0].raw(), want[0].nbytes()), 0);
  }
}

// A static QDQ model's weight: DequantizeLinear(int8 constant, per-channel scales) -> Conv. The
// pass folds it to a float constant (so the conv runs channels-last on packed weights) and the
// result matches the unoptimized graph's within float32 summation order.
TEST(FoldDequantize, WeightsBecomeFloatConstants) {
  GraphBuilder gb;
  Tensor w = random_int8(DType::kInt8, Shape{4, 3, 3, 3}, 8);
  Tensor ws = random_tensor(Shape{4}, 9, 0.001f, 0.01f);
  Tensor wz = Tensor::empty(DType::kInt8, Shape{4}).value();
  for (int i = 0; i < 4; ++i) wz.data<int8_t>()[i] = static_cast<int8_t>(i - 2);
  gb.input("x", DType::kFloat32, {1, 3, 8, 8}).constant("w", w).constant("ws", ws).constant("wz", wz);
  gb.node("DequantizeLinear", {"w", "ws", "wz"}, {"wf"}).attrs["axis"] = int_attr(0);
  gb.node("Conv", {"x", "wf"}, {"y"});
  gb.output("y");
  Graph g = gb.build();
  Graph folded = g;
  ASSERT_TRUE(optimize_graph(folded).ok());
  for (const Node& n : folded.nodes) EXPECT_NE(n.op_type, "DequantizeLinear");
  Tensor x = random_tensor(Shape{1, 3, 8, 8}, 10);
  auto want = run_graph(g, {x}, 1, false), got = run_graph(g, {x}, 2, true);
  ASSERT_EQ(want.size(), 1u);
  ASSERT_EQ(got.size(), 1u);
  std::vector<double> ref(static_cast<size_t>(want[0].numel()));
  for (int64_t i = 0; i < want[0].numel(); ++i) ref[i] = want[0].float_at(i);
  expect_close(got[0], ref, want[0].shape(), 1e-5, 1e-6);
}

// One int8 convolution, channels-last, both 8-bit signednesses of X and Y.
struct ConvCase {
  int64_t N, H, W, C, M, group, k, s, d, pb, pe;
  bool x_signed, y_signed;
  int32_t x_zero, y_zero;
  int x_kind;  // 0 uniform over the full range, 1 every value the largest, 2 mostly inside the window,
               // 3 inside but for one value in one pixel of 40
  bool window;
};

void check_conv(const ConvCase& c) {
  SCOPED_TRACE("C" + std::to_string(c.C) + " M" + std::to_string(c.M) + " g" + std::to_string(c.group) + " k" +
               std::to_string(c.k) + " s" + std::to_string(c.s) + " d" + std::to_string(c.d) + " xz" +
               std::to_string(c.x_zero) + (c.x_signed ? " s8" : " u8") + " kind " + std::to_string(c.x_kind) +
               (c.window ? " window" : ""));
  const int64_t Cg = c.C / c.group, Mg = c.M / c.group;
  const int64_t OH = (c.H + c.pb + c.pe - ((c.k - 1) * c.d + 1)) / c.s + 1;
  const int64_t OW = (c.W + c.pb + c.pe - ((c.k - 1) * c.d + 1)) / c.s + 1;
  const DType xt = c.x_signed ? DType::kInt8 : DType::kUInt8;
  Tensor x = random_int8(xt, Shape{c.N, c.H, c.W, c.C}, 11);
  Tensor w = c.x_kind == 1 ? random_int8(DType::kInt8, Shape{c.M, Cg, c.k, c.k}, 12)
                           : quantizer_like_int8(Shape{c.M, Cg, c.k, c.k}, 12);
  if (c.x_kind == 1) {  // the largest activations times the largest weights: every pair saturates
    std::memset(x.raw(), c.x_signed ? 0x7f : 0xff, static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < w.numel(); ++i) w.data<int8_t>()[i] = i % 7 == 3 ? -128 : 127;
  }
  if (c.x_kind >= 2) {  // ReLU-like: near the zero point, one value in 100 (or one pixel's in 40) far above it
    std::mt19937 rng(13);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const bool far = c.x_kind == 2 ? rng() % 100 == 0 : (i / c.C) % 40 == 7 && i % c.C == (i / c.C) % c.C;
      const int v = std::clamp(c.x_zero + static_cast<int>(rng() % 60) + (far ? 120 : 0), c.x_signed ? -128 : 0,
                               c.x_signed ? 127 : 255);
      static_cast<uint8_t*>(x.raw())[i] = static_cast<uint8_t>(v);
    }
  }
  DnnlConv::Params p;
  p.C = c.C, p.M = c.M, p.group = c.group;
  p.k[0] = p.k[1] = c.k, p.s[0] = p.s[1] = c.s, p.d[0] = p.d[1] = c.d;
  p.nhwc = p.always = true;
  p.q.x_signed = c.x_signed, p.q.y_signed = c.y_signed, p.q.x_zero = c.x_zero, p.q.y_zero = c.y_zero;
  p.q.window = c.window;
  std::vector<float> bias(static_cast<size_t>(c.M));
  for (int64_t m = 0; m < c.M; ++m) {
    p.q.scales.push_back(2e-5f * static_cast<float>(m % 5 + 1));
    bias[m] = static_cast<float>((m * 7919) % 20001 - 10000);
  }
  auto conv = DnnlConv::create_int8(p, w.data<int8_t>(), bias.data());
  ASSERT_NE(conv, nullptr);
  const DnnlConv::Geometry g{c.N, c.H, c.W, OH, OW, {c.pb, c.pb}, {c.pe, c.pe}};
  auto bytes = conv->prepare(g, 2);
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  std::vector<char> ws(bytes.value() + 64);
  void* wsp = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) / 64 * 64);
  std::vector<uint8_t> y(static_cast<size_t>(c.N * OH * OW * c.M));
  ASSERT_TRUE(conv->run(x.raw(), y.data(), g, wsp, 2).ok());
  const float lo = c.y_signed ? -128.f : 0.f, hi = c.y_signed ? 127.f : 255.f;
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t m = 0; m < c.M; ++m) {
          const int64_t grp = m / Mg;
          int64_t acc = 0;
          for (int64_t cg = 0; cg < Cg; ++cg)
            for (int64_t i = 0; i < c.k; ++i)
              for (int64_t j = 0; j < c.k; ++j) {
                const int64_t ih = oh * c.s - c.pb + i * c.d, iw = ow * c.s - c.pb + j * c.d;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;  // padding: x_zero, 0 after the shift
                const int64_t xv = int_value(x, ((n * c.H + ih) * c.W + iw) * c.C + grp * Cg + cg) - c.x_zero;
                acc += xv * w.data<int8_t>()[((m * Cg + cg) * c.k + i) * c.k + j];
              }
          const float r = static_cast<float>(acc + static_cast<int64_t>(bias[m])) * p.q.scales[m];
          const int want = static_cast<int>(std::clamp(std::nearbyint(r) + static_cast<float>(c.y_zero), lo, hi));
          const size_t at = static_cast<size_t>(((n * OH + oh) * OW + ow) * c.M + m);
          const int got = c.y_signed ? static_cast<int8_t>(y[at]) : y[at];
          // oneDNN's own requantization (with VNNI) scales in another float order: a value within
          // float rounding of a tie may round the other way.
          const double exact = static_cast<double>(acc + static_cast<int64_t>(bias[m])) * p.q.scales[m];
          const bool tie = std::abs(std::abs(exact - std::trunc(exact)) - 0.5) < 1e-5 * std::max(1.0, std::abs(exact));
          if (tie && std::abs(got - want) == 1) continue;
          ASSERT_EQ(got, want) << "at n " << n << " oh " << oh << " ow " << ow << " m " << m << " (sum " << acc << ")";
        }
}

// On CPUs without VNNI every case with more than one channel per group runs in the 7-bit window
// whatever `window` says; with VNNI the unforced cases check oneDNN's own int8 convolution.
TEST(Int8Conv, MatchesNaiveConvolution) {
  if (!DnnlConv::int8_supported()) GTEST_SKIP() << "no oneDNN int8 convolutions on this CPU";
  const ConvCase cases[] = {
      // N  H  W   C   M  g  k  s  d pb pe xs     ys     xz    yz  kind window
      {2, 9, 8, 64, 32, 1, 3, 1, 1, 1, 1, false, false, 131, 100, 0, true},
      {1, 7, 7, 64, 16, 1, 3, 1, 1, 1, 1, false, false, 0, 3, 1, true},  // every pair saturates
      {1, 7, 7, 64, 16, 1, 3, 1, 1, 1, 1, true, true, 0, -3, 1, true},
      {2, 9, 9, 16, 8, 2, 3, 2, 2, 2, 1, true, false, -3, 7, 0, true},      // groups, stride, dilation
      {1, 6, 5, 300, 17, 1, 1, 1, 1, 0, 0, false, true, 250, 0, 0, true},   // a window at the top
      {1, 6, 5, 300, 17, 1, 1, 1, 1, 0, 0, false, false, 5, 9, 0, true},    // and at the bottom
      {2, 14, 14, 96, 64, 1, 1, 1, 1, 0, 0, false, false, 0, 10, 2, true},  // ReLU-like
      {2, 14, 14, 96, 24, 1, 1, 1, 1, 0, 0, false, false, 0, 10, 3, true},  // few pixels outside
      {1, 20, 20, 40, 72, 1, 1, 1, 1, 0, 0, true, true, -100, 3, 3, true},
      {1, 10, 10, 48, 24, 3, 5, 2, 1, 2, 2, false, false, 60, 128, 2, true},
      {2, 9, 8, 64, 32, 1, 3, 1, 1, 1, 1, false, false, 131, 100, 0, false},
      {1, 8, 8, 32, 32, 32, 3, 1, 1, 1, 1, false, false, 128, 128, 1, false},  // depthwise: as it is
      {1, 8, 8, 32, 32, 32, 3, 2, 1, 1, 0, true, true, -5, 0, 0, true},        // depthwise over int8: the window
      {1, 8, 8, 32, 32, 32, 3, 1, 1, 1, 1, false, false, 5, 250, 0, false},
  };
  for (const ConvCase& c : cases) check_conv(c);
}

}  // namespace
}  // namespace mserve::testing
