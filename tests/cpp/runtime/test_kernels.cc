// Each kernel against a naive double-precision reference, on one-node graphs.
#include <cmath>
#include <functional>

#include "core/kernels/dnnl_conv.h"
#include "core/kernels/dnnl_matmul.h"
#include "core/kernels/isa/isa.h"
#include "core/onnx/normalize.h"
#include "helpers.h"

namespace mserve::testing {
namespace {

std::vector<double> to_double(const Tensor& t) {
  std::vector<double> v(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.float_at(i);
  return v;
}

// Index helpers for row-major reference loops.
struct Idx {
  Shape s;
  int64_t operator()(std::initializer_list<int64_t> ix) const {
    int64_t off = 0, d = 0;
    for (int64_t i : ix) off = off * s[d++] + i;
    return off;
  }
};

// Runs a single-node graph `op` on float inputs (names a, b, c, ...).
struct OneNode {
  std::string op;
  std::map<std::string, Attribute> attrs;
  std::vector<Shape> shapes;
  int opset = 17;
  std::vector<Tensor> consts = {};  // appended as constant inputs after the runtime inputs

  std::vector<Tensor> inputs() const {
    std::vector<Tensor> v;
    for (size_t i = 0; i < shapes.size(); ++i) v.push_back(random_tensor(shapes[i], 100 + i));
    return v;
  }
  Tensor run(const std::vector<Tensor>& ins, int threads = 2) const {
    GraphBuilder b;
    b.opset(opset);
    std::vector<std::string> names;
    for (size_t i = 0; i < ins.size(); ++i) {
      std::vector<int64_t> dims(ins[i].shape().begin(), ins[i].shape().end());
      names.push_back(std::string(1, char('a' + i)));
      b.input(names.back(), ins[i].dtype(), dims);
    }
    for (size_t i = 0; i < consts.size(); ++i) {
      names.push_back("k" + std::to_string(i));
      b.constant(names.back(), consts[i]);
    }
    Node& n = b.node(op, names, {"y"});
    n.attrs = attrs;
    b.output("y");
    Graph g = b.build();
    // As the importer does: old operator forms become the newest ones before planning.
    EXPECT_TRUE(normalize_opsets(g).ok());
    auto outs = run_graph(g, ins, threads);
    return outs.empty() ? Tensor() : outs[0];
  }
};

TEST(Kernels, BroadcastArithmetic) {
  for (auto [sa, sb] : {std::pair{Shape{2, 3, 4}, Shape{4}},
                        {Shape{2, 1, 4}, Shape{3, 1}},
                        {Shape{5}, Shape{}},
                        {Shape{1, 6}, Shape{6, 1}},
                        {Shape{300, 200}, Shape{300, 200}}}) {
    for (std::string op : {"Add", "Sub", "Mul", "Div"}) {
      OneNode t{op, {}, {sa, sb}};
      auto ins = t.inputs();
      Tensor y = t.run(ins);
      Shape out = Shape{};
      int r = std::max(sa.rank(), sb.rank());
      for (int i = 0; i < r; ++i) {
        int ia = i - (r - sa.rank()), ib = i - (r - sb.rank());
        out.push_back(std::max(ia >= 0 ? sa[ia] : 1, ib >= 0 ? sb[ib] : 1));
      }
      std::vector<double> want(out.numel());
      for (int64_t i = 0; i < out.numel(); ++i) {
        // unravel i and map to each input with broadcasting
        int64_t rem = i, oa = 0, ob = 0, ma = 1, mb = 1;
        for (int d = r - 1; d >= 0; --d) {
          int64_t idx = rem % out[d];
          rem /= out[d];
          int ia = d - (r - sa.rank()), ib = d - (r - sb.rank());
          if (ia >= 0) {
            oa += (sa[ia] == 1 ? 0 : idx) * ma;
            ma *= sa[ia];
          }
          if (ib >= 0) {
            ob += (sb[ib] == 1 ? 0 : idx) * mb;
            mb *= sb[ib];
          }
        }
        double x = ins[0].float_at(oa), z = ins[1].float_at(ob);
        want[i] = op == "Add" ? x + z : op == "Sub" ? x - z : op == "Mul" ? x * z : x / z;
      }
      expect_close(y, want, out, 1e-5, 1e-5);
    }
  }
}

TEST(Kernels, IntegerDivTruncatesAndRejectsZero) {
  OneNode t{"Div", {}, {}};
  auto a = Tensor::from<int32_t>(Shape{3}, {7, -7, 9});
  auto b = Tensor::from<int32_t>(Shape{3}, {2, 2, 3});
  Tensor y = t.run({a, b});
  EXPECT_EQ(y.int_at(0), 3);
  EXPECT_EQ(y.int_at(1), -3);
  EXPECT_EQ(y.int_at(2), 3);
  // The most negative value over -1 wraps (two's complement) instead of trapping the process.
  for (int64_t lo : {int64_t{INT32_MIN}, INT64_MIN}) {
    const bool wide = lo == INT64_MIN;
    Tensor n = wide ? Tensor::from<int64_t>(Shape{2}, {lo, 6}) : Tensor::from<int32_t>(Shape{2}, {int32_t(lo), 6});
    Tensor d = wide ? Tensor::from<int64_t>(Shape{2}, {-1, -1}) : Tensor::from<int32_t>(Shape{2}, {-1, -1});
    Tensor q = t.run({n, d});
    EXPECT_EQ(q.int_at(0), lo);
    EXPECT_EQ(q.int_at(1), -6);
  }
}

TEST(Kernels, Activations) {
  Shape s{7, 33};
  for (std::string op : {"Relu", "Sigmoid", "Tanh"}) {
    OneNode t{op, {}, {s}};
    auto ins = t.inputs();
    std::vector<double> want;
    for (double x : to_double(ins[0]))
      want.push_back(op == "Relu" ? std::max(x, 0.0) : op == "Tanh" ? std::tanh(x) : 1 / (1 + std::exp(-x)));
    expect_close(t.run(ins), want, s);
  }
}

TEST(Kernels, ClipAttributeAndInputForms) {
  Shape s{50};
  OneNode legacy{"Clip", {{"min", float_attr(-0.2f)}, {"max", float_attr(0.3f)}}, {s}, 6};
  auto ins = legacy.inputs();
  std::vector<double> want;
  for (double x : to_double(ins[0])) want.push_back(std::min(std::max(x, -0.2), 0.3));
  expect_close(legacy.run(ins), want, s);
  OneNode modern{"Clip", {}, {s}, 13, {Tensor::from<float>(Shape{}, {-0.2f}), Tensor::from<float>(Shape{}, {0.3f})}};
  expect_close(modern.run(ins), want, s);
}

TEST(Kernels, SoftmaxBothSemantics) {
  Shape s{2, 3, 5};
  // opset 13: along axis 1 only.
  OneNode t13{"Softmax", {{"axis", int_attr(1)}}, {s}, 13};
  auto ins = t13.inputs();
  auto x = to_double(ins[0]);
  std::vector<double> want(x.size());
  for (int n = 0; n < 2; ++n)
    for (int k = 0; k < 5; ++k) {
      double sum = 0;
      for (int c = 0; c < 3; ++c) sum += std::exp(x[n * 15 + c * 5 + k]);
      for (int c = 0; c < 3; ++c) want[n * 15 + c * 5 + k] = std::exp(x[n * 15 + c * 5 + k]) / sum;
    }
  expect_close(t13.run(ins), want, s);
  // opset 11: flattened from axis 1 on (15 elements per row).
  OneNode t11{"Softmax", {{"axis", int_attr(1)}}, {s}, 11};
  for (int n = 0; n < 2; ++n) {
    double sum = 0;
    for (int i = 0; i < 15; ++i) sum += std::exp(x[n * 15 + i]);
    for (int i = 0; i < 15; ++i) want[n * 15 + i] = std::exp(x[n * 15 + i]) / sum;
  }
  expect_close(t11.run(ins), want, s);
}

TEST(Kernels, GemmTransposesAndBias) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int64_t M = 37, N = 29, K = 45;
      OneNode t{
          "Gemm",
          {{"transA", int_attr(ta)}, {"transB", int_attr(tb)}, {"alpha", float_attr(0.5f)}, {"beta", float_attr(2.f)}},
          {ta ? Shape{K, M} : Shape{M, K}, tb ? Shape{N, K} : Shape{K, N}, Shape{N}}};
      auto ins = t.inputs();
      std::vector<double> want(M * N);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += ins[0].float_at(ta ? k * M + i : i * K + k) * ins[1].float_at(tb ? j * K + k : k * N + j);
          want[i * N + j] = 0.5 * acc + 2.0 * ins[2].float_at(j);
        }
      expect_close(t.run(ins), want, Shape{M, N});
    }
}

