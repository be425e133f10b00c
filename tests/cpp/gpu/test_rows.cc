// The arithmetic of the CUDA Softmax, LayerNormalization, SkipLayerNormalization, Reduce* and
// MultiHeadAttention kernels (ops/rows_math.h, evaluated here on the host in the device's lanes
// and combine order) against the CPU kernels run through a Session; and the kernels' plan-time
// behaviour (creation, refusals, attention's workspace and matrix products), which needs no GPU.
//
// Exactness: where the device walks a row in the CPU's order (Softmax along a non-innermost axis,
// reductions whose innermost dim is kept: a thread per row or output) the results are bitwise
// the CPU's; Max / Min always are. Elsewhere the lanes sum in another order and the tests bound
// the relative L2 error by 1e-6, and require the same non-finite values in the same places.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "compare.h"
#include "gpu/context.h"
#include "gpu/kernel_table.h"
#include "gpu/lib/blas.h"
#include "gpu/ops/attention.h"
#include "gpu/ops/layer_norm.h"
#include "gpu/ops/rows_math.h"
#include "helpers.h"

namespace mserve::gpu {
namespace {

using mserve::testing::float_attr;
using mserve::testing::GraphBuilder;
using mserve::testing::int_attr;
using mserve::testing::random_tensor;
using mserve::testing::string_attr;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<Tensor> run_cpu(const Graph& g, const std::vector<Tensor>& inputs) {
  return mserve::testing::run_graph(g, inputs, 2, /*optimize=*/false);
}

Tensor zeros_like(const Shape& s) {
  Tensor t = Tensor::empty(DType::kFloat32, s).value();
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = 0.0f;
  return t;
}

Tensor ints(std::vector<int64_t> v) {
  Tensor t = Tensor::empty(DType::kInt64, Shape{static_cast<int64_t>(v.size())}).value();
  for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
  return t;
}

void expect_exact(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  int bad = 0;
  for (int64_t i = 0; i < got.numel() && bad < 5; ++i) {
    const float g = got.data<float>()[i], w = want.data<float>()[i];
    if (!((std::isnan(g) && std::isnan(w)) || g == w)) {
      ++bad;
      ADD_FAILURE() << what << ": at " << i << " got " << g << " want " << w;
    }
  }
}

// Rows of special values written into x (viewed as [rows, len]) from row `first` on: -inf, NaN,
// +inf and, with `wide`, rows of huge values and rows far from zero.
void add_special_rows(Tensor& x, int64_t len, int64_t first, bool wide = true) {
  float* p = x.data<float>();
  const int64_t rows = len ? x.numel() / len : 0;
  for (int64_t r = first; r < rows; ++r) {
    float* row = p + r * len;
    const int64_t kind = (r - first) % 6;
    if (!wide && (kind == 3 || kind == 5)) continue;
    switch (kind) {
      case 0: row[len / 2] = -kInf; break;  // one key gone
      case 1:
        for (int64_t j = 0; j < len; ++j) row[j] = -kInf;
        break;  // all -inf
      case 2: row[len - 1] = kNaN; break;
      case 3:
        for (int64_t j = 0; j < len; ++j) row[j] *= 3e37f;
        break;  // huge
      case 4: row[0] = kInf; break;
      default:
        for (int64_t j = 0; j < len; ++j) row[j] += 1e4f;
        break;  // far from zero
    }
  }
}

// ---------------------------------------------------------------- Softmax

Tensor softmax_gpu_form(const Tensor& x, int axis) {
  const Shape& s = x.shape();
  const int a = axis < 0 ? axis + s.rank() : axis;
  const int64_t outer = s.prod(0, a), len = s[a], inner = s.prod(a + 1, s.rank());
  Tensor y = zeros_like(s);
  const int lanes = rows::softmax_lanes(len, inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * len * inner + i;
      rows::softmax_row(x.data<float>() + base, y.data<float>() + base, len, inner, lanes);
    }
  return y;
}

void check_softmax(const Shape& s, int axis, uint32_t seed, bool special) {
  GraphBuilder b;
  b.opset(13);
  b.input("x", DType::kFloat32, s.vec());
  b.node("Softmax", {"x"}, {"y"}).attrs["axis"] = int_attr(axis);
  Graph g = b.output("y").build();
  Tensor x = random_tensor(s, seed, -4.f, 4.f);
  const int a = axis < 0 ? axis + s.rank() : axis;
  if (special && a == s.rank() - 1) add_special_rows(x, s[a], 1);
  auto out = run_cpu(g, {x});
  ASSERT_EQ(out.size(), 1u);
  const Tensor y = softmax_gpu_form(x, axis);
  const std::string what = "softmax " + s.str() + " axis " + std::to_string(axis);
  if (rows::softmax_lanes(s[a], s.prod(a + 1, s.rank())) == rows::kThread) {
    expect_exact(y, out[0], what);
    return;
  }
  EXPECT_LT(rel_l2(y, out[0], what), 1e-6) << what;
  // Most of that difference is the CPU's: it sums a row in sequence, the lanes pairwise. Against
  // the row in double the lanes do no worse.
  const int64_t len = s[a], rows_n = s.numel() / std::max<int64_t>(len, 1);
  Tensor ref = zeros_like(s);
  for (int64_t r = 0; r < rows_n; ++r) {
    const float* xr = x.data<float>() + r * len;
    double m = -kInf, sum = 0;
    for (int64_t i = 0; i < len; ++i) m = std::max(m, static_cast<double>(xr[i]));
    for (int64_t i = 0; i < len; ++i) sum += std::exp(static_cast<double>(xr[i]) - m);
    for (int64_t i = 0; i < len; ++i) ref.data<float>()[r * len + i] = static_cast<float>(std::exp(xr[i] - m) / sum);
  }
  EXPECT_LE(rel_l2(y, ref, what + " vs double"), rel_l2(out[0], ref, what + " cpu vs double") + 1e-7) << what;
}

TEST(SoftmaxRows, OddRowLengthsLastAxis) {
  uint32_t seed = 1;
  for (int64_t len : {1, 3, 17, 257, 1000, 1024, 1025, 3001})
    for (bool special : {false, true}) check_softmax(Shape{13, len}, -1, seed++, special);
}

TEST(SoftmaxRows, EveryAxisIsExactWhereTheRowIsStrided) {
  uint32_t seed = 100;
  for (const Shape& s : {Shape{3, 17, 5}, Shape{2, 257, 3}, Shape{4, 1, 6, 2}, Shape{1000}, Shape{5, 1000}})
    for (int a = -s.rank(); a < s.rank(); ++a) check_softmax(s, a, seed++, false);
}

// ---------------------------------------------------------------- LayerNormalization

// Per-column Scale and B over rows [rows, cols].
void layer_norm_gpu_form(const float* a, const float* b2, float* y, float* sum, const float* scale, const float* bias,
                         int64_t rows, int64_t cols, float eps, float* mean, float* inv) {
  const int lanes = rows::layer_norm_lanes(cols);
  for (int64_t r = 0; r < rows; ++r) {
    rows::NormRow row;
    row.a = a + r * cols;
    row.b = b2 ? b2 + r * cols : nullptr;
    row.y = y + r * cols;
    row.sum = sum ? sum + r * cols : nullptr;
    row.scale = scale;
    row.bias = bias;
    row.n = cols;
    rows::layer_norm_row(row, eps, lanes, mean ? mean + r : nullptr, inv ? inv + r : nullptr);
  }
}

void check_layer_norm(const Shape& s, int axis, bool bias, bool stats, bool special, uint32_t seed) {
  const int a = axis < 0 ? axis + s.rank() : axis;
  std::vector<int64_t> cdims(s.begin() + a, s.end());
  const Shape cs(cdims.begin(), cdims.end());
  GraphBuilder b;
  b.input("x", DType::kFloat32, s.vec());
  b.input("scale", DType::kFloat32, cdims);
  if (bias) b.input("bias", DType::kFloat32, cdims);
  std::vector<std::string> outs{"y"};
  if (stats) outs = {"y", "mean", "inv"};
  Node& n = b.node("LayerNormalization", {"x", "scale", bias ? "bias" : ""}, outs);
  n.attrs["axis"] = int_attr(axis);
  n.attrs["epsilon"] = float_attr(1e-5f);
  for (const auto& o : outs) b.output(o);
  Graph g = b.build();
  Tensor x = random_tensor(s, seed, -3.f, 3.f);
  const int64_t rows = s.prod(0, a), cols = s.prod(a, s.rank());
  if (special) add_special_rows(x, cols, 1, /*wide=*/stats);
  Tensor sc = random_tensor(cs, seed + 1, 0.5f, 1.5f), bi = random_tensor(cs, seed + 2);
  std::vector<Tensor> ins{x, sc};
  if (bias) ins.push_back(bi);
  auto out = run_cpu(g, ins);
  ASSERT_EQ(out.size(), outs.size());
  Tensor y = zeros_like(s), mean = zeros_like(out.size() > 1 ? out[1].shape() : Shape{rows}),
         inv = zeros_like(out.size() > 1 ? out[2].shape() : Shape{rows});
  layer_norm_gpu_form(x.data<float>(), nullptr, y.data<float>(), nullptr, sc.data<float>(),
                      bias ? bi.data<float>() : nullptr, rows, cols, 1e-5f, mean.data<float>(), inv.data<float>());
  const std::string what = "layer norm " + s.str() + " axis " + std::to_string(axis) + (bias ? " bias" : "") +
                           (stats ? " stats" : "") + (special ? " special" : "");
  EXPECT_LT(rel_l2(y, out[0], what), 1e-6) << what;
  if (stats) {
    EXPECT_LT(rel_l2(mean, out[1], what + " mean"), 1e-6) << what;
    EXPECT_LT(rel_l2(inv, out[2], what + " inv_std"), 1e-6) << what;
  }
}

TEST(LayerNormRows, OddRowLengths) {
  uint32_t seed = 200;
  for (int64_t cols : {1, 3, 17, 257, 768, 1000, 1025, 4099})
    for (bool bias : {false, true}) check_layer_norm(Shape{9, cols}, -1, bias, false, false, seed++);
}

// The CPU takes the statistics in double when the node asks for them, as the GPU always does:
// rows far from zero and rows of huge values agree with that path. The CPU's vectorized float
// row (no statistics outputs) loses digits of the mean on them, so it is compared on -inf, NaN and
// +inf rows only.
TEST(LayerNormRows, SpecialRows) {
  uint32_t seed = 300;
  for (int64_t cols : {3, 17, 257, 1000, 2000}) {
    check_layer_norm(Shape{13, cols}, -1, true, true, true, seed++);
    check_layer_norm(Shape{13, cols}, -1, true, false, true, seed++);
  }
}

TEST(LayerNormRows, EveryAxisAndTheStatisticsOutputs) {
  uint32_t seed = 400;
  const Shape s{3, 5, 7, 11};
  for (int a = -s.rank(); a < s.rank(); ++a)
    for (bool stats : {false, true}) check_layer_norm(s, a, true, stats, false, seed++);
  check_layer_norm(Shape{4, 1000}, -1, false, true, false, seed++);
}

TEST(LayerNormRows, SkipLayerNormalizationWithItsSum) {
  uint32_t seed = 500;
  for (int64_t cols : {1, 17, 768, 1500})
    for (bool want_sum : {false, true}) {
      const Shape s{2, 5, cols};
      GraphBuilder b;
      b.input("a", DType::kFloat32, s.vec());
      b.input("b", DType::kFloat32, s.vec());
      b.input("scale", DType::kFloat32, {cols});
      b.input("bias", DType::kFloat32, {cols});
      std::vector<std::string> outs{"y"};
      if (want_sum) outs.push_back("sum");
      Node& n = b.node("SkipLayerNormalization", {"a", "b", "scale", "bias"}, outs);
      n.domain = "com.mserve";
      n.opset = 1;
      n.attrs["epsilon"] = float_attr(1e-12f);
      for (const auto& o : outs) b.output(o);
      Graph g = b.build();
      g.opsets["com.mserve"] = 1;
      Tensor xa = random_tensor(s, seed++), xb = random_tensor(s, seed++),
             sc = random_tensor(Shape{cols}, seed++, 0.5f, 1.5f), bi = random_tensor(Shape{cols}, seed++);
      auto out = run_cpu(g, {xa, xb, sc, bi});
      ASSERT_EQ(out.size(), outs.size());
      Tensor y = zeros_like(s), sum = zeros_like(s);
      layer_norm_gpu_form(xa.data<float>(), xb.data<float>(), y.data<float>(), sum.data<float>(), sc.data<float>(),
                          bi.data<float>(), s.prod(0, 2), cols, 1e-12f, nullptr, nullptr);
      const std::string what = "skip layer norm " + s.str();
      EXPECT_LT(rel_l2(y, out[0], what), 1e-6) << what;
      if (want_sum) expect_exact(sum, out[1], what + " sum");
    }
}

TEST(LayerNormRows, SkipLayerNormalizationWithRepeatingRows) {
  // B repeats whole rows of A: a position embedding [S, H] (or [1, H]) under [N, S, H].
  EXPECT_EQ(row_period(Shape{2, 5, 8}, Shape{2, 5, 8}, 2), 0);
  EXPECT_EQ(row_period(Shape{5, 8}, Shape{2, 5, 8}, 2), 5);
  EXPECT_EQ(row_period(Shape{1, 1, 8}, Shape{2, 5, 8}, 2), 1);
  EXPECT_EQ(row_period(Shape{8}, Shape{2, 5, 8}, 2), 1);
  EXPECT_EQ(row_period(Shape{2, 1, 8}, Shape{2, 5, 8}, 2), -1);  // repeats within, not whole rows
  EXPECT_EQ(row_period(Shape{5, 1}, Shape{2, 5, 8}, 2), -1);     // a normalized dim broadcast
  EXPECT_EQ(row_period(Shape{5, 8}, Shape{2, 5, 8}, 1), 1);      // rows of 40: [5, 8] is one whole row
  EXPECT_EQ(row_period(Shape{1, 8}, Shape{2, 5, 8}, 1), -1);     // ... and [1, 8] a fifth of one
  uint32_t seed = 550;
  for (const Shape& bs : {Shape{5, 33}, Shape{1, 33}, Shape{33}}) {
    const Shape s{3, 5, 33};
    const int64_t cols = 33, period = bs.numel() / cols;
    GraphBuilder b;
    b.input("a", DType::kFloat32, s.vec());
    b.input("b", DType::kFloat32, bs.vec());
    b.input("scale", DType::kFloat32, {cols});
    Node& n = b.node("SkipLayerNormalization", {"a", "b", "scale"}, {"y"});
    n.domain = "com.mserve";
    n.opset = 1;
    Graph g = b.output("y").build();
    g.opsets["com.mserve"] = 1;
    Tensor xa = random_tensor(s, seed++), xb = random_tensor(bs, seed++), sc = random_tensor(Shape{cols}, seed++);
    auto out = run_cpu(g, {xa, xb, sc});
    ASSERT_EQ(out.size(), 1u);
    // The device's rows: row r of A with row r % period of B.
    Tensor y = zeros_like(s);
    for (int64_t r0 = 0; r0 < s.prod(0, 2); r0 += period)
      layer_norm_gpu_form(xa.data<float>() + r0 * cols, xb.data<float>(), y.data<float>() + r0 * cols, nullptr,
                          sc.data<float>(), nullptr, period, cols, 1e-5f, nullptr, nullptr);
    EXPECT_LT(rel_l2(y, out[0], "skip " + bs.str()), 1e-6) << bs.str();
  }
}

// ---------------------------------------------------------------- Reduce*

template <rows::ReduceKind K>
Tensor reduce_gpu_form(const Tensor& x, const std::vector<int64_t>& axes, bool keepdims, bool noop, Shape* out_shape) {
  const Shape& s = x.shape();
  uint32_t mask = 0;
  for (int64_t a : axes) mask |= 1u << (a < 0 ? a + s.rank() : a);
  if (axes.empty()) mask = noop ? 0u : (1u << s.rank()) - 1u;
  std::vector<int64_t> od;
  for (int d = 0; d < s.rank(); ++d)
    if (!((mask >> d) & 1u))
      od.push_back(s[d]);
    else if (keepdims)
      od.push_back(1);
  *out_shape = Shape(od.begin(), od.end());
  const rows::ReducePlan p = rows::make_reduce_plan(s.begin(), s.rank(), mask);
  Tensor y = zeros_like(*out_shape);
  for (int64_t o = 0; o < p.out_n; ++o) y.data<float>()[o] = rows::reduce_output<K>(x.data<float>(), p, o);
  return y;
}

const char* reduce_op(rows::ReduceKind k) {
  switch (k) {
    case rows::ReduceKind::kSum: return "ReduceSum";
    case rows::ReduceKind::kMean: return "ReduceMean";
    case rows::ReduceKind::kMax: return "ReduceMax";
    default: return "ReduceMin";
  }
}

template <rows::ReduceKind K>
void check_reduce(const Tensor& x, const std::vector<int64_t>& axes, bool keepdims, bool noop) {
  GraphBuilder b;
  b.opset(18);
  b.input("x", DType::kFloat32, x.shape().vec());
  if (!axes.empty()) b.constant("axes", ints(axes));
  Node& n = b.node(reduce_op(K), {"x", axes.empty() ? "" : "axes"}, {"y"});
  n.attrs["keepdims"] = int_attr(keepdims);
  n.attrs["noop_with_empty_axes"] = int_attr(noop);
  Graph g = b.output("y").build();
  auto out = run_cpu(g, {x});
  ASSERT_EQ(out.size(), 1u);
  Shape os;
  const Tensor y = reduce_gpu_form<K>(x, axes, keepdims, noop, &os);
  std::string what = std::string(reduce_op(K)) + " " + x.shape().str() + " axes [";
  for (int64_t a : axes) what += std::to_string(a) + " ";
  what += "] keepdims " + std::to_string(keepdims) + " noop " + std::to_string(noop);
  uint32_t mask = 0;
  for (int64_t a : axes) mask |= 1u << (a < 0 ? a + x.rank() : a);
  if (axes.empty()) mask = noop ? 0u : (1u << x.rank()) - 1u;
  const rows::ReducePlan p = rows::make_reduce_plan(x.shape().begin(), x.rank(), mask);
  const bool exact =
      K == rows::ReduceKind::kMax || K == rows::ReduceKind::kMin || rows::reduce_lanes(p) == rows::kThread;
  if (exact)
    expect_exact(y, out[0], what);
  else
    EXPECT_LT(rel_l2(y, out[0], what), 1e-6) << what;
}

template <rows::ReduceKind K>
void check_reduce_all(const Tensor& x) {
  const int r = x.rank();
  for (uint32_t m = 0; m < (1u << r); ++m) {
    std::vector<int64_t> axes;
    for (int d = 0; d < r; ++d)
      if ((m >> d) & 1u) axes.push_back(d % 2 ? d - r : d);  // negative axes too
    for (bool keep : {false, true}) check_reduce<K>(x, axes, keep, false);
  }
  check_reduce<K>(x, {}, true, true);  // noop_with_empty_axes: nothing reduced
}

template <rows::ReduceKind K>
void reduce_suite(uint32_t seed) {
  check_reduce_all<K>(random_tensor(Shape{3, 4, 5, 6}, seed));
  check_reduce_all<K>(random_tensor(Shape{7, 1, 17}, seed + 1));
  for (int64_t len : {1, 3, 17, 257, 1000, 1025, 5000}) {
    Tensor x = random_tensor(Shape{6, len}, seed + 2 + static_cast<uint32_t>(len));
    check_reduce_all<K>(x);
    add_special_rows(x, len, 1);
    check_reduce_all<K>(x);
  }
  check_reduce_all<K>(random_tensor(Shape{0, 3}, seed));  // empty reductions: the identity
}

TEST(ReduceRows, Sum) { reduce_suite<rows::ReduceKind::kSum>(600); }
TEST(ReduceRows, Mean) { reduce_suite<rows::ReduceKind::kMean>(700); }
TEST(ReduceRows, Max) { reduce_suite<rows::ReduceKind::kMax>(800); }
TEST(ReduceRows, Min) { reduce_suite<rows::ReduceKind::kMin>(900); }

// ---------------------------------------------------------------- MultiHeadAttention

enum class MaskKind { kNone, kFloatKeys, kBoolRows, kFloatFull, kFloatOne };

struct MhaCase {
  bool bshd;
  int64_t B, H, Lq, Lk, D, Dv;
  MaskKind mask;
};

// Q K^T and P V in double rounded to float (the exact fp32 products of cuBLASLt, up to their
// summation order), the masked softmax of rows_math.h between them.
Tensor mha_gpu_form(const MhaCase& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                    float scale) {
  const int64_t B = c.B, H = c.H, Lq = c.Lq, Lk = c.Lk, D = c.D, Dv = c.Dv;
  auto at = [&](int64_t b, int64_t h, int64_t i, int64_t L, int64_t W) {
    return c.bshd ? ((b * L + i) * H + h) * W : ((b * H + h) * L + i) * W;
  };
  const Shape ys = c.bshd ? Shape{B, Lq, H, Dv} : Shape{B, H, Lq, Dv};
  Tensor y = zeros_like(ys);
  MhaMask mk;
  if (mask) mk = mha_mask_strides(mask->shape());
  std::vector<float> s(Lk);
  const int lanes = rows::softmax_lanes(Lk, 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        for (int64_t j = 0; j < Lk; ++j) {
          double acc = 0;
          for (int64_t d = 0; d < D; ++d)
            acc +=
                static_cast<double>(q.data<float>()[at(b, h, i, Lq, D) + d]) * k.data<float>()[at(b, h, j, Lk, D) + d];
          s[j] = static_cast<float>(scale * acc);
        }
        rows::RowMask rm;
        if (mask) {
          const int64_t off = b * mk.sb + h * mk.sh + i * mk.si;
          if (mask->dtype() == DType::kBool)
            rm.keep = static_cast<const unsigned char*>(mask->raw()) + off;
          else
            rm.add = mask->data<float>() + off;
          rm.stride = mk.sj;
        }
        rows::masked_softmax_row(s.data(), Lk, rm, lanes);
        for (int64_t e = 0; e < Dv; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < Lk; ++j) acc += static_cast<double>(s[j]) * v.data<float>()[at(b, h, j, Lk, Dv) + e];
          y.data<float>()[at(b, h, i, Lq, Dv) + e] = static_cast<float>(acc);
        }
      }
  return y;
}

void check_mha(const MhaCase& c, uint32_t seed) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
  auto shape = [&](int64_t L, int64_t W) { return c.bshd ? Shape{c.B, L, c.H, W} : Shape{c.B, c.H, L, W}; };
  Tensor q = random_tensor(shape(c.Lq, c.D), seed), k = random_tensor(shape(c.Lk, c.D), seed + 1),
         v = random_tensor(shape(c.Lk, c.Dv), seed + 2);
  Tensor mask;
  switch (c.mask) {
    case MaskKind::kNone: break;
    case MaskKind::kFloatKeys:  // padding: the last keys of each batch entry masked by -inf
      mask = zeros_like(Shape{c.B, 1, 1, c.Lk});
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t j = c.Lk - b; j < c.Lk; ++j) mask.data<float>()[b * c.Lk + j] = -kInf;
      break;
    case MaskKind::kBoolRows: {  // causal, with the first query row of each batch entry fully masked
      mask = Tensor::empty(DType::kBool, Shape{c.B, 1, c.Lq, c.Lk}).value();
      bool* m = mask.data<bool>();
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t i = 0; i < c.Lq; ++i)
          for (int64_t j = 0; j < c.Lk; ++j) m[(b * c.Lq + i) * c.Lk + j] = i > 0 && j <= i + (c.Lk - c.Lq);
      break;
    }
    case MaskKind::kFloatFull: mask = random_tensor(Shape{c.Lq, c.Lk}, seed + 3, -2.f, 0.f); break;
    case MaskKind::kFloatOne: mask = random_tensor(Shape{c.B, c.H, c.Lq, 1}, seed + 3, -2.f, 0.f); break;
  }
  const bool has_mask = c.mask != MaskKind::kNone;
  GraphBuilder b;
  b.input("q", DType::kFloat32, q.shape().vec());
  b.input("k", DType::kFloat32, k.shape().vec());
  b.input("v", DType::kFloat32, v.shape().vec());
  std::vector<std::string> ins{"q", "k", "v"};
  if (has_mask) {
    b.input("m", mask.dtype(), mask.shape().vec());
    ins.push_back("m");
  }
  Node& n = b.node("MultiHeadAttention", ins, {"y"});
  n.domain = "com.mserve";
  n.opset = 1;
  n.attrs["scale"] = float_attr(scale);
  n.attrs["layout"] = string_attr(c.bshd ? "bshd" : "bhsd");
  Graph g = b.output("y").build();
  g.opsets["com.mserve"] = 1;
  std::vector<Tensor> inputs{q, k, v};
  if (has_mask) inputs.push_back(mask);
  auto out = run_cpu(g, inputs);
  ASSERT_EQ(out.size(), 1u);
  const Tensor y = mha_gpu_form(c, q, k, v, has_mask ? &mask : nullptr, scale);
  const std::string what = std::string("attention ") + (c.bshd ? "bshd" : "bhsd") + " B" + std::to_string(c.B) + " H" +
                           std::to_string(c.H) + " Lq" + std::to_string(c.Lq) + " Lk" + std::to_string(c.Lk) +
                           " mask " + std::to_string(static_cast<int>(c.mask));
  EXPECT_LT(rel_l2(y, out[0], what), 1e-6) << what;
}

