// The CUDA backend's kernel table and its behaviour on a machine without a GPU.
#include <gtest/gtest.h>

#include <set>

#include "core/kernels/registry.h"
#include "gpu/context.h"
#include "gpu/kernel_table.h"
#include "helpers.h"

namespace mserve::gpu {
namespace {

using mserve::testing::GraphBuilder;

TEST(GpuTable, EveryRowNamesAnOpTheCpuRuns) {
  std::set<std::pair<std::string, std::string>> cpu;
  for (const OpInfo& op : all_ops()) cpu.emplace(op.domain, op.name);
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& row : gpu_ops()) {
    EXPECT_TRUE(cpu.count(row)) << row.first << "::" << row.second << " has no CPU kernel (shapes come from it)";
    EXPECT_TRUE(seen.insert(row).second) << row.second << " is listed twice";
  }
  EXPECT_GE(gpu_ops().size(), 15u);
}

TEST(GpuTable, KernelsAreCudaKernelsAroundTheCpuOnes) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {4});
  b.node("Relu", {"x"}, {"r"});
  b.node("Einsum", {"r"}, {"y"}).attrs["equation"] = mserve::testing::string_attr("i->i");
  Graph g = b.output("y").build();
  KernelInit init(g);
  CudaBackend cuda;
  auto relu = cuda.create_kernel(g.nodes[0], init);
  ASSERT_TRUE(relu.ok()) << relu.status().message();
  ASSERT_TRUE(relu.value());
  EXPECT_EQ(relu.value()->device(), DeviceType::kCuda);
  auto einsum = cuda.create_kernel(g.nodes[1], init);
  ASSERT_TRUE(einsum.ok());
  EXPECT_FALSE(einsum.value()) << "no CUDA Einsum yet: the node stays on the CPU";
}

TEST(GpuTable, Float32OnlyKernelsRefuseOtherDtypesAtPlanTime) {
  GraphBuilder b;
  b.input("x", DType::kFloat64, {4});
  b.node("Relu", {"x"}, {"y"});
  Graph g = b.output("y").build();
  KernelInit init(g);
  auto k = CudaBackend().create_kernel(g.nodes[0], init).value();
  ValueInfo x{DType::kFloat64, Shape{4}, nullptr};
  std::vector<const ValueInfo*> in{&x};
  InferContext ctx(g.nodes[0], in, 1);
  Status st = k->infer(ctx);
  EXPECT_EQ(st.code(), Code::kUnsupported);
  EXPECT_NE(st.message().find("float32"), std::string::npos) << st.message();
}

// Without a GPU every CUDA call fails; the backend must say so as a Status.
TEST(GpuBackend, NoDeviceIsAnErrorNotACrash) {
  auto ctx = CudaBackend().new_context();
  if (ctx.ok()) GTEST_SKIP() << "a GPU is present";
  EXPECT_FALSE(ctx.status().message().empty());
  EXPECT_EQ(CudaBackend().allocate(1024), nullptr);
}

}  // namespace
}  // namespace mserve::gpu
