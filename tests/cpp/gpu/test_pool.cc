// The pools on the GPU without a GPU: the window arithmetic the device runs (pool_math.h,
// compiled here by g++) over every output element, and the global pools' warp reduction replayed
// lane by lane, against the CPU runtime on random geometries: 1-D to 3-D windows, strides, pads,
// auto_pad, dilations, ceil_mode, count_include_pad, odd and size-1 dims. Maxima must be equal
// bit for bit; averages within float rounding (the CPU itself sums in different orders and
// multiplies by reciprocals on its fast paths, so its last bit depends on the path it takes).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/kernels/conv_geometry.h"
#include "gpu/context.h"
#include "gpu/ops/pool.h"
#include "helpers.h"

namespace mserve::gpu {
namespace {

using mserve::testing::GraphBuilder;
using mserve::testing::int_attr;
using mserve::testing::ints_attr;
using mserve::testing::random_tensor;
using mserve::testing::string_attr;

std::vector<Tensor> run_cpu(const Graph& g, const std::vector<Tensor>& in) {
  return mserve::testing::run_graph(g, in, 1, false);
}

// Exact for maxima (NaN where the CPU has NaN); within 2e-6 relative for averages.
void expect_pooled(const std::vector<float>& got, const Tensor& want, bool max, const std::string& what) {
  ASSERT_EQ(static_cast<int64_t>(got.size()), want.numel()) << what;
  const float* w = want.data<float>();
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(w[i])) {
      ASSERT_TRUE(std::isnan(got[i])) << what << " at " << i;
    } else if (max) {
      ASSERT_EQ(got[i], w[i]) << what << " at " << i;
    } else {
      ASSERT_NEAR(got[i], w[i], 2e-6f * (1.0f + std::fabs(w[i]))) << what << " at " << i;
    }
  }
}

struct Window {
  std::vector<int64_t> kernel, strides, dilations, pads;
  std::string auto_pad;
  bool ceil = false, include_pad = false;
};

Window random_window(std::mt19937& rng, int sp, bool dilations) {
  Window w;
  for (int i = 0; i < sp; ++i) {
    w.kernel.push_back(1 + static_cast<int64_t>(rng() % 4));
    w.strides.push_back(1 + static_cast<int64_t>(rng() % 3));
    w.dilations.push_back(dilations ? 1 + static_cast<int64_t>(rng() % 2) : 1);
  }
  for (int e = 0; e < 2; ++e)
    for (int i = 0; i < sp; ++i) w.pads.push_back(static_cast<int64_t>(rng() % static_cast<uint32_t>(w.kernel[i])));
  const int a = static_cast<int>(rng() % 6);
  w.auto_pad = a == 0 ? "SAME_UPPER" : a == 1 ? "SAME_LOWER" : a == 2 ? "VALID" : "";
  w.ceil = rng() % 2;
  w.include_pad = rng() % 2;
  return w;
}

void set_window(Node& n, const Window& w, bool avg) {
  n.attrs["kernel_shape"] = ints_attr(w.kernel);
  n.attrs["strides"] = ints_attr(w.strides);
  n.attrs["dilations"] = ints_attr(w.dilations);
  if (w.auto_pad.empty())
    n.attrs["pads"] = ints_attr(w.pads);
  else
    n.attrs["auto_pad"] = string_attr(w.auto_pad);
  n.attrs["ceil_mode"] = int_attr(w.ceil);
  if (avg) n.attrs["count_include_pad"] = int_attr(w.include_pad);
}

// The geometry the GPU kernel computes for this node and X (NCHW shape), or an error where the
// CPU's geometry is one.
StatusOr<PoolGeo> geo_of(const Node& n, const Shape& nchw, bool nhwc, bool include_pad) {
  MS_ASSIGN_OR_RETURN(WindowAttrs a, parse_window_attrs(n));
  ConvGeometry g;
  MS_RETURN_IF_ERROR(pool_geometry(a, nchw, n.attr_int("ceil_mode", 0) != 0, &g));
  return pool_geo(g, include_pad, nhwc);
}