TEST(AttentionRows, LayoutsMasksAndOddKeyCounts) {
  uint32_t seed = 1000;
  for (bool bshd : {false, true})
    for (int64_t lk : {1, 3, 17, 257, 1100})
      for (MaskKind m :
           {MaskKind::kNone, MaskKind::kFloatKeys, MaskKind::kBoolRows, MaskKind::kFloatFull, MaskKind::kFloatOne})
        check_mha({bshd, 2, 3, lk < 17 ? lk : 5, lk, 8, 6, m}, seed++);
}

// ---------------------------------------------------------------- plan time (no GPU needed)

struct OneNode {
  Graph g;
  std::vector<ValueInfo> infos;
};

// A one-node graph with the given inputs (name, dtype, shape), the node built by `make`.
template <class Make>
OneNode one_node(const std::vector<std::pair<DType, Shape>>& ins, Make make) {
  OneNode r;
  GraphBuilder b;
  std::vector<std::string> names;
  for (size_t i = 0; i < ins.size(); ++i) {
    names.push_back("i" + std::to_string(i));
    if (ins[i].first == DType::kUndefined) {
      names.back().clear();
      continue;
    }
    b.input(names.back(), ins[i].first, ins[i].second.vec());
  }
  make(b, names);
  r.g = b.output("y").build();
  r.g.opsets["com.mserve"] = 1;
  for (const auto& in : ins) r.infos.push_back(ValueInfo{in.first, in.second, nullptr});
  return r;
}

