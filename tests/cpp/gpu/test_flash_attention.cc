// The fused MultiHeadAttention kernel's arithmetic (ops/flash_attention_math.h, replayed on the
// host tile by tile and lane by lane as the device runs it) against the CPU kernel run through a
// Session and against the attention computed in double; and the kernel's place in MhaKernel: the
// sizes that choose it, its empty workspace, the option that turns it off.
//
// Exactness: the online softmax sums in another order than the CPU and rescales as it goes, so
// the bound is a relative L2 error of 1e-6, both against the CPU and against double. Rows whose
// every key is masked must be zeros in all three.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "compare.h"
#include "gpu/context.h"
#include "gpu/ops/attention.h"
#include "gpu/ops/flash_attention.h"
#include "gpu/ops/flash_attention_math.h"
#include "gpu/ops/flash_tc_math.h"
#include "helpers.h"

namespace mserve::gpu {
namespace {

using mserve::testing::float_attr;
using mserve::testing::GraphBuilder;
using mserve::testing::string_attr;

constexpr float kInf = std::numeric_limits<float>::infinity();

Tensor zeros(DType t, const Shape& s) {
  Tensor x = Tensor::empty(t, s).value();
  std::fill(static_cast<char*>(x.raw()), static_cast<char*>(x.raw()) + x.nbytes(), 0);
  return x;
}

// ---------------------------------------------------------------- cases

enum class Mask {
  kNone,
  kFloatPadding,  // [B, 1, 1, Lk]: the last b keys of entry b at -inf, every key of the last entry
  kBoolCausal,    // [B, 1, Lq, Lk]: causal, aligned at the end; the first row of each entry empty
  kFloatFull,     // [Lq, Lk] in [-2, 0]; the last row all -inf
  kFloatPerRow,   // [B, H, Lq, 1]: one value for every key of a row; row 0 of each head at -inf
  kBoolKeys,      // [Lk]: a random half of the keys (key 0 always kept)
  kFloatBert,     // [B, 1, 1, Lk]: -10000 on a fifth of the keys (finite: nothing fully masked)
};

const char* mask_name(Mask m) {
  switch (m) {
    case Mask::kNone: return "none";
    case Mask::kFloatPadding: return "float padding";
    case Mask::kBoolCausal: return "bool causal";
    case Mask::kFloatFull: return "float full";
    case Mask::kFloatPerRow: return "float per row";
    case Mask::kBoolKeys: return "bool keys";
    case Mask::kFloatBert: return "float -10000";
  }
  return "?";
}

enum class Values {
  kUniform,   // Q, K, V in [-1, 1], scale 1 / sqrt(D)
  kHuge,      // Q, K small integers, scale 2^60: logits near 1e22 (exact in float)
  kNegative,  // Q, K small integers, scale -16: large logits of both signs (exact in float)
};

struct Case {
  bool bshd;
  int64_t B, H, Lq, Lk, D, Dv;
  Mask mask;
  Values values = Values::kUniform;