TEST(Pool, RandomMaxAndAveragePoolsMatchTheCpu) {
  std::mt19937 rng(21);
  int ran = 0;
  for (int it = 0; it < 300; ++it) {
    const int sp = 1 + static_cast<int>(rng() % 3);
    const bool avg = rng() % 2;
    const Window w = random_window(rng, sp, true);
    std::vector<int64_t> dims = {1 + static_cast<int64_t>(rng() % 2), 1 + static_cast<int64_t>(rng() % 3)};
    for (int i = 0; i < sp; ++i) dims.push_back(1 + static_cast<int64_t>(rng() % (sp == 3 ? 6 : 11)));
    GraphBuilder b;
    b.opset(19);  // ceil_mode and dilations for both
    b.input("x", DType::kFloat32, dims);
    Node& n = b.node(avg ? "AveragePool" : "MaxPool", {"x"}, {"y"});
    set_window(n, w, avg);
    Graph g = b.output("y").build();
    const Shape xs(dims.begin(), dims.end());
    auto geo = geo_of(g.nodes[0], xs, false, avg && w.include_pad);
    if (!geo.ok()) continue;  // an empty output: the CPU refuses it too
    Tensor x = random_tensor(xs, static_cast<uint32_t>(it));
    auto want = run_cpu(g, {x});
    ASSERT_EQ(want.size(), 1u);
    const PoolGeo& p = geo.value();
    std::vector<float> got(static_cast<size_t>(p.planes * p.out_size()));
    for (int64_t i = 0; i < static_cast<int64_t>(got.size()); ++i)
      got[i] = avg ? pool_nchw<false>(p, x.data<float>(), i) : pool_nchw<true>(p, x.data<float>(), i);
    expect_pooled(got, want[0], !avg,
                  std::string(avg ? "AveragePool " : "MaxPool ") + xs.str() + " kernel " + ints_str(w.kernel) +
                      " strides " + ints_str(w.strides) + " dilations " + ints_str(w.dilations) + " pads " +
                      ints_str(w.pads) + " auto_pad '" + w.auto_pad + "' ceil " + std::to_string(w.ceil) +
                      " include_pad " + std::to_string(w.include_pad));
    ++ran;
  }
  EXPECT_GT(ran, 200);
}

TEST(Pool, RandomNhwcPoolsMatchTheCpu) {
  std::mt19937 rng(23);
  int ran = 0;
  for (int it = 0; it < 150; ++it) {
    const bool avg = rng() % 2;
    const Window w = random_window(rng, 2, true);
    const int64_t N = 1 + rng() % 2, H = 1 + rng() % 9, W = 1 + rng() % 9, C = 1 + rng() % 7;
    GraphBuilder b;
    b.input("x", DType::kFloat32, {N, H, W, C});
    Node& n = b.node(avg ? "NhwcAveragePool" : "NhwcMaxPool", {"x"}, {"y"});
    n.domain = "com.mserve";
    n.opset = 1;
    set_window(n, w, avg);
    n.attrs["mserve_source_opset"] = int_attr(19);
    Graph g = b.output("y").build();
    g.opsets["com.mserve"] = 1;
    auto geo = geo_of(g.nodes[0], Shape{N, C, H, W}, true, avg && w.include_pad);
    if (!geo.ok()) continue;
    Tensor x = random_tensor(Shape{N, H, W, C}, static_cast<uint32_t>(100 + it));
    auto want = run_cpu(g, {x});
    ASSERT_EQ(want.size(), 1u);
    const PoolGeo& p = geo.value();
    ASSERT_EQ(want[0].shape(), (Shape{N, p.out[1], p.out[2], C}));
    std::vector<float> got(static_cast<size_t>(p.planes * p.channels * p.out_size()));
    for (int64_t i = 0; i < static_cast<int64_t>(got.size()); ++i)
      got[i] = avg ? pool_nhwc<false>(p, x.data<float>(), i) : pool_nhwc<true>(p, x.data<float>(), i);
    expect_pooled(got, want[0], !avg, std::string(avg ? "NhwcAveragePool " : "NhwcMaxPool ") + want[0].shape().str());
    ++ran;
  }
  EXPECT_GT(ran, 100);
}

// The global pool kernel replayed: 32 lanes with their partial results, then the butterfly,
// each lane combining its own value with the one `offset` lanes away.
template <bool kMax>
float replay_global(const float* plane, int64_t len) {
  float v[kPoolWarp], next[kPoolWarp];
  for (int l = 0; l < kPoolWarp; ++l) v[l] = global_lane_partial<kMax>(plane, len, l);
  for (int offset = kPoolWarp / 2; offset > 0; offset /= 2) {
    for (int l = 0; l < kPoolWarp; ++l) next[l] = global_butterfly<kMax>(v[l], v[l ^ offset]);
    for (int l = 0; l < kPoolWarp; ++l) v[l] = next[l];
  }
  for (int l = 1; l < kPoolWarp; ++l) EXPECT_TRUE(v[l] == v[0] || (std::isnan(v[l]) && std::isnan(v[0])));
  return global_finish<kMax>(v[0], len);
}

TEST(Pool, GlobalPoolsMatchTheCpu) {
  std::mt19937 rng(29);
  for (int it = 0; it < 100; ++it) {
    const bool max = rng() % 2;
    const int sp = 1 + static_cast<int>(rng() % 3);
    std::vector<int64_t> dims = {1 + static_cast<int64_t>(rng() % 3), 1 + static_cast<int64_t>(rng() % 5)};
    for (int i = 0; i < sp; ++i) dims.push_back(1 + static_cast<int64_t>(rng() % 13));
    GraphBuilder b;
    b.input("x", DType::kFloat32, dims);
    b.node(max ? "GlobalMaxPool" : "GlobalAveragePool", {"x"}, {"y"});
    const Shape xs(dims.begin(), dims.end());
    Tensor x = random_tensor(xs, static_cast<uint32_t>(200 + it));
    auto want = run_cpu(b.output("y").build(), {x});
    ASSERT_EQ(want.size(), 1u);
    const int64_t planes = xs[0] * xs[1], len = xs.prod(2, xs.rank());
    std::vector<float> got(static_cast<size_t>(planes));
    for (int64_t p = 0; p < planes; ++p)
      got[p] = max ? replay_global<true>(x.data<float>() + p * len, len)
                   : replay_global<false>(x.data<float>() + p * len, len);
    expect_pooled(got, want[0], max, std::string(max ? "GlobalMaxPool " : "GlobalAveragePool ") + xs.str());
  }
}