// oneDNN's matmul on constant weights (Gemm and MatMul with weights of the graph), in whatever
// layout this CPU's kernel takes: padded plain rows without AVX-512 (N = 256 and 768 floats are
// rows of 1 KB and 3 KB), blocked with it; weights transposed or not, with bias, several M.
TEST(Kernels, DnnlMatMulPackedWeightsMatchNaive) {
  const int64_t K = 96;
  for (int64_t N : {256, 768})
    for (bool trans : {false, true})
      for (int64_t M : {1, 5, 128}) {
        SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N) + (trans ? " trans" : ""));
        Tensor w = random_tensor(trans ? Shape{N, K} : Shape{K, N}, 1), b = random_tensor(Shape{N}, 2);
        Tensor x = random_tensor(Shape{M, K}, 3);
        auto mm = DnnlMatMul::create(K, N, w.data<float>(), trans, b.data<float>(), FusedActivation{});
        ASSERT_TRUE(mm);
        auto ws = mm->prepare(M, 2);
        if (!ws.ok()) continue;  // too small for oneDNN: another kernel runs it
        std::vector<char> scratch(ws.value() + 64);
        void* sp = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) / 64 * 64);
        std::vector<float> y(static_cast<size_t>(M * N));
        ASSERT_TRUE(mm->run(x.data<float>(), y.data(), M, sp, 2).ok());
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double acc = b.float_at(j);
            for (int64_t k = 0; k < K; ++k) acc += x.float_at(i * K + k) * w.float_at(trans ? j * K + k : k * N + j);
            ASSERT_NEAR(y[i * N + j], acc, 1e-4 * (1 + std::abs(acc))) << "at " << i << ", " << j;
          }
      }
}