  std::string str() const {
    return std::string(bshd ? "bshd" : "bhsd") + " B" + std::to_string(B) + " H" + std::to_string(H) + " Lq" +
           std::to_string(Lq) + " Lk" + std::to_string(Lk) + " D" + std::to_string(D) + " Dv" + std::to_string(Dv) +
           " mask " + mask_name(mask) + " values " + std::to_string(static_cast<int>(values));
  }
  Shape shape(int64_t L, int64_t W) const { return bshd ? Shape{B, L, H, W} : Shape{B, H, L, W}; }
  float scale() const {
    switch (values) {
      case Values::kHuge: return std::ldexp(1.0f, 60);
      case Values::kNegative: return -16.0f;
      default: return 1.0f / std::sqrt(static_cast<float>(D));
    }
  }
};

struct Inputs {
  Tensor q, k, v, mask;
  bool has_mask = false;
};

Tensor fill(const Shape& s, uint32_t seed, bool integers) {
  Tensor t = zeros(DType::kFloat32, s);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::uniform_int_distribution<int> n(-8, 8);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = integers ? static_cast<float>(n(rng)) : u(rng);
  return t;
}

Inputs make_inputs(const Case& c, uint32_t seed) {
  Inputs in;
  const bool ints = c.values != Values::kUniform;
  in.q = fill(c.shape(c.Lq, c.D), seed, ints);
  in.k = fill(c.shape(c.Lk, c.D), seed + 1, ints);
  in.v = fill(c.shape(c.Lk, c.Dv), seed + 2, false);
  std::mt19937 rng(seed + 3);
  std::uniform_real_distribution<float> u(-2.f, 0.f), coin(0.f, 1.f);
  in.has_mask = c.mask != Mask::kNone;
  switch (c.mask) {
    case Mask::kNone: break;
    case Mask::kFloatPadding: {
      in.mask = zeros(DType::kFloat32, Shape{c.B, 1, 1, c.Lk});
      float* m = in.mask.data<float>();
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t j = b + 1 == c.B && c.B > 1 ? 0 : c.Lk - std::min(b, c.Lk); j < c.Lk; ++j) m[b * c.Lk + j] = -kInf;
      break;
    }
    case Mask::kBoolCausal: {
      in.mask = zeros(DType::kBool, Shape{c.B, 1, c.Lq, c.Lk});
      bool* m = in.mask.data<bool>();
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t i = 0; i < c.Lq; ++i)
          for (int64_t j = 0; j < c.Lk; ++j) m[(b * c.Lq + i) * c.Lk + j] = i > 0 && j <= i + (c.Lk - c.Lq);
      break;
    }
    case Mask::kFloatFull: {
      in.mask = zeros(DType::kFloat32, Shape{c.Lq, c.Lk});
      float* m = in.mask.data<float>();
      for (int64_t i = 0; i < c.Lq * c.Lk; ++i) m[i] = i / c.Lk == c.Lq - 1 ? -kInf : u(rng);
      break;
    }
    case Mask::kFloatPerRow: {
      in.mask = zeros(DType::kFloat32, Shape{c.B, c.H, c.Lq, 1});
      float* m = in.mask.data<float>();
      for (int64_t r = 0; r < c.B * c.H * c.Lq; ++r) m[r] = r % c.Lq == 0 ? -kInf : u(rng);
      break;
    }
    case Mask::kBoolKeys: {
      in.mask = zeros(DType::kBool, Shape{c.Lk});
      for (int64_t j = 0; j < c.Lk; ++j) in.mask.data<bool>()[j] = j == 0 || coin(rng) < 0.5f;
      break;
    }
    case Mask::kFloatBert: {
      in.mask = zeros(DType::kFloat32, Shape{c.B, 1, 1, c.Lk});
      for (int64_t j = 0; j < c.B * c.Lk; ++j) in.mask.data<float>()[j] = coin(rng) < 0.2f ? -10000.f : 0.f;
      break;
    }
  }
  return in;
}

// ---------------------------------------------------------------- the three evaluations

// The kernels' parameters for a case, writing into y.
FlashParams params_of(const Case& c, const Inputs& in, Tensor& y) {
  FlashParams p;
  p.q = in.q.data<float>();
  p.k = in.k.data<float>();
  p.v = in.v.data<float>();
  p.y = y.data<float>();
  if (in.has_mask) {
    const MhaMask mk = mha_mask_strides(in.mask.shape());
    p.mask.sb = mk.sb, p.mask.sh = mk.sh, p.mask.si = mk.si, p.mask.sj = mk.sj;
    if (in.mask.dtype() == DType::kBool)
      p.mask.keep = static_cast<const unsigned char*>(in.mask.raw());
    else
      p.mask.add = in.mask.data<float>();
  }
  p.B = c.B, p.H = c.H, p.Lq = c.Lq, p.Lk = c.Lk;
  p.D = static_cast<int>(c.D), p.Dv = static_cast<int>(c.Dv);
  p.bshd = c.bshd;
  p.scale = c.scale();
  return p;
}