TEST(Pool, NanWinsAMaxAsOnTheCpu) {
  Tensor x = random_tensor(Shape{1, 1, 4, 4}, 5);
  x.data<float>()[5] = std::nanf("");
  GraphBuilder b;
  b.input("x", DType::kFloat32, {1, 1, 4, 4});
  b.node("MaxPool", {"x"}, {"y"}).attrs["kernel_shape"] = ints_attr({2, 2});
  Graph g = b.output("y").build();
  auto want = run_cpu(g, {x});
  ASSERT_EQ(want.size(), 1u);
  auto geo = geo_of(g.nodes[0], x.shape(), false, false);
  ASSERT_TRUE(geo.ok());
  std::vector<float> got(9);
  for (int64_t i = 0; i < 9; ++i) got[i] = pool_nchw<true>(geo.value(), x.data<float>(), i);
  expect_pooled(got, want[0], true, "MaxPool with a NaN");
  EXPECT_TRUE(std::isnan(got[0]) && std::isnan(got[4]) && !std::isnan(got[8]));
  EXPECT_TRUE(std::isnan(replay_global<true>(x.data<float>(), 16)));
}

TEST(Pool, WindowTapsMatchTheCpuRule) {
  // Dilation 2, kernel 3 starting at -3 over 5 inputs: taps at -3, -1, 1 -> only kk = 2 lands.
  int64_t lo, hi;
  window_taps(-3, 2, 3, 5, &lo, &hi);
  EXPECT_EQ(lo, 2);
  EXPECT_EQ(hi, 3);
  window_taps(4, 1, 3, 5, &lo, &hi);  // ceil_mode overhang: one tap inside
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 1);
  window_taps(-4, 1, 2, 5, &lo, &hi);  // wholly in the padding
  EXPECT_EQ(lo, hi);
  EXPECT_EQ(window_padded_taps(4, 1, 3, 5, 1), 2);  // the overhang past the end padding does not count
}

// ------------------------------------------------------------------- kernels and refusals

Graph pool_node(const char* op, DType dt, bool indices = false) {
  GraphBuilder b;
  b.input("x", dt, {1, 2, 5, 5});
  std::vector<std::string> outs = {"y"};
  if (indices) outs.push_back("i");
  Node& n = b.node(op, {"x"}, outs);
  const std::string o = op;
  if (o.find("Global") == std::string::npos) n.attrs["kernel_shape"] = ints_attr({2, 2});
  if (o.rfind("Nhwc", 0) == 0) {
    n.domain = "com.mserve";
    n.opset = 1;
  }
  Graph g = b.output("y").build();
  g.opsets["com.mserve"] = 1;
  return g;
}

TEST(Pool, KernelsAreCudaKernels) {
  for (const char* op :
       {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "NhwcMaxPool", "NhwcAveragePool"}) {
    Graph g = pool_node(op, DType::kFloat32);
    KernelInit init(g);
    auto k = CudaBackend().create_kernel(g.nodes[0], init);
    ASSERT_TRUE(k.ok()) << op << ": " << k.status().message();
    ASSERT_TRUE(k.value()) << op;
    EXPECT_EQ(k.value()->device(), DeviceType::kCuda) << op;
    EXPECT_FALSE(k.value()->host_input(0)) << op;
    ValueInfo x{DType::kFloat32, Shape{1, 2, 5, 5}, nullptr};
    std::vector<const ValueInfo*> in{&x};
    InferContext ctx(g.nodes[0], in, 1);
    EXPECT_TRUE(k.value()->infer(ctx).ok()) << op;
  }
}

TEST(Pool, RefusesOtherDtypesAndIndices) {
  for (const char* op : {"MaxPool", "AveragePool", "GlobalMaxPool", "NhwcMaxPool"}) {
    for (DType dt : {DType::kFloat64, DType::kFloat16}) {
      Graph g = pool_node(op, dt);
      KernelInit init(g);
      auto k = CudaBackend().create_kernel(g.nodes[0], init);
      ASSERT_TRUE(k.ok() && k.value()) << op;
      ValueInfo x{dt, Shape{1, 2, 5, 5}, nullptr};
      std::vector<const ValueInfo*> in{&x};
      InferContext ctx(g.nodes[0], in, 1);
      const Status st = k.value()->infer(ctx);
      EXPECT_EQ(st.code(), Code::kUnsupported) << op << " " << dtype_name(dt) << ": " << st.message();
    }
  }
  Graph g = pool_node("MaxPool", DType::kFloat32, true);
  KernelInit init(g);
  auto k = CudaBackend().create_kernel(g.nodes[0], init);
  EXPECT_EQ(k.status().code(), Code::kUnsupported);
  EXPECT_NE(k.status().message().find("Indices"), std::string::npos) << k.status().message();
}

}  // namespace
}  // namespace mserve::gpu