TEST(Kernels, MatMulBatchedBroadcastAnd1D) {
  struct Case {
    Shape a, b, out;
  };
  for (const Case& c :
       {Case{{2, 3, 4, 5}, {5, 6}, {2, 3, 4, 6}}, Case{{3, 4, 5}, {1, 5, 2}, {3, 4, 2}}, Case{{5}, {2, 5, 3}, {2, 3}},
        Case{{4, 5}, {5}, {4}}, Case{{2, 1, 3, 4}, {5, 4, 2}, {2, 5, 3, 2}}}) {
    OneNode t{"MatMul", {}, {c.a, c.b}};
    auto ins = t.inputs();
    Tensor y = t.run(ins);
    // Reference: promote, broadcast batch, multiply.
    Shape a = c.a, b = c.b;
    if (a.rank() == 1) a.insert(0, 1);
    if (b.rank() == 1) b.push_back(1);
    const int64_t M = a[a.rank() - 2], K = a[a.rank() - 1], N = b[b.rank() - 1];
    Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
    int r = std::max(ba.rank(), bb.rank());
    Shape batch;
    for (int i = 0; i < r; ++i) {
      int ia = i - (r - ba.rank()), ib = i - (r - bb.rank());
      batch.push_back(std::max(ia >= 0 ? ba[ia] : 1, ib >= 0 ? bb[ib] : 1));
    }
    std::vector<double> want;
    for (int64_t q = 0; q < batch.numel(); ++q) {
      int64_t rem = q, oa = 0, ob = 0, ma = 1, mb = 1;
      for (int d = r - 1; d >= 0; --d) {
        int64_t idx = rem % batch[d];
        rem /= batch[d];
        int ia = d - (r - ba.rank()), ib = d - (r - bb.rank());
        if (ia >= 0) {
          oa += (ba[ia] == 1 ? 0 : idx) * ma;
          ma *= ba[ia];
        }
        if (ib >= 0) {
          ob += (bb[ib] == 1 ? 0 : idx) * mb;
          mb *= bb[ib];
        }
      }
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += ins[0].float_at(oa * M * K + i * K + k) * ins[1].float_at(ob * K * N + k * N + j);
          want.push_back(acc);
        }
    }
    expect_close(y, want, c.out);
  }
}