// The fused kernel's schedule on the host.
Tensor flash_form(const Case& c, const Inputs& in) {
  Tensor y = zeros(DType::kFloat32, c.shape(c.Lq, c.Dv));
  flash::flash_attention_host(params_of(c, in, y));
  return y;
}

// The CPU's MultiHeadAttention (com.mserve) on a one-node graph.
Tensor cpu_form(const Case& c, const Inputs& in) {
  GraphBuilder b;
  b.input("q", DType::kFloat32, in.q.shape().vec());
  b.input("k", DType::kFloat32, in.k.shape().vec());
  b.input("v", DType::kFloat32, in.v.shape().vec());
  std::vector<std::string> names{"q", "k", "v"};
  std::vector<Tensor> inputs{in.q, in.k, in.v};
  if (in.has_mask) {
    b.input("m", in.mask.dtype(), in.mask.shape().vec());
    names.push_back("m");
    inputs.push_back(in.mask);
  }
  Node& n = b.node("MultiHeadAttention", names, {"y"});
  n.domain = "com.mserve";
  n.opset = 1;
  n.attrs["scale"] = float_attr(c.scale());
  n.attrs["layout"] = string_attr(c.bshd ? "bshd" : "bhsd");
  Graph g = b.output("y").build();
  g.opsets["com.mserve"] = 1;
  auto out = mserve::testing::run_graph(g, inputs, 2, /*optimize=*/false);
  if (out.size() != 1) return zeros(DType::kFloat32, c.shape(c.Lq, c.Dv));
  return out[0];
}

// softmax(scale * Q K^T + mask) V in double, naively; a row with every key masked gives zeros.
Tensor double_form(const Case& c, const Inputs& in) {
  Tensor y = zeros(DType::kFloat32, c.shape(c.Lq, c.Dv));
  auto at = [&](int64_t b, int64_t h, int64_t i, int64_t L, int64_t W) {
    return c.bshd ? ((b * L + i) * c.H + h) * W : ((b * c.H + h) * L + i) * W;
  };
  MhaMask mk;
  if (in.has_mask) mk = mha_mask_strides(in.mask.shape());
  const float *q = in.q.data<float>(), *k = in.k.data<float>(), *v = in.v.data<float>();
  std::vector<double> s(c.Lk), acc(c.Dv);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i = 0; i < c.Lq; ++i) {
        double m = -kInf;
        for (int64_t j = 0; j < c.Lk; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d)
            dot += static_cast<double>(q[at(b, h, i, c.Lq, c.D) + d]) * k[at(b, h, j, c.Lk, c.D) + d];
          s[j] = static_cast<double>(c.scale()) * dot;
          if (in.has_mask) {
            const int64_t e = b * mk.sb + h * mk.sh + i * mk.si + j * mk.sj;
            if (in.mask.dtype() == DType::kBool)
              s[j] = in.mask.data<bool>()[e] ? s[j] : -kInf;
            else
              s[j] += in.mask.data<float>()[e];
          }
          m = std::max(m, s[j]);
        }
        float* yr = y.data<float>() + at(b, h, i, c.Lq, c.Dv);
        if (m == -kInf) continue;  // zeros
        double sum = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < c.Lk; ++j) {
          const double p = std::exp(s[j] - m);
          sum += p;
          for (int64_t e = 0; e < c.Dv; ++e) acc[e] += p * v[at(b, h, j, c.Lk, c.Dv) + e];
        }
        for (int64_t e = 0; e < c.Dv; ++e) yr[e] = static_cast<float>(acc[e] / sum);
      }
  return y;
}

// Rows of Y (as [rows, Dv]) that are all zeros in `y`, as a bit per row.
std::vector<bool> zero_rows(const Tensor& y, int64_t Dv) {
  std::vector<bool> z(static_cast<size_t>(y.numel() / Dv));
  for (size_t r = 0; r < z.size(); ++r) {
    bool all = true;
    for (int64_t e = 0; e < Dv; ++e) all = all && y.data<float>()[r * Dv + e] == 0.0f;
    z[r] = all;
  }
  return z;
}

