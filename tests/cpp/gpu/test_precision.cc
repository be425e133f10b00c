// The 16-bit precisions without a GPU: the conversions (ops/convert_math.h, compiled here by g++)
// against a naive search for the nearest 16-bit value; the cuBLASLt and cuDNN descriptors the
// kernels build for each precision, read back; which weights the kernels convert and keep, and
// the workspace they ask for.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <cublasLt.h>
#include <cudnn.h>

#include "gpu/context.h"
#include "gpu/lib/blas.h"
#include "gpu/lib/dnn.h"
#include "gpu/ops/conv.h"
#include "gpu/ops/convert.h"
#include "gpu/ops/convert_math.h"
#include "helpers.h"

namespace mserve::gpu {
namespace {

using mserve::testing::GraphBuilder;
using mserve::testing::random_tensor;

// A 16-bit pattern's value from the format's definition: 1 sign bit, `ebits` exponent bits,
// the rest mantissa. Infinity is returned as the value one step past the largest finite number
// (2^(emax+1)), which is where round-to-nearest puts the overflow boundary.
double decode(uint16_t b, int ebits, bool* nan, bool* inf) {
  const int mbits = 15 - ebits, bias = (1 << (ebits - 1)) - 1, emax_code = (1 << ebits) - 1;
  const int e = (b >> mbits) & emax_code;
  const int m = b & ((1 << mbits) - 1);
  const double sign = (b & 0x8000) ? -1.0 : 1.0;
  *nan = e == emax_code && m != 0;
  *inf = e == emax_code && m == 0;
  if (*inf) return sign * std::ldexp(1.0, emax_code - bias);
  if (e == 0) return sign * std::ldexp(m, 1 - bias - mbits);
  return sign * std::ldexp((1 << mbits) + m, e - bias - mbits);
}

// The nearest 16-bit pattern to x by looking at all of those of x's sign; ties go to the even
// mantissa.
uint16_t nearest(float x, int ebits) {
  const auto inf_bits = static_cast<uint16_t>(((1 << ebits) - 1) << (15 - ebits));
  if (std::isinf(x)) return static_cast<uint16_t>(inf_bits | (x < 0 ? 0x8000 : 0));
  uint16_t best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (uint32_t b = 0; b < 65536; ++b) {
    bool nan, inf;
    const double v = decode(static_cast<uint16_t>(b), ebits, &nan, &inf);
    if (nan || ((b & 0x8000) != 0) != std::signbit(x)) continue;  // the nearest has x's sign (zero too)
    const double d = std::fabs(v - static_cast<double>(x));
    if (d < best_d || (d == best_d && (b & 1) == 0)) best = static_cast<uint16_t>(b), best_d = d;
  }
  return best;
}

struct Format {
  Operand t;
  int ebits;
};
const Format kFormats[] = {{Operand::kF16, 5}, {Operand::kBf16, 8}};

std::vector<float> probe_values(int ebits) {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.0f,
                          1e-3f,
                          3.14159265f,
                          65504.0f,
                          65519.99f,
                          65520.0f,
                          1e5f,
                          -1e5f,
                          5.96e-8f,
                          2.98e-8f,
                          2.99e-8f,
                          1e-40f,
                          std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()};
  // Exact midpoints between neighbours (ties) and their float neighbours, across the range.
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    const auto b = static_cast<uint16_t>(rng() & 0x7ffe);
    bool nan, inf;
    const double lo = decode(b, ebits, &nan, &inf), hi = decode(b + 1, ebits, &nan, &inf);
    if (nan || inf) continue;
    const auto mid = static_cast<float>((lo + hi) / 2);
    v.push_back(mid);
    v.push_back(-mid);
    v.push_back(std::nextafter(mid, 0.0f));
    v.push_back(std::nextafter(mid, 1e30f));
  }
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int i = 0; i < 300; ++i) v.push_back(d(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 40) - 20));
  return v;
}