// The kernel's plan-time answer for the node; *k receives the kernel.
Status plan(const OneNode& n, KernelPtr* k, size_t* workspace = nullptr, const Tensor* value1 = nullptr,
            const GpuOptions& opts = {}) {
  KernelInit init(n.g);
  auto kr = CudaBackend(opts).create_kernel(n.g.nodes[0], init);
  if (!kr.ok()) return kr.status();
  if (!kr.value()) return Internal("no GPU kernel");
  *k = std::move(kr).value();
  std::vector<ValueInfo> infos = n.infos;
  if (value1) infos[1].value = value1;
  std::vector<const ValueInfo*> in;
  for (const auto& v : infos) in.push_back(v.dtype == DType::kUndefined ? nullptr : &v);
  InferContext ctx(n.g.nodes[0], in, 1);
  Status st = (*k)->infer(ctx);
  if (workspace) *workspace = ctx.workspace();
  return st;
}

Node& mha_node(GraphBuilder& b, const std::vector<std::string>& names, const std::string& layout) {
  Node& n = b.node("MultiHeadAttention", names, {"y"});
  n.domain = "com.mserve";
  n.opset = 1;
  n.attrs["scale"] = float_attr(0.125f);
  n.attrs["layout"] = string_attr(layout);
  return n;
}