// Direct convolution reference, NCHW, one spatial rank of 2 (1-D uses H = 1).
std::vector<double> conv_ref(const Tensor& x, const Tensor& w, const Tensor* b, int64_t group, std::vector<int64_t> st,
                             std::vector<int64_t> pad, std::vector<int64_t> dil, Shape& out) {
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t M = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const int64_t OH = (H + pad[0] + pad[2] - dil[0] * (kh - 1) - 1) / st[0] + 1;
  const int64_t OW = (W + pad[1] + pad[3] - dil[1] * (kw - 1) - 1) / st[1] + 1;
  out = Shape{N, M, OH, OW};
  std::vector<double> y(out.numel());
  const int64_t cg = C / group, mg = M / group;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = b ? b->float_at(m) : 0;
          int64_t g = m / mg;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                int64_t ih = oh * st[0] - pad[0] + i * dil[0], iw = ow * st[1] - pad[1] + j * dil[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc +=
                    x.float_at(((n * C + g * cg + c) * H + ih) * W + iw) * w.float_at(((m * cg + c) * kh + i) * kw + j);
              }
          y[((n * M + m) * OH + oh) * OW + ow] = acc;
        }
  return y;
}

TEST(Kernels, Conv2DPadsStridesDilationsGroups) {
  struct Case {
    Shape x, w;
    int64_t group;
    std::vector<int64_t> st, pad, dil;
  };
  for (const Case& c : {Case{{2, 3, 9, 8}, {4, 3, 3, 3}, 1, {1, 1}, {1, 1, 1, 1}, {1, 1}},
                        Case{{1, 4, 10, 10}, {6, 2, 3, 2}, 2, {2, 1}, {0, 1, 2, 0}, {1, 2}},
                        Case{{1, 8, 7, 7}, {8, 1, 3, 3}, 8, {1, 1}, {1, 1, 1, 1}, {1, 1}},
                        Case{{3, 16, 5, 5}, {8, 16, 1, 1}, 1, {1, 1}, {0, 0, 0, 0}, {1, 1}}}) {
    OneNode t{"Conv",
              {{"group", int_attr(c.group)},
               {"strides", ints_attr(c.st)},
               {"pads", ints_attr(c.pad)},
               {"dilations", ints_attr(c.dil)}},
              {c.x, c.w, Shape{c.w[0]}}};
    auto ins = t.inputs();
    Shape out;
    auto want = conv_ref(ins[0], ins[1], &ins[2], c.group, c.st, c.pad, c.dil, out);
    expect_close(t.run(ins), want, out);
  }
}