void check(const Case& c, uint32_t seed) {
  SCOPED_TRACE(c.str());
  const Inputs in = make_inputs(c, seed);
  const Tensor got = flash_form(c, in);
  const Tensor cpu = cpu_form(c, in);
  const Tensor ref = double_form(c, in);
  for (int64_t i = 0; i < got.numel(); ++i)
    ASSERT_TRUE(std::isfinite(got.data<float>()[i])) << "at " << i << ": " << got.data<float>()[i];
  EXPECT_LT(rel_l2(got, ref, "vs double"), 1e-6);
  EXPECT_LT(rel_l2(got, cpu, "vs cpu"), 1e-6);
  // Fully masked rows (and only those, for these inputs) are exact zeros in all three.
  EXPECT_EQ(zero_rows(got, c.Dv), zero_rows(ref, c.Dv));
  EXPECT_EQ(zero_rows(cpu, c.Dv), zero_rows(ref, c.Dv));
}

// B and H for a case of these lengths: several heads where the case is small, one where the
// host replay (a libm fmaf per multiply-add) would take long.
void batch_heads(int64_t Lq, int64_t Lk, int64_t D, int64_t* B, int64_t* H) {
  const int64_t work = Lq * Lk * D;
  *B = work <= 200000 ? 2 : 1;
  *H = work <= 50000 ? 3 : (work <= 2000000 ? 2 : 1);
}

// ---------------------------------------------------------------- the arithmetic

TEST(FlashAttentionMath, EveryLengthPairBothLayoutsEveryMask) {
  const int64_t lengths[] = {1, 3, 17, 64, 129, 512};
  const int64_t heads[] = {8, 32, 64, 80, 128};
  const Mask masks[] = {Mask::kNone,        Mask::kFloatPadding, Mask::kBoolCausal, Mask::kFloatFull,
                        Mask::kFloatPerRow, Mask::kBoolKeys,     Mask::kFloatBert};
  uint32_t seed = 5000;
  int n = 0;
  for (int64_t lq : lengths)
    for (int64_t lk : lengths)
      for (bool bshd : {false, true}) {
        const int64_t D = heads[n % 5];
        const Mask m = masks[n % 7];
        ++n;
        int64_t B, H;
        batch_heads(lq, lk, D, &B, &H);
        check({bshd, B, H, lq, lk, D, D, m}, seed);
        seed += 4;
      }
}

TEST(FlashAttentionMath, EveryHeadSizeAndValueWidth) {
  uint32_t seed = 6000;
  for (int64_t D : {8, 32, 64, 80, 128})
    for (int64_t Dv : {8, 33, 80, 128})
      for (bool bshd : {false, true}) {
        check({bshd, 2, 2, 17, 129, D, Dv, bshd ? Mask::kBoolCausal : Mask::kFloatFull}, seed);
        seed += 4;
      }
}

TEST(FlashAttentionMath, HugeAndNegativeLogits) {
  uint32_t seed = 7000;
  for (Values val : {Values::kHuge, Values::kNegative})
    for (int64_t lk : {3, 64, 129, 512})
      for (Mask m : {Mask::kNone, Mask::kFloatPadding, Mask::kBoolCausal, Mask::kFloatBert}) {
        check({lk % 2 == 0, 2, 2, 17, lk, 32, 32, m, val}, seed);
        seed += 4;
      }
}