TEST(AttentionPlan, EveryFamilyMakesCudaKernels) {
  const Shape x{2, 8};
  std::vector<OneNode> nodes;
  nodes.push_back(one_node({{DType::kFloat32, x}}, [](GraphBuilder& b, auto& in) { b.node("Softmax", in, {"y"}); }));
  nodes.push_back(one_node({{DType::kFloat32, x}, {DType::kFloat32, Shape{8}}},
                           [](GraphBuilder& b, auto& in) { b.node("LayerNormalization", in, {"y"}); }));
  nodes.push_back(one_node({{DType::kFloat32, x}, {DType::kFloat32, x}, {DType::kFloat32, Shape{8}}},
                           [](GraphBuilder& b, auto& in) {
                             Node& n = b.node("SkipLayerNormalization", in, {"y"});
                             n.domain = "com.mserve";
                             n.opset = 1;
                           }));
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"})
    nodes.push_back(one_node({{DType::kFloat32, x}}, [op](GraphBuilder& b, auto& in) { b.node(op, in, {"y"}); }));
  const Shape q{1, 2, 4, 8};
  nodes.push_back(one_node({{DType::kFloat32, q}, {DType::kFloat32, q}, {DType::kFloat32, q}},
                           [](GraphBuilder& b, auto& in) { mha_node(b, in, "bhsd"); }));
  for (const OneNode& n : nodes) {
    KernelPtr k;
    Status st = plan(n, &k);
    EXPECT_TRUE(st.ok()) << n.g.nodes[0].op_type << ": " << st.message();
    ASSERT_TRUE(k) << n.g.nodes[0].op_type;
    EXPECT_EQ(k->device(), DeviceType::kCuda) << n.g.nodes[0].op_type;
  }
}

