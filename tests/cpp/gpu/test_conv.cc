// Conv / NhwcConv on the GPU without a GPU: cuDNN's descriptors agree with the CPU's output
// sizes, and the convolution cuDNN is asked for (NHWC data, the repacked [M, kh, kw, C/g]
// filter) followed by the epilogue arithmetic the device runs (conv_math.h, compiled here by g++)
// equals the CPU's NhwcConv with its fused bias, activation, residual and activation after.
#include <gtest/gtest.h>

#include <cmath>

#include "core/kernels/fused_activation.h"
#include "gpu/context.h"
#include "gpu/lib/dnn.h"
#include "gpu/ops/conv.h"
#include "helpers.h"

namespace mserve::gpu {
namespace {

using mserve::testing::GraphBuilder;
using mserve::testing::ints_attr;
using mserve::testing::random_tensor;

struct Case {
  int64_t n, c, h, w, m, kh, kw, stride, pad, dil, groups;
};

ConvSpec spec_of(const Case& k, bool nhwc) {
  ConvSpec s;
  s.nhwc = nhwc;
  s.n = k.n, s.c = k.c, s.h = k.h, s.w = k.w, s.m = k.m, s.kh = k.kh, s.kw = k.kw;
  s.pad_h = s.pad_w = k.pad;
  s.stride_h = s.stride_w = k.stride;
  s.dil_h = s.dil_w = k.dil;
  s.groups = k.groups;
  return s;
}

const Case kCases[] = {
    {1, 3, 224, 224, 64, 7, 7, 2, 3, 1, 1},  // ResNet's stem
    {2, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1},   // a basic block
    {1, 64, 56, 56, 128, 1, 1, 2, 0, 1, 1},  // a strided projection
    {1, 32, 17, 13, 32, 3, 3, 1, 1, 1, 32},  // depthwise, odd sizes
    {3, 8, 9, 11, 12, 3, 2, 2, 1, 2, 4},     // grouped, dilated, rectangular
};

TEST(Conv, CudnnDescriptorsAgreeWithTheCpuOutputSize) {
  for (const Case& k : kCases) {
    for (bool nhwc : {false, true}) {
      auto plan = ConvPlan::create(spec_of(k, nhwc));
      ASSERT_TRUE(plan.ok()) << plan.status().message();
      int64_t dims[4];
      ASSERT_TRUE(plan.value()->output_dims(dims).ok());
      const int64_t eh = (k.h + 2 * k.pad - (k.kh - 1) * k.dil - 1) / k.stride + 1;
      const int64_t ew = (k.w + 2 * k.pad - (k.kw - 1) * k.dil - 1) / k.stride + 1;
      EXPECT_EQ(dims[0], k.n);
      EXPECT_EQ(dims[1], k.m);
      EXPECT_EQ(dims[2], eh) << plan.value()->spec().str();
      EXPECT_EQ(dims[3], ew) << plan.value()->spec().str();
    }
  }
  ConvSpec bad = spec_of(kCases[3], true);
  bad.groups = 5;  // 32 channels do not split into 5 groups
  EXPECT_EQ(ConvPlan::create(bad).status().code(), Code::kInvalidArgument);
}

// cuDNN's NHWC convolution with the repacked filter, evaluated on the host in double, then the
// device's epilogue; compared with the CPU runtime's NhwcConv node.
TEST(Conv, NhwcConvWithItsFusedEpilogueMatchesTheCpu) {
  for (const Case& k : {Case{2, 6, 9, 7, 8, 3, 3, 2, 1, 1, 2}, Case{1, 4, 5, 5, 4, 3, 3, 1, 1, 2, 4}}) {
    const int64_t Cg = k.c / k.groups, Mg = k.m / k.groups;
    const int64_t oh = (k.h + 2 * k.pad - (k.kh - 1) * k.dil - 1) / k.stride + 1;
    const int64_t ow = (k.w + 2 * k.pad - (k.kw - 1) * k.dil - 1) / k.stride + 1;
    Tensor x = random_tensor(Shape{k.n, k.h, k.w, k.c}, 1);
    Tensor w = random_tensor(Shape{k.m, Cg, k.kh, k.kw}, 2);
    Tensor b = random_tensor(Shape{k.m}, 3);
    Tensor r = random_tensor(Shape{k.n, oh, ow, k.m}, 4);
    GraphBuilder gb;
    gb.input("x", DType::kFloat32, {k.n, k.h, k.w, k.c});
    gb.input("r", DType::kFloat32, {k.n, oh, ow, k.m});
    gb.constant("w", w).constant("b", b);
    Node& node = gb.node("NhwcConv", {"x", "w", "b", "r"}, {"y"});
    node.domain = "com.mserve";
    node.opset = 1;
    node.attrs["strides"] = ints_attr({k.stride, k.stride});
    node.attrs["pads"] = ints_attr({k.pad, k.pad, k.pad, k.pad});
    node.attrs["dilations"] = ints_attr({k.dil, k.dil});
    node.attrs["group"] = mserve::testing::int_attr(k.groups);
    FusedActivation act = FusedActivation::named("LeakyRelu");
    act.alpha = 0.1f;
    act.write(node);
    FusedActivation::write_residual(node);
    FusedActivation::named("Relu").write(node, FusedActivation::kAfterActivationAttr);
    Graph g = gb.output("y").build();
    g.opsets["com.mserve"] = 1;
    auto want = mserve::testing::run_graph(g, {x, r}, 1, false);
    ASSERT_EQ(want.size(), 1u);

    const std::vector<float> f = nhwc_filter(w.data<float>(), k.m, Cg, k.kh, k.kw);
    ConvEpilogue e;
    e.bias = b.data<float>();
    e.residual = r.data<float>();
    e.channels = k.m;
    e.plane = 0;
    e.act = act.kind, e.act_a = act.alpha, e.act_b = act.beta;
    e.after = FusedActivation::Kind::kRelu;
    const float* xp = x.data<float>();
    for (int64_t n = 0; n < k.n; ++n)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j)
          for (int64_t m = 0; m < k.m; ++m) {
            const int64_t grp = m / Mg;
            double s = 0;
            for (int64_t a = 0; a < k.kh; ++a)
              for (int64_t bb = 0; bb < k.kw; ++bb) {
                const int64_t hi = i * k.stride - k.pad + a * k.dil, wi = j * k.stride - k.pad + bb * k.dil;
                if (hi < 0 || hi >= k.h || wi < 0 || wi >= k.w) continue;
                for (int64_t c = 0; c < Cg; ++c)
                  s += double(xp[((n * k.h + hi) * k.w + wi) * k.c + grp * Cg + c]) *
                       f[((m * k.kh + a) * k.kw + bb) * Cg + c];
              }
            const int64_t idx = ((n * oh + i) * ow + j) * k.m + m;
            const float got = conv_epilogue(e, idx, static_cast<float>(s));
            ASSERT_NEAR(got, want[0].data<float>()[idx], 1e-5f * (1 + std::fabs(got))) << "at " << idx;
          }
  }
}

TEST(Conv, KernelsAreCreatedAndRefuseWhatTheGpuDoesNotRun) {
  GraphBuilder gb;
  gb.input("x", DType::kFloat32, {1, 2, 5, 5, 5});
  gb.constant("w", random_tensor(Shape{3, 2, 3, 3, 3}, 1));
  gb.node("Conv", {"x", "w"}, {"y"});
  Graph g = gb.output("y").build();
  KernelInit init(g);
  auto k = CudaBackend().create_kernel(g.nodes[0], init).value();
  ASSERT_TRUE(k);
  EXPECT_EQ(k->device(), DeviceType::kCuda);
  EXPECT_FALSE(k->host_input(1));  // Conv's W is the planner's upload
  ValueInfo x{DType::kFloat32, Shape{1, 2, 5, 5, 5}, nullptr}, w{DType::kFloat32, Shape{3, 2, 3, 3, 3}, nullptr};
  std::vector<const ValueInfo*> in{&x, &w};
  InferContext ctx(g.nodes[0], in, 1);
  Status st = k->infer(ctx);
  EXPECT_EQ(st.code(), Code::kUnsupported);
  EXPECT_NE(st.message().find("3-D"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace mserve::gpu