// A row whose keys are all masked in the first tiles and open only in the last: the running
// state must stay empty (no NaN from exp(-inf - -inf)) until the first key arrives.
TEST(FlashAttentionMath, KeysOpenOnlyInTheLastTile) {
  for (bool boolean : {false, true}) {
    Case c{false, 1, 2, 5, 129, 64, 64, Mask::kNone};
    Inputs in = make_inputs(c, 8000);
    in.has_mask = true;
    in.mask = zeros(boolean ? DType::kBool : DType::kFloat32, Shape{1, 1, 5, 129});
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < 129; ++j) {
        const bool keep = i == 0 ? j == 128 : j >= 96 + i;  // row 0: the last key only
        if (boolean)
          in.mask.data<bool>()[i * 129 + j] = keep;
        else
          in.mask.data<float>()[i * 129 + j] = keep ? 0.5f : -kInf;
      }
    c.mask = boolean ? Mask::kBoolCausal : Mask::kFloatFull;  // only the name
    SCOPED_TRACE(boolean ? "bool" : "float");
    const Tensor got = flash_form(c, in), ref = double_form(c, in), cpu = cpu_form(c, in);
    EXPECT_LT(rel_l2(got, ref, "vs double"), 1e-6);
    EXPECT_LT(rel_l2(got, cpu, "vs cpu"), 1e-6);
    // Row 0 of each head is V's last row exactly: one key, probability 1.
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t e = 0; e < 64; ++e)
        EXPECT_EQ(got.data<float>()[h * 5 * 64 + e], in.v.data<float>()[(h * 129 + 128) * 64 + e]);
  }
}

TEST(FlashAttentionMath, SharedMemoryAndLimits) {
  EXPECT_LE(flash::flash_smem_floats(128, 128) * sizeof(float), size_t{48} * 1024);
  EXPECT_EQ(flash::flash_key_stride(128) % 2, 1);
  EXPECT_EQ(flash::flash_key_stride(17) % 2, 1);
  EXPECT_TRUE(flash::flash_fits(128, 128, 512));
  EXPECT_TRUE(flash::flash_fits(1, 1, 1));
  EXPECT_FALSE(flash::flash_fits(129, 64, 64));
  EXPECT_FALSE(flash::flash_fits(64, 129, 64));
  EXPECT_FALSE(flash::flash_fits(64, 64, 513));
}

// ---------------------------------------------------------------- the tensor-core form

// The tensor-core kernel's schedule (flash_tc_math.h) on the host, in 16-bit operands t.
Tensor tc_form(const Case& c, const Inputs& in, Operand t) {
  Tensor y = zeros(DType::kFloat32, c.shape(c.Lq, c.Dv));
  flash::flash_tc_host(params_of(c, in, y), t);
  return y;
}

Tensor rounded(const Tensor& x, Operand t) {
  Tensor r = zeros(DType::kFloat32, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) r.data<float>()[i] = from_bits16(to_bits16(x.data<float>()[i], t), t);
  return r;
}

// Against attention in double on the inputs rounded to t (what is left: the probabilities'
// rounding, about 2^-11 or 2^-8 relative, and float32 sums) and on the inputs themselves.
void check_tc(const Case& c, uint32_t seed, Operand t) {
  SCOPED_TRACE(c.str() + (t == Operand::kF16 ? " fp16" : " bf16"));
  const Inputs in = make_inputs(c, seed);
  Inputs r = in;
  r.q = rounded(in.q, t), r.k = rounded(in.k, t), r.v = rounded(in.v, t);
  const Tensor got = tc_form(c, in, t);
  const Tensor ref16 = double_form(c, r), ref = double_form(c, in);
  for (int64_t i = 0; i < got.numel(); ++i)
    ASSERT_TRUE(std::isfinite(got.data<float>()[i])) << "at " << i << ": " << got.data<float>()[i];
  const bool f16 = t == Operand::kF16;
  EXPECT_LT(rel_l2(got, ref16, "vs double on 16-bit inputs"), f16 ? 1e-3 : 8e-3);
  EXPECT_LT(rel_l2(got, ref, "vs double"), f16 ? 3e-3 : 2.5e-2);
  EXPECT_EQ(zero_rows(got, c.Dv), zero_rows(ref, c.Dv));
}