void expect_refused(const OneNode& n, const std::string& why, const Tensor* value1 = nullptr) {
  KernelPtr k;
  Status st = plan(n, &k, nullptr, value1);
  EXPECT_EQ(st.code(), Code::kUnsupported) << n.g.nodes[0].op_type << " (" << why << "): " << st.message();
  EXPECT_NE(st.message().find(why), std::string::npos) << st.message();
}

TEST(SoftmaxPlan, Refusals) {
  expect_refused(
      one_node({{DType::kFloat64, Shape{2, 3}}}, [](GraphBuilder& b, auto& in) { b.node("Softmax", in, {"y"}); }),
      "float32");
  expect_refused(one_node({{DType::kFloat32, Shape{2, 3}}},
                          [](GraphBuilder& b, auto& in) { b.node("Softmax", in, {"y"}).opset = 11; }),
                 "opset 11");
}

TEST(LayerNormPlan, Refusals) {
  const Shape x{4, 6};
  expect_refused(one_node({{DType::kFloat32, x}, {DType::kFloat32, Shape{4, 1}}},
                          [](GraphBuilder& b, auto& in) { b.node("LayerNormalization", in, {"y"}); }),
                 "not one value per column");
  expect_refused(one_node({{DType::kFloat32, x}, {DType::kFloat32, Shape{6}}, {DType::kFloat32, Shape{1}}},
                          [](GraphBuilder& b, auto& in) { b.node("LayerNormalization", in, {"y"}); }),
                 "B [1]");
  expect_refused(one_node({{DType::kFloat32, x}, {DType::kFloat32, Shape{4, 1}}, {DType::kFloat32, Shape{6}}},
                          [](GraphBuilder& b, auto& in) {
                            Node& n = b.node("SkipLayerNormalization", in, {"y"});
                            n.domain = "com.mserve";
                            n.opset = 1;
                          }),
                 "repeats whole rows");
  expect_refused(one_node({{DType::kFloat64, x}, {DType::kFloat64, Shape{6}}},
                          [](GraphBuilder& b, auto& in) { b.node("LayerNormalization", in, {"y"}); }),
                 "float32");
}