TEST(Precision, ConversionsRoundToTheNearestEvenSixteenBitValue) {
  for (const Format& f : kFormats) {
    for (float x : probe_values(f.ebits)) {
      const uint16_t got = to_bits16(x, f.t), want = nearest(x, f.ebits);
      ASSERT_EQ(got, want) << (f.t == Operand::kF16 ? "fp16 " : "bf16 ") << x;
    }
    const uint16_t q = to_bits16(std::numeric_limits<float>::quiet_NaN(), f.t);
    bool nan, inf;
    decode(q, f.ebits, &nan, &inf);
    EXPECT_TRUE(nan) << "NaN stays NaN";
  }
}

TEST(Precision, WideningGivesEveryPatternsValue) {
  for (const Format& f : kFormats)
    for (uint32_t b = 0; b < 65536; ++b) {
      bool nan, inf;
      const double v = decode(static_cast<uint16_t>(b), f.ebits, &nan, &inf);
      const float got = from_bits16(static_cast<uint16_t>(b), f.t);
      if (nan) {
        ASSERT_TRUE(std::isnan(got)) << b;
      } else if (inf) {
        ASSERT_EQ(got, std::copysign(std::numeric_limits<float>::infinity(), static_cast<float>(v))) << b;
      } else {
        ASSERT_EQ(static_cast<double>(got), v) << b;
        ASSERT_EQ(std::signbit(got), std::signbit(v)) << b;
      }
    }
}

TEST(Precision, HostConversionOfWeightsIsTheDevicesRounding) {
  std::vector<float> w = {0.1f, -2.5f, 65520.0f, 1e-9f};
  for (const Format& f : kFormats) {
    const std::vector<uint16_t> got = to_bits16(w.data(), static_cast<int64_t>(w.size()), f.t);
    ASSERT_EQ(got.size(), w.size());
    for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(got[i], nearest(w[i], f.ebits)) << w[i];
  }
  // The kernels' 16-bit copies: one after another, 256-aligned, after what they skip.
  alignas(256) static char ws[4096];
  Workspace16 w16(ws, 512);
  EXPECT_EQ(reinterpret_cast<char*>(w16.reserve(3)), ws + 512);
  EXPECT_EQ(reinterpret_cast<char*>(w16.reserve(200)), ws + 768);  // 3 values took 256 bytes
  EXPECT_EQ(reinterpret_cast<char*>(w16.reserve(1)), ws + 1280);   // 200 took 512
  EXPECT_EQ(bytes16(Shape{3}) + bytes16(Shape{10, 20}), size_t{768});
  EXPECT_EQ(aligned256(0), 0u);
  EXPECT_EQ(aligned256(1), 256u);
  EXPECT_EQ(aligned256(512), 512u);
}

TEST(Precision, ProductDescriptorsTakeSixteenBitOperandsAndAccumulateInFloat32) {
  GemmShape s;
  s.m = 128, s.n = 3072, s.k = 768;
  s.epilogue = Epilogue::kBias;
  const std::pair<Operand, int32_t> cases[] = {
      {Operand::kF32, CUDA_R_32F}, {Operand::kF16, CUDA_R_16F}, {Operand::kBf16, CUDA_R_16BF}};
  for (const auto& [t, type] : cases) {
    s.operands = t;
    auto p = GemmPlan::create(s);
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_EQ(p.value()->layout('A').type, type) << s.str();
    EXPECT_EQ(p.value()->layout('B').type, type) << s.str();
    EXPECT_EQ(p.value()->layout('C').type, CUDA_R_32F) << s.str();
    EXPECT_EQ(p.value()->compute_type(), CUBLAS_COMPUTE_32F) << s.str();
    EXPECT_EQ(p.value()->epilogue_code(), CUBLASLT_EPILOGUE_BIAS);
  }
  s.operands = Operand::kF16;
  EXPECT_NE(s.str().find("fp16"), std::string::npos);
  GemmShape f32 = s;
  f32.operands = Operand::kF32;
  EXPECT_FALSE(s == f32) << "plans are cached per operand type";
  s.tf32 = true;
  EXPECT_EQ(GemmPlan::create(s).status().code(), Code::kInvalidArgument);
}