TEST(FlashAttentionTensorCores, LengthsHeadsMasksAndBothTypes) {
  const Mask masks[] = {Mask::kNone,        Mask::kFloatPadding, Mask::kBoolCausal, Mask::kFloatFull,
                        Mask::kFloatPerRow, Mask::kBoolKeys,     Mask::kFloatBert};
  const int64_t heads[] = {8, 32, 64, 80, 128, 17};
  uint32_t seed = 9000;
  int n = 0;
  for (int64_t lq : {1, 17, 64, 129})
    for (int64_t lk : {1, 63, 64, 65, 200})
      for (Operand t : {Operand::kF16, Operand::kBf16}) {
        const int64_t D = heads[n % 6];
        const bool bshd = n % 2 == 1;
        check_tc({bshd, 2, 2, lq, lk, D, n % 3 == 0 ? 33 : D, masks[n % 7]}, seed, t);
        ++n;
        seed += 4;
      }
}

TEST(FlashAttentionTensorCores, FullSizesAndExtremeLogits) {
  check_tc({true, 1, 2, 128, 512, 64, 64, Mask::kFloatBert}, 9500, Operand::kF16);
  check_tc({false, 1, 1, 512, 512, 128, 128, Mask::kBoolCausal}, 9504, Operand::kBf16);
  uint32_t seed = 9600;
  for (Values val : {Values::kHuge, Values::kNegative})
    for (Mask m : {Mask::kNone, Mask::kFloatPadding, Mask::kBoolCausal})
      for (Operand t : {Operand::kF16, Operand::kBf16}) {
        check_tc({false, 2, 2, 17, 129, 32, 32, m, val}, seed, t);  // small integers: exact in 16 bits
        seed += 4;
      }
}

TEST(FlashAttentionTensorCores, SharedMemoryLayout) {
  const flash::TcLayout big = flash::tc_layout(128, 128);
  EXPECT_LE(big.bytes, int64_t{227} * 1024) << "an H100 block's shared memory";
  EXPECT_GT(big.bytes, int64_t{48} * 1024) << "the launch asks for more than the default";
  for (int D : {1, 8, 17, 64, 80, 128})
    for (int Dv : {1, 33, 128}) {
      const flash::TcLayout L = flash::tc_layout(D, Dv);
      EXPECT_EQ(L.dp % 16, 0);
      EXPECT_GE(L.dp, D);
      EXPECT_EQ(L.ldq % 8, 0);  // the MMA's 16-bit leading dimension: a multiple of 8
      EXPECT_EQ(L.ldv % 8, 0);
      EXPECT_EQ(L.ldp % 8, 0);
      EXPECT_EQ(L.lds % 4, 0);  // float: a multiple of 4
      EXPECT_EQ(L.ldo % 4, 0);
      for (int64_t off : {L.q, L.k, L.v, L.s, L.p, L.o}) EXPECT_EQ(off % 128, 0);
      // Every warp's and every 16-row tile's start is 32-byte aligned.
      EXPECT_EQ((int64_t{flash::kTcTile} * L.ldq * 2) % 32, 0);
      EXPECT_EQ((int64_t{flash::kTcTile} * L.lds * 4) % 32, 0);
      EXPECT_EQ((int64_t{flash::kTcTile} * L.ldp * 2) % 32, 0);
      EXPECT_EQ((int64_t{flash::kTcTile} * L.ldo * 4) % 32, 0);
      EXPECT_LE(L.o + int64_t{flash::kTcWarps} * flash::kTcTile * L.ldo * 4, L.bytes);
    }
}

// ---------------------------------------------------------------- the path MhaKernel takes