TEST(Kernels, ConvBatchesRunInChunksOnFewPrimitives) {
  // Constant weights: oneDNN runs the batch as chunks of 32, 16, ..., 1 images.
  const Tensor w = random_tensor(Shape{8, 4, 3, 3}, 11), b = random_tensor(Shape{8}, 12);
  for (int64_t n : {37, 5, 64}) {
    OneNode t{"Conv", {{"pads", ints_attr({1, 1, 1, 1})}}, {Shape{n, 4, 9, 9}}, 17, {w, b}};
    auto ins = t.inputs();
    Shape out;
    auto want = conv_ref(ins[0], w, &b, 1, {1, 1}, {1, 1, 1, 1}, {1, 1}, out);
    expect_close(t.run(ins), want, out);
  }
  DnnlConv::Params p;
  p.C = 4;
  p.M = 8;
  p.k[0] = p.k[1] = 3;
  p.nhwc = p.always = true;
  auto conv = DnnlConv::create(p, w.data<float>(), b.data<float>());
  ASSERT_TRUE(conv);
  for (int64_t n = 1; n <= 64; ++n)
    ASSERT_TRUE(conv->prepare(DnnlConv::Geometry{n, 9, 9, 7, 7, {0, 0}, {0, 0}}, 1).ok());
  EXPECT_LE(conv->cached_primitives(), 6u);  // one per chunk size, not per batch size
}

// Dense float32 convs against the double reference, the caller's data channels-last and NCHW: on
// AVX2 CPUs those with a spatial kernel and enough products per channel run on oneDNN's blocked
// layout (X and Y reordered through the workspace), the rest as given. Strides, dilation,
// asymmetric padding, a fused activation, a batch of 37 (chunks of 32, 4 and 1).
TEST(Kernels, DnnlConvLayoutsMatchReference) {
  struct Case {
    int64_t N, C, M, H, W, k[2], s[2], d[2], pad[4];  // pad: top, left, bottom, right
    bool relu, blocked_on_avx2;
  };
  const Case cases[] = {
      {1, 64, 64, 9, 11, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, false, true},
      {3, 32, 64, 10, 7, {3, 3}, {2, 1}, {1, 1}, {0, 1, 1, 0}, true, true},
      {37, 64, 32, 5, 6, {3, 5}, {1, 2}, {2, 1}, {2, 2, 0, 1}, true, true},
      {2, 16, 16, 8, 8, {5, 5}, {1, 1}, {1, 1}, {2, 2, 2, 2}, false, true},
      {2, 32, 32, 8, 8, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, false, false},  // few products per channel
      {2, 128, 8, 6, 6, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, true, false},
      {2, 64, 64, 6, 6, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, false, false},  // 1x1
      {1, 12, 64, 7, 7, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, false, false},  // channels not in 8s
  };
  uint32_t seed = 40;
  for (const Case& c : cases) {
    const Tensor x = random_tensor(Shape{c.N, c.C, c.H, c.W}, ++seed),
                 w = random_tensor(Shape{c.M, c.C, c.k[0], c.k[1]}, ++seed), b = random_tensor(Shape{c.M}, ++seed);
    Shape out;
    std::vector<double> want =
        conv_ref(x, w, &b, 1, {c.s[0], c.s[1]}, {c.pad[0], c.pad[1], c.pad[2], c.pad[3]}, {c.d[0], c.d[1]}, out);
    if (c.relu)
      for (double& v : want) v = std::max(v, 0.0);
    const int64_t OH = out[2], OW = out[3];
    for (bool nhwc : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "C " << c.C << " M " << c.M << " k " << c.k[0] << "x" << c.k[1] << " N "
                                        << c.N << (nhwc ? " channels-last" : " NCHW"));
      DnnlConv::Params p;
      p.C = c.C, p.M = c.M, p.nhwc = nhwc, p.always = true;
      for (int i = 0; i < 2; ++i) p.k[i] = c.k[i], p.s[i] = c.s[i], p.d[i] = c.d[i];
      if (c.relu) p.act = FusedActivation::named("Relu");
      auto conv = DnnlConv::create(p, w.data<float>(), b.data<float>());
      ASSERT_TRUE(conv);
      if (cpu_isa() == Isa::kAvx2) EXPECT_EQ(conv->runs_blocked(), c.blocked_on_avx2);
      // channels-last: X [N, H, W, C], Y [N, OH, OW, M]
      auto to_nhwc = [](const float* a, int64_t N, int64_t C, int64_t HW) {
        std::vector<float> t(static_cast<size_t>(N * C * HW));
        for (int64_t n = 0; n < N; ++n)
          for (int64_t ch = 0; ch < C; ++ch)
            for (int64_t i = 0; i < HW; ++i) t[(n * HW + i) * C + ch] = a[(n * C + ch) * HW + i];
        return t;
      };
      std::vector<float> xin = nhwc ? to_nhwc(x.data<float>(), c.N, c.C, c.H * c.W)
                                    : std::vector<float>(x.data<float>(), x.data<float>() + x.numel());
      const DnnlConv::Geometry g{c.N, c.H, c.W, OH, OW, {c.pad[0], c.pad[1]}, {c.pad[2], c.pad[3]}};
      auto bytes = conv->prepare(g, 2);
      ASSERT_TRUE(bytes.ok()) << bytes.status().message();
      std::vector<char> ws(bytes.value() + 64);
      void* wsp = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) / 64 * 64);
      std::vector<float> ybuf(static_cast<size_t>(out.numel()));
      ASSERT_TRUE(conv->run(xin.data(), ybuf.data(), g, wsp, 2).ok());
      std::vector<double> want_here = want;
      if (nhwc) {
        std::vector<float> w32(want.begin(), want.end());
        const std::vector<float> t = to_nhwc(w32.data(), c.N, c.M, OH * OW);
        want_here.assign(t.begin(), t.end());
      }
      expect_close(Tensor(DType::kFloat32, out, ybuf.data()), want_here, out);
    }
  }
}