TEST(ReducePlan, RefusalsAndHostAxes) {
  const Shape x{4, 6};
  expect_refused(one_node({{DType::kFloat64, x}}, [](GraphBuilder& b, auto& in) { b.node("ReduceSum", in, {"y"}); }),
                 "float32");
  {
    // An axes attribute the importer did not move to input 1: the factory refuses it.
    GraphBuilder b;
    b.input("x", DType::kFloat32, {4, 6});
    b.node("ReduceMean", {"x"}, {"y"}).attrs["axes"] = mserve::testing::ints_attr({1});
    Graph g = b.output("y").build();
    KernelInit init(g);
    auto k = CudaBackend().create_kernel(g.nodes[0], init);
    EXPECT_EQ(k.status().code(), Code::kUnsupported);
  }
  const Tensor axes = ints({-1});
  OneNode n = one_node({{DType::kFloat32, x}, {DType::kInt64, Shape{1}}},
                       [](GraphBuilder& b, auto& in) { b.node("ReduceSum", in, {"y"}); });
  KernelPtr k;
  EXPECT_TRUE(plan(n, &k, nullptr, &axes).ok());
  ASSERT_TRUE(k);
  EXPECT_TRUE(k->host_input(1));
  EXPECT_FALSE(k->host_input(0));
}