TEST(Precision, ConvolutionDescriptorsForEachPrecision) {
  ConvSpec s;
  s.n = 1, s.c = 64, s.h = 56, s.w = 56, s.m = 64, s.kh = 3, s.kw = 3, s.pad_h = s.pad_w = 1;
  struct Want {
    Operand data;
    bool tf32;
    int type, math;
  };
  const Want wants[] = {{Operand::kF32, false, CUDNN_DATA_FLOAT, CUDNN_FMA_MATH},
                        {Operand::kF32, true, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION},
                        {Operand::kF16, false, CUDNN_DATA_HALF, CUDNN_TENSOR_OP_MATH},
                        {Operand::kBf16, false, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_OP_MATH}};
  for (bool nhwc : {false, true})
    for (const Want& w : wants) {
      s.nhwc = nhwc, s.data = w.data, s.tf32 = w.tf32;
      auto p = ConvPlan::create(s);
      ASSERT_TRUE(p.ok()) << p.status().message();
      const ConvPlan::Types t = p.value()->types();
      EXPECT_EQ(t.x, w.type) << s.str();
      EXPECT_EQ(t.w, w.type) << s.str();
      EXPECT_EQ(t.y, w.type) << s.str();
      EXPECT_EQ(t.compute, CUDNN_DATA_FLOAT) << s.str() << ": float32 accumulation";
      EXPECT_EQ(t.math, w.math) << s.str();
    }
  s.data = Operand::kBf16, s.tf32 = true;
  EXPECT_EQ(ConvPlan::create(s).status().code(), Code::kInvalidArgument);
}

GpuOptions with(Precision p) {
  GpuOptions o;
  o.precision = p;
  return o;
}

// A MatMul's constant weights are converted when its kernel is created and read from the
// kernel's copy (the planner leaves the float32 original on the host); the activation's
// conversion takes the workspace. A product of two activations converts both per run.
TEST(Precision, ProductKernelsKeepConvertedWeightsAndSizeTheirWorkspace) {
  GraphBuilder gb;
  gb.input("x", DType::kFloat32, {8, 768});
  gb.input("z", DType::kFloat32, {768, 100});
  gb.constant("w", random_tensor(Shape{768, 3072}, 1));
  gb.node("MatMul", {"x", "w"}, {"y"});
  gb.node("MatMul", {"x", "z"}, {"v"});
  Graph g = gb.output("y").output("v").build();
  KernelInit init(g);
  ValueInfo x{DType::kFloat32, Shape{8, 768}, nullptr}, w{DType::kFloat32, Shape{768, 3072}, nullptr},
      z{DType::kFloat32, Shape{768, 100}, nullptr};
  for (Precision p : {Precision::kFp32, Precision::kTf32, Precision::kFp16, Precision::kBf16}) {
    const bool half = p == Precision::kFp16 || p == Precision::kBf16;
    CudaBackend cuda(with(p));
    auto weights = cuda.create_kernel(g.nodes[0], init).value();
    auto acts = cuda.create_kernel(g.nodes[1], init).value();
    EXPECT_EQ(weights->host_input(1), half) << precision_name(p);
    EXPECT_FALSE(acts->host_input(1)) << precision_name(p);
    std::vector<const ValueInfo*> in{&x, &w};
    InferContext c1(g.nodes[0], in, 1);
    ASSERT_TRUE(weights->infer(c1).ok());
    EXPECT_EQ(c1.workspace(), half ? size_t{8 * 768 * 2} : 0u) << precision_name(p);
    std::vector<const ValueInfo*> in2{&x, &z};
    InferContext c2(g.nodes[1], in2, 1);
    ASSERT_TRUE(acts->infer(c2).ok());
    EXPECT_EQ(c2.workspace(), half ? size_t{8 * 768 * 2 + 768 * 100 * 2 + 0} : 0u) << precision_name(p);
  }
}