TEST(Kernels, Conv1DAndAutoPad) {
  // 1-D conv equals the 2-D reference with H = 1.
  OneNode t{"Conv", {{"auto_pad", string_attr("SAME_UPPER")}}, {Shape{2, 3, 11}, Shape{5, 3, 4}}};
  auto ins = t.inputs();
  Tensor y = t.run(ins);
  Tensor x2 = ins[0].reshaped(Shape{2, 3, 1, 11}), w2 = ins[1].reshaped(Shape{5, 3, 1, 4});
  // SAME_UPPER with k=4, stride 1: total pad 3, 1 at the start and 2 at the end.
  Shape out;
  auto want = conv_ref(x2, w2, nullptr, 1, {1, 1}, {0, 1, 0, 2}, {1, 1}, out);
  expect_close(y, want, Shape{2, 5, 11});
}

TEST(Kernels, PoolsAgainstReference) {
  Shape s{2, 3, 7, 6};
  OneNode mp{"MaxPool",
             {{"kernel_shape", ints_attr({3, 2})}, {"strides", ints_attr({2, 2})}, {"pads", ints_attr({1, 0, 1, 0})}},
             {s}};
  OneNode ap{"AveragePool",
             {{"kernel_shape", ints_attr({3, 2})}, {"strides", ints_attr({2, 2})}, {"pads", ints_attr({1, 0, 1, 0})}},
             {s}};
  auto ins = mp.inputs();
  const Tensor& x = ins[0];
  Shape out{2, 3, 4, 3};
  std::vector<double> wmax, wavg;
  for (int64_t nc = 0; nc < 6; ++nc)
    for (int64_t oh = 0; oh < 4; ++oh)
      for (int64_t ow = 0; ow < 3; ++ow) {
        double m = -1e30, sum = 0;
        int cnt = 0;
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < 2; ++j) {
            int64_t ih = oh * 2 - 1 + i, iw = ow * 2 + j;
            if (ih < 0 || ih >= 7 || iw >= 6) continue;
            double v = x.float_at((nc * 7 + ih) * 6 + iw);
            m = std::max(m, v);
            sum += v;
            ++cnt;
          }
        wmax.push_back(m);
        wavg.push_back(sum / cnt);  // count_include_pad = 0
      }
  expect_close(mp.run(ins), wmax, out);
  expect_close(ap.run(ins), wavg, out);
  OneNode gap{"GlobalAveragePool", {}, {s}};
  std::vector<double> wg;
  for (int64_t nc = 0; nc < 6; ++nc) {
    double sum = 0;
    for (int64_t i = 0; i < 42; ++i) sum += x.float_at(nc * 42 + i);
    wg.push_back(sum / 42);
  }
  expect_close(gap.run(ins), wg, Shape{2, 3, 1, 1});
}