// The workspace MhaKernel asks for at plan time: 0 on the fused path, the scores on the other.
size_t planned_workspace(const Shape& q, const Shape& k, const Shape& v, bool bshd, const GpuOptions& opts,
                         bool with_mask = true) {
  GraphBuilder b;
  b.input("q", DType::kFloat32, q.vec());
  b.input("k", DType::kFloat32, k.vec());
  b.input("v", DType::kFloat32, v.vec());
  const int64_t Lk = k[bshd ? 1 : 2];
  std::vector<std::string> names{"q", "k", "v"};
  if (with_mask) {
    b.input("m", DType::kBool, {q[0], 1, 1, Lk});
    names.push_back("m");
  }
  Node& n = b.node("MultiHeadAttention", names, {"y"});
  n.domain = "com.mserve";
  n.opset = 1;
  n.attrs["scale"] = float_attr(0.125f);
  n.attrs["layout"] = string_attr(bshd ? "bshd" : "bhsd");
  Graph g = b.output("y").build();
  g.opsets["com.mserve"] = 1;
  KernelInit init(g);
  auto kr = CudaBackend(opts).create_kernel(g.nodes[0], init);
  EXPECT_TRUE(kr.ok()) << kr.status().message();
  if (!kr.ok() || !kr.value()) return SIZE_MAX;
  std::vector<ValueInfo> infos{
      {DType::kFloat32, q, nullptr}, {DType::kFloat32, k, nullptr}, {DType::kFloat32, v, nullptr}};
  if (with_mask) infos.push_back({DType::kBool, Shape{q[0], 1, 1, Lk}, nullptr});
  std::vector<const ValueInfo*> ins;
  for (const auto& i : infos) ins.push_back(&i);
  InferContext ctx(g.nodes[0], ins, 1);
  Status st = kr.value()->infer(ctx);
  EXPECT_TRUE(st.ok()) << st.message();
  return ctx.workspace();
}

size_t scores_bytes(int64_t B, int64_t H, int64_t Lq, int64_t Lk) {
  return static_cast<size_t>(B * H * Lq * Lk) * sizeof(float);
}

TEST(FlashAttentionPath, FollowsHeadSizeAndKeyLimits) {
  const GpuOptions on;
  ASSERT_TRUE(on.fused_attention);  // the default
  for (bool bshd : {false, true}) {
    SCOPED_TRACE(bshd ? "bshd" : "bhsd");
    auto sh = [&](int64_t L, int64_t W) { return bshd ? Shape{2, L, 3, W} : Shape{2, 3, L, W}; };
    // Within the limits: fused, no workspace.
    EXPECT_EQ(planned_workspace(sh(7, 128), sh(512, 128), sh(512, 128), bshd, on), 0u);
    EXPECT_EQ(planned_workspace(sh(1, 8), sh(1, 8), sh(1, 8), bshd, on), 0u);
    EXPECT_EQ(planned_workspace(sh(129, 80), sh(129, 80), sh(129, 33), bshd, on, false), 0u);
    // Past a limit: the two products with the scores in the workspace.
    EXPECT_EQ(planned_workspace(sh(7, 160), sh(64, 160), sh(64, 64), bshd, on), scores_bytes(2, 3, 7, 64));
    EXPECT_EQ(planned_workspace(sh(7, 64), sh(64, 64), sh(64, 129), bshd, on), scores_bytes(2, 3, 7, 64));
    EXPECT_EQ(planned_workspace(sh(7, 64), sh(513, 64), sh(513, 64), bshd, on), scores_bytes(2, 3, 7, 513));
    // The 16-bit precisions take the tensor-core form at the same sizes.
    for (Precision pr : {Precision::kFp16, Precision::kBf16}) {
      GpuOptions half;
      half.precision = pr;
      EXPECT_EQ(planned_workspace(sh(7, 128), sh(512, 128), sh(512, 128), bshd, half), 0u);
      EXPECT_EQ(planned_workspace(sh(7, 64), sh(513, 64), sh(513, 64), bshd, half), scores_bytes(2, 3, 7, 513));
    }
  }
}

TEST(FlashAttentionPath, TheOptionTurnsItOff) {
  const Shape x{1, 12, 128, 64};
  GpuOptions off;
  off.fused_attention = false;
  EXPECT_EQ(planned_workspace(x, x, x, false, off), scores_bytes(1, 12, 128, 128));
  EXPECT_EQ(planned_workspace(x, x, x, false, GpuOptions()), 0u);
}

}  // namespace
}  // namespace mserve::gpu