TEST(Precision, ConvolutionKernelsKeepConvertedWeights) {
  GraphBuilder gb;
  gb.input("x", DType::kFloat32, {1, 8, 9, 9});
  gb.input("u", DType::kFloat32, {4, 8, 3, 3});
  gb.constant("w", random_tensor(Shape{4, 8, 3, 3}, 1));
  gb.node("Conv", {"x", "w"}, {"y"});
  gb.node("Conv", {"x", "u"}, {"v"});
  Graph g = gb.output("y").output("v").build();
  KernelInit init(g);
  for (Precision p : {Precision::kFp32, Precision::kTf32, Precision::kFp16, Precision::kBf16}) {
    const bool half = p == Precision::kFp16 || p == Precision::kBf16;
    CudaBackend cuda(with(p));
    EXPECT_EQ(cuda.create_kernel(g.nodes[0], init).value()->host_input(1), half) << precision_name(p);
    EXPECT_FALSE(cuda.create_kernel(g.nodes[1], init).value()->host_input(1)) << precision_name(p);
  }
}

// Without a GPU the upload fails as a Status naming the weights, and the host copy stays for a
// later try; a moved-from holder holds nothing.
TEST(Precision, KernelsOwnWeightsWithoutADevice) {
  DeviceWeights w(std::vector<uint16_t>(10, 1));
  EXPECT_FALSE(w.empty());
  EXPECT_EQ(w.bytes(), 20u);
  auto got = w.get("test weights");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("allocating test weights"), std::string::npos) << got.status().message();
  EXPECT_EQ(w.bytes(), 20u);
  DeviceWeights moved(std::move(w));
  EXPECT_TRUE(w.empty());  // NOLINT(bugprone-use-after-move): what a moved-from holder says
  EXPECT_FALSE(moved.empty());
  DeviceWeights none;
  EXPECT_TRUE(none.empty());
}

TEST(Precision, NamesRoundTrip) {
  for (Precision p : {Precision::kFp32, Precision::kTf32, Precision::kFp16, Precision::kBf16}) {
    Precision back;
    ASSERT_TRUE(parse_precision(precision_name(p), &back));
    EXPECT_EQ(back, p);
  }
  Precision out;
  EXPECT_FALSE(parse_precision("half", &out));
  EXPECT_EQ(with(Precision::kFp16).operand(), Operand::kF16);
  EXPECT_EQ(with(Precision::kBf16).operand(), Operand::kBf16);
  EXPECT_EQ(with(Precision::kTf32).operand(), Operand::kF32);
  EXPECT_FALSE(with(Precision::kFp32).tf32());
  EXPECT_TRUE(with(Precision::kBf16).tf32()) << "attention's activation products stay float32 on TF32";
}

// Where cuBLASLt has no algorithm with the bias epilogue for a combination of types, the plan
// goes on without it and the product kernel adds the bias and applies the ReLU itself, with the
// convolution epilogue's arithmetic over the row-major [M, N] output (conv_math.h, plane 0).
TEST(Precision, AProductWithoutItsEpilogueGetsTheBiasAndReluAfter) {
  GemmShape s;
  s.m = 3, s.n = 5, s.k = 4;
  s.operands = Operand::kBf16;
  s.epilogue = Epilogue::kReluBias;
  auto p = GemmPlan::create(s).value();
  EXPECT_TRUE(p->epilogue_in_product());
  EXPECT_EQ(p->epilogue_code(), CUBLASLT_EPILOGUE_RELU_BIAS);
  ASSERT_TRUE(p->drop_epilogue().ok());
  EXPECT_FALSE(p->epilogue_in_product());
  EXPECT_EQ(p->epilogue_code(), CUBLASLT_EPILOGUE_DEFAULT);
  const float bias[5] = {1, -2, 3, -4, 0.5f};
  ConvEpilogue e;
  e.bias = bias;
  e.channels = s.n;
  e.plane = 0;
  e.act = FusedActivation::Kind::kRelu;
  for (int64_t i = 0; i < s.m * s.n; ++i) {
    const float product = 0.25f * static_cast<float>(i) - 1.0f;
    EXPECT_EQ(conv_epilogue(e, i, product), std::max(0.0f, product + bias[i % 5])) << i;
  }
}

}  // namespace
}  // namespace mserve::gpu