TEST(Kernels, BatchNormalization) {
  Shape s{2, 4, 3, 3};
  OneNode t{"BatchNormalization", {{"epsilon", float_attr(1e-3f)}}, {s, {4}, {4}, {4}}};
  auto ins = t.inputs();
  ins.push_back(random_tensor(Shape{4}, 9, 0.5f, 2.f));  // variance > 0
  Tensor y = t.run(ins);
  std::vector<double> want;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t i = 0; i < 9; ++i) {
        double x = ins[0].float_at((n * 4 + c) * 9 + i);
        want.push_back((x - ins[3].float_at(c)) / std::sqrt(ins[4].float_at(c) + 1e-3) * ins[1].float_at(c) +
                       ins[2].float_at(c));
      }
  expect_close(y, want, s);
}

TEST(Kernels, TransposeReshapeConcatGather) {
  Shape s{2, 3, 4};
  OneNode tr{"Transpose", {{"perm", ints_attr({2, 0, 1})}}, {s}};
  auto ins = tr.inputs();
  std::vector<double> want;
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) want.push_back(ins[0].float_at((i * 3 + j) * 4 + k));
  expect_close(tr.run(ins), want, Shape{4, 2, 3});

  OneNode rs{"Reshape", {}, {s}, 17, {Tensor::from<int64_t>(Shape{2}, {0, -1})}};
  expect_close(rs.run(ins), to_double(ins[0]), Shape{2, 12});

  OneNode cat{"Concat", {{"axis", int_attr(-1)}}, {s, Shape{2, 3, 2}}};
  auto cins = cat.inputs();
  std::vector<double> wc;
  for (int i = 0; i < 6; ++i) {
    for (int k = 0; k < 4; ++k) wc.push_back(cins[0].float_at(i * 4 + k));
    for (int k = 0; k < 2; ++k) wc.push_back(cins[1].float_at(i * 2 + k));
  }
  expect_close(cat.run(cins), wc, Shape{2, 3, 6});

  OneNode ga{"Gather", {{"axis", int_attr(1)}}, {s}, 13, {Tensor::from<int64_t>(Shape{2}, {2, -3})}};
  std::vector<double> wg;
  for (int i = 0; i < 2; ++i)
    for (int j : {2, 0})
      for (int k = 0; k < 4; ++k) wg.push_back(ins[0].float_at((i * 3 + j) * 4 + k));
  expect_close(ga.run(ins), wg, Shape{2, 2, 4});
}

TEST(Kernels, ThreadCountDoesNotChangeResults) {
  OneNode t{"Conv", {{"pads", ints_attr({1, 1, 1, 1})}}, {Shape{2, 8, 20, 20}, Shape{16, 8, 3, 3}}};
  auto ins = t.inputs();
  Tensor one = t.run(ins, 1), many = t.run(ins, 4);
  // Threads split the GEMM into panels and Eigen picks its depth blocking per panel size, so the
  // 72-term sums may round differently (seen: 1.1e-6 on AVX-512); anything more is a real bug.
  expect_close(many, to_double(one), one.shape(), 1e-5, 1e-5);
}

}  // namespace
}  // namespace mserve::testing