TEST(AttentionPlan, Refusals) {
  const Shape q{1, 4, 8, 16}, kv{1, 2, 8, 16};
  expect_refused(one_node({{DType::kFloat32, q}, {DType::kFloat32, kv}, {DType::kFloat32, kv}},
                          [](GraphBuilder& b, auto& in) { mha_node(b, in, "bhsd"); }),
                 "as many K / V heads");
  const Shape past{1, 4, 3, 16};
  expect_refused(one_node({{DType::kFloat32, q},
                           {DType::kFloat32, q},
                           {DType::kFloat32, q},
                           {DType::kUndefined, Shape{}},
                           {DType::kFloat32, past},
                           {DType::kFloat32, past}},
                          [](GraphBuilder& b, auto& in) { mha_node(b, in, "bhsd"); }),
                 "past key / value");
  expect_refused(one_node({{DType::kFloat64, q}, {DType::kFloat64, q}, {DType::kFloat64, q}},
                          [](GraphBuilder& b, auto& in) { mha_node(b, in, "bhsd"); }),
                 "float32");
}

// BERT-base: batch 1, sequence 128, 12 heads of 64; the mask a key-padding one [1, 1, 1, 128].
TEST(AttentionPlan, BertBaseWorkspaceAndProducts) {
  for (const char* layout : {"bhsd", "bshd"}) {
    const bool bshd = std::string(layout) == "bshd";
    const Shape x = bshd ? Shape{1, 128, 12, 64} : Shape{1, 12, 128, 64};
    OneNode n = one_node(
        {{DType::kFloat32, x}, {DType::kFloat32, x}, {DType::kFloat32, x}, {DType::kFloat32, Shape{1, 1, 1, 128}}},
        [&](GraphBuilder& b, auto& in) { mha_node(b, in, layout); });
    KernelPtr k;
    size_t ws = 0;
    GpuOptions products;  // the two-GEMM path (BERT's shape fits the fused kernel by default)
    products.fused_attention = false;
    Status st = plan(n, &k, &ws, nullptr, products);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(ws, size_t{12} * 128 * 128 * sizeof(float)) << layout;

    auto g = mha_geometry(x, x, x, bshd, 0.125f);
    ASSERT_TRUE(g.ok()) << g.status().message();
    EXPECT_EQ(g.value().runs, 1);
    EXPECT_EQ(g.value().workspace_bytes, ws);
    auto qk = GemmPlan::create(g.value().qk);
    auto pv = GemmPlan::create(g.value().pv);
    ASSERT_TRUE(qk.ok()) << qk.status().message();
    ASSERT_TRUE(pv.ok()) << pv.status().message();
    const int64_t row = bshd ? 12 * 64 : 64, head = bshd ? 64 : 128 * 64;
    // cuBLASLt's A is our B: S = Q K^T reads K [128, 64] transposed; its B is our Q.
    auto expect_layout = [&](const GemmPlan& p, char op, uint64_t rows, uint64_t cols, int64_t ld, int64_t stride) {
      const GemmPlan::Layout l = p.layout(op);
      EXPECT_EQ(l.rows, rows) << layout << " " << op;
      EXPECT_EQ(l.cols, cols) << layout << " " << op;
      EXPECT_EQ(l.ld, ld) << layout << " " << op;
      EXPECT_EQ(l.batch, 12) << layout << " " << op;
      EXPECT_EQ(l.batch_stride, stride) << layout << " " << op;
    };
    const GemmPlan& s = *qk.value();
    EXPECT_TRUE(s.transposed('A'));
    EXPECT_FALSE(s.transposed('B'));
    EXPECT_EQ(s.shape().alpha, 0.125f);
    EXPECT_FALSE(s.shape().tf32);
    expect_layout(s, 'A', 64, 128, row, head);        // K
    expect_layout(s, 'B', 64, 128, row, head);        // Q
    expect_layout(s, 'C', 128, 128, 128, 128 * 128);  // S, [12, 128, 128] in the workspace
    const GemmPlan& y = *pv.value();
    EXPECT_FALSE(y.transposed('A'));
    EXPECT_FALSE(y.transposed('B'));
    EXPECT_EQ(y.shape().alpha, 1.0f);
    expect_layout(y, 'A', 64, 128, row, head);        // V
    expect_layout(y, 'B', 128, 128, 128, 128 * 128);  // S
    expect_layout(y, 'C', 64, 128, row, head);        // Y
  }
}

TEST(AttentionPlan, BshdBatchesRunPerEntry) {
  auto g = mha_geometry(Shape{3, 10, 4, 16}, Shape{3, 12, 4, 16}, Shape{3, 12, 4, 8}, true, 0.25f);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g.value().runs, 3);
  EXPECT_EQ(g.value().q_run, 10 * 4 * 16);
  EXPECT_EQ(g.value().k_run, 12 * 4 * 16);
  EXPECT_EQ(g.value().v_run, 12 * 4 * 8);
  EXPECT_EQ(g.value().y_run, 10 * 4 * 8);
  EXPECT_EQ(g.value().s_run, 4 * 10 * 12);
  EXPECT_EQ(g.value().workspace_bytes, size_t{3} * 4 * 10 * 12 * sizeof(float));
}

}  // namespace
}  // namespace mserve::gpu
