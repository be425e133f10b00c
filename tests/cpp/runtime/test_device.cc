// Device placement on the mock device: which node runs where, the copies the planner inserts,
// the two arenas, constant uploads and fallback. The mock's kernels are the CPU's, so every
// result must equal the CPU-only session's bit for bit.
#include <thread>

#include "core/device/mock.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"
#include "helpers.h"

namespace mserve::testing {
namespace {

std::shared_ptr<Session> session_on(const Graph& g, std::shared_ptr<const Backend> backend) {
  SessionOptions o;
  o.threads = 2;
  o.backend = std::move(backend);
  auto s = Session::create(g, o);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? s.value() : nullptr;
}

void expect_same(const std::vector<Tensor>& got, const std::vector<Tensor>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(got[i].on_host()) << "output " << i << " was handed back on " << device_name(got[i].device());
    ASSERT_EQ(got[i].shape(), want[i].shape());
    ASSERT_EQ(got[i].dtype(), want[i].dtype());
    EXPECT_EQ(std::memcmp(got[i].raw(), want[i].raw(), want[i].nbytes()), 0) << "output " << i;
  }
}

// x[4, 8] -> MatMul(W) -> Add(b) -> Relu -> Sigmoid -> y
Graph mlp() {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {-1, 8});
  b.constant("W", random_tensor(Shape{8, 16}, 7));
  b.constant("b", random_tensor(Shape{16}, 8));
  b.node("MatMul", {"x", "W"}, {"h"});
  b.node("Add", {"h", "b"}, {"a"});
  b.node("Relu", {"a"}, {"r"});
  b.node("Sigmoid", {"r"}, {"y"});
  return b.output("y").build();
}

std::vector<Tensor> run_on(Session& s, const std::vector<Tensor>& in) {
  std::vector<Tensor> out;
  Status st = s.run(in, &out);
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

TEST(MockDevice, RunsEveryNodeItHasAndCopiesOnlyAtTheEdges) {
  auto mock = std::make_shared<MockBackend>();
  auto dev = session_on(mlp(), mock);
  auto cpu = session_on(mlp(), nullptr);
  ASSERT_TRUE(dev && cpu);
  std::vector<Tensor> in{random_tensor(Shape{4, 8}, 1)};
  const auto want = run_on(*cpu, in);
  expect_same(run_on(*dev, in), want);
  auto p = dev->placement();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->device, "mock");
  EXPECT_EQ(p->cpu_nodes, 0);
  EXPECT_TRUE(p->fallbacks.empty());
  EXPECT_GE(p->device_nodes, 2);  // the passes may fuse MatMul+Add and Relu, but not all four
  EXPECT_EQ(p->copies, 2);        // x in, y out
  EXPECT_EQ(p->uploads, 2);       // W and b (or their fused forms)
  // Per run: one copy each way, one wait for the device, one kernel per node.
  const auto& c = mock->counters();
  const int64_t to_device = c.to_device, to_host = c.to_host, syncs = c.syncs, kernels = c.kernels;
  expect_same(run_on(*dev, in), want);
  EXPECT_EQ(c.to_device - to_device, 1);
  EXPECT_EQ(c.to_host - to_host, 1);
  EXPECT_EQ(c.syncs - syncs, 1);
  EXPECT_EQ(c.kernels - kernels, p->device_nodes);
}

TEST(MockDevice, FallsBackNodeByNodeWithCopiesBothWays) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {3, 5});
  b.node("Relu", {"x"}, {"a"});
  b.node("Sigmoid", {"a"}, {"s"});
  b.node("Neg", {"s"}, {"y"});
  Graph g = b.output("y").build();
  auto mock = std::make_shared<MockBackend>(MockDeviceOptions{{"Relu", "Neg"}, {}});
  auto dev = session_on(g, mock);
  ASSERT_TRUE(dev);
  std::vector<Tensor> in{random_tensor(Shape{3, 5}, 2)};
  expect_same(run_on(*dev, in), run_on(*session_on(g, nullptr), in));
  auto p = dev->placement();
  EXPECT_EQ(p->device_nodes, 2);
  EXPECT_EQ(p->cpu_nodes, 1);
  ASSERT_EQ(p->fallbacks.size(), 1u);
  EXPECT_EQ(p->fallbacks[0].op, "Sigmoid");
  EXPECT_EQ(p->fallbacks[0].reason, "no mock kernel for Sigmoid");
  // x up, a down (waited for: Sigmoid reads it on the host), s up, y down.
  EXPECT_EQ(p->copies, 4);
  const auto& c = mock->counters();
  const int64_t syncs = c.syncs;
  run_on(*dev, in);
  EXPECT_EQ(c.syncs - syncs, 2);  // before Sigmoid, and at the end
}

TEST(MockDevice, AKernelMayRefuseShapesAtPlanTime) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {2, 2});
  b.node("Relu", {"x"}, {"a"});
  b.node("Sigmoid", {"a"}, {"y"});
  Graph g = b.output("y").build();
  auto dev = session_on(g, std::make_shared<MockBackend>(MockDeviceOptions{{}, {"Sigmoid"}}));
  std::vector<Tensor> in{random_tensor(Shape{2, 2}, 3)};
  expect_same(run_on(*dev, in), run_on(*session_on(g, nullptr), in));
  auto p = dev->placement();
  ASSERT_EQ(p->fallbacks.size(), 1u);
  EXPECT_EQ(p->fallbacks[0].reason, "the mock device refuses Sigmoid");
}

TEST(MockDevice, ChainsLiveInTheDeviceArenaByLiveness) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {8, 64});
  std::string prev = "x";
  for (int i = 0; i < 10; ++i) {
    std::string out = i == 9 ? "y" : "t" + std::to_string(i);
    b.node(i % 2 ? "Sigmoid" : "Relu", {prev}, {out});
    prev = out;
  }
  Graph g = b.output("y").build();
  auto dev = session_on(g, std::make_shared<MockBackend>());
  std::vector<Tensor> in{random_tensor(Shape{8, 64}, 4)};
  expect_same(run_on(*dev, in), run_on(*session_on(g, nullptr), in));
  // Planned directly to read both arenas: nothing on the host but the copies' ends.
  Program p;
  p.graph = g;
  p.order = topological_order(p.graph).value();
  ASSERT_TRUE(create_kernels(p).ok());
  p.backend = std::make_shared<MockBackend>();
  ASSERT_TRUE(create_device_kernels(p).ok());
  ThreadPool pool(1);
  auto plan = make_plan(p, {ValueInfo{DType::kFloat32, Shape{8, 64}, nullptr}}, pool).value();
  const size_t block = 8 * 64 * 4;
  EXPECT_EQ(plan->arena_bytes, 0u);                // x is the caller's, y a fresh output
  EXPECT_EQ(plan->device_arena_bytes, 2 * block);  // x's copy and 10 results, two live at once
  ASSERT_EQ(plan->steps.size(), 12u);
  EXPECT_EQ(plan->steps.front().kind, StepKind::kToDevice);
  EXPECT_EQ(plan->steps.back().kind, StepKind::kToHost);
  EXPECT_FALSE(plan->steps.back().sync);  // the run's one wait comes after the last step
  for (size_t i = 1; i + 1 < plan->steps.size(); ++i) EXPECT_EQ(plan->steps[i].device, DeviceType::kMock);
}

TEST(MockDevice, UploadsEachConstantOncePerSession) {
  auto mock = std::make_shared<MockBackend>();
  auto dev = session_on(mlp(), mock);
  const int64_t after_load = mock->counters().uploads;  // the trial plan at load (batch 1)
  EXPECT_EQ(after_load, 2);
  for (int64_t batch : {1, 3, 7}) run_on(*dev, {random_tensor(Shape{batch, 8}, 5)});
  EXPECT_EQ(dev->cached_plans(), 3u);
  EXPECT_EQ(mock->counters().uploads, after_load);
}

TEST(MockDevice, AnOutputReadAgainOnTheDeviceIsCopiedOnce) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {4});
  b.node("Relu", {"x"}, {"y"});
  b.node("Neg", {"y"}, {"z"});
  b.node("Add", {"y", "z"}, {"w"});
  Graph g = b.output("y").output("z").output("w").build();
  auto dev = session_on(g, std::make_shared<MockBackend>());
  std::vector<Tensor> in{random_tensor(Shape{4}, 6)};
  expect_same(run_on(*dev, in), run_on(*session_on(g, nullptr), in));
  EXPECT_EQ(dev->placement()->copies, 4);  // x up; y, z, w down
}

TEST(MockDevice, ValueDependentShapesStayOnTheCpu) {
  // Reshape to a shape given at run time: its output shape is known only then.
  GraphBuilder b;
  b.input("x", DType::kFloat32, {2, 6});
  b.input("shape", DType::kInt64, {2});
  b.node("Relu", {"x"}, {"a"});
  b.node("Reshape", {"a", "shape"}, {"r"});
  b.node("Neg", {"r"}, {"y"});
  Graph g = b.output("y").build();
  auto dev = session_on(g, std::make_shared<MockBackend>());
  std::vector<Tensor> in{random_tensor(Shape{2, 6}, 7), Tensor::from<int64_t>(Shape{2}, {3, 4})};
  auto got = run_on(*dev, in);
  expect_same(got, run_on(*session_on(g, nullptr), in));
  EXPECT_EQ(got[0].shape(), (Shape{3, 4}));
  auto p = dev->placement();
  EXPECT_EQ(p->device_nodes, 1);  // Relu
  ASSERT_EQ(p->fallbacks.size(), 2u);
  EXPECT_EQ(p->fallbacks[0].reason, "shapes known only at run time");
}

TEST(MockDevice, ConcurrentRunsUseTheirOwnContexts) {
  auto mock = std::make_shared<MockBackend>();
  auto dev = session_on(mlp(), mock);
  auto cpu = session_on(mlp(), nullptr);
  std::vector<Tensor> in{random_tensor(Shape{5, 8}, 9)};
  const auto want = run_on(*cpu, in);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) expect_same(run_on(*dev, in), want);
    });
  for (auto& t : threads) t.join();
  EXPECT_GE(mock->counters().contexts, 1);
}

TEST(MockDevice, KernelsRejectInputsLeftOnTheHost) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {3});
  b.node("Relu", {"x"}, {"y"});
  Graph g = b.output("y").build();
  MockBackend mock;
  KernelInit init(g);
  auto k = mock.create_kernel(g.nodes[0], init).value();
  ASSERT_EQ(k->device(), DeviceType::kMock);
  auto ctx = mock.new_context().value();
  Tensor x = random_tensor(Shape{3}, 1), y = Tensor::empty(DType::kFloat32, Shape{3}).value();
  Tensor y_dev(DType::kFloat32, Shape{3}, y.raw(), DeviceType::kMock);
  const Tensor* in[] = {&x};
  Tensor* out[] = {&y_dev};
  ThreadPool pool(1);
  Status st = k->compute(ComputeContext(in, 1, out, 1, nullptr, &pool, ctx.get()));
  EXPECT_EQ(st.code(), Code::kInternal);
  EXPECT_NE(st.message().find("input 0 is on 'cpu', not on the mock device"), std::string::npos) << st.message();
  Tensor x_dev(DType::kFloat32, Shape{3}, x.raw(), DeviceType::kMock);
  EXPECT_FALSE(x_dev.clone().ok());  // host code may not read device bytes
}

TEST(MockDevice, StringsAndControlFlowStayOnTheCpu) {
  MockBackend mock;
  GraphBuilder b;
  b.input("x", DType::kString, {2});
  b.node("Identity", {"x"}, {"y"});
  Graph g = b.output("y").build();
  SessionOptions o;
  o.optimize = false;  // keep the Identity
  o.backend = std::make_shared<MockBackend>();
  auto s = Session::create(g, o);
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto p = s.value()->placement();
  ASSERT_TRUE(p);
  ASSERT_EQ(p->fallbacks.size(), 1u);
  EXPECT_NE(p->fallbacks[0].reason.find("string"), std::string::npos) << p->fallbacks[0].reason;
}

}  // namespace
}  // namespace mserve::testing

namespace mserve::testing {
namespace {

TEST(MockDevice, ParametersReadOnTheHostStayThere) {
  // Reshape's shape is a host input of the device's kernel: not uploaded, not copied; computed
  // on the device, it is copied back (and waited for) before the Reshape.
  GraphBuilder b;
  b.input("x", DType::kFloat32, {2, 6});
  b.constant("shape", Tensor::from<int64_t>(Shape{2}, {3, 4}));
  b.node("Relu", {"x"}, {"a"});
  b.node("Reshape", {"a", "shape"}, {"r"});
  b.node("Neg", {"r"}, {"y"});
  Graph g = b.output("y").build();
  auto mock = std::make_shared<MockBackend>();
  auto dev = session_on(g, mock);
  std::vector<Tensor> in{random_tensor(Shape{2, 6}, 7)};
  expect_same(run_on(*dev, in), run_on(*session_on(g, nullptr), in));
  auto p = dev->placement();
  EXPECT_EQ(p->device_nodes, 3);
  EXPECT_EQ(p->uploads, 0);
  EXPECT_EQ(p->copies, 2);
}

}  // namespace
}  // namespace mserve::testing

namespace mserve::testing {
namespace {

TEST(MockGraphs, RecordedOnTheSecondRunAndReplayedWithFreshInputs) {
  auto mock = std::make_shared<MockBackend>();
  auto dev = session_on(mlp(), mock);
  auto cpu = session_on(mlp(), nullptr);
  const auto& c = mock->counters();
  for (int run = 0; run < 5; ++run) {
    std::vector<Tensor> in{random_tensor(Shape{4, 8}, 100 + run)};  // new values every run
    expect_same(run_on(*dev, in), run_on(*cpu, in));
    EXPECT_EQ(c.captures, run >= 1 ? 1 : 0) << "run " << run;
    EXPECT_EQ(c.replays, run >= 2 ? run - 1 : 0) << "run " << run;
  }
  EXPECT_TRUE(dev->placement()->no_graph.empty()) << dev->placement()->no_graph;
}

TEST(MockGraphs, PlansWithCpuStepsOrMidRunCopiesRunStepByStep) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {3, 5});
  b.node("Relu", {"x"}, {"a"});
  b.node("Sigmoid", {"a"}, {"y"});
  Graph g = b.output("y").build();
  auto mock = std::make_shared<MockBackend>(MockDeviceOptions{{"Relu"}, {}});
  auto dev = session_on(g, mock);
  for (int run = 0; run < 3; ++run) {
    std::vector<Tensor> in{random_tensor(Shape{3, 5}, run)};
    expect_same(run_on(*dev, in), run_on(*session_on(g, nullptr), in));
  }
  EXPECT_EQ(mock->counters().captures, 0);
  // The first obstacle in step order: the copy back to the host that Sigmoid waits for.
  EXPECT_EQ(dev->placement()->no_graph, "a value crosses between host and device mid-run");
}

TEST(MockGraphs, OffWhenTheSessionSaysSo) {
  auto mock = std::make_shared<MockBackend>();
  SessionOptions o;
  o.backend = mock;
  o.graphs = false;
  auto dev = Session::create(mlp(), o).value();
  for (int run = 0; run < 3; ++run) run_on(*dev, {random_tensor(Shape{2, 8}, run)});
  EXPECT_EQ(mock->counters().captures, 0);
  EXPECT_EQ(mock->counters().replays, 0);
}

TEST(MockGraphs, OutputsThatAreInputsOrListedTwice) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {6});
  b.node("Neg", {"x"}, {"n"});
  Graph g = b.output("n").output("x").output("n").build();
  auto mock = std::make_shared<MockBackend>();
  auto dev = session_on(g, mock);
  for (int run = 0; run < 4; ++run) {
    std::vector<Tensor> in{random_tensor(Shape{6}, 40 + run)};
    auto got = run_on(*dev, in);
    expect_same(got, run_on(*session_on(g, nullptr), in));
    ASSERT_EQ(got.size(), 3u);
    EXPECT_NE(got[0].raw(), got[2].raw());  // each output its own buffer
  }
  EXPECT_EQ(mock->counters().captures, 1);
}

TEST(MockGraphs, ConcurrentRunsRecordOnePerContext) {
  auto mock = std::make_shared<MockBackend>();
  auto dev = session_on(mlp(), mock);
  auto cpu = session_on(mlp(), nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        std::vector<Tensor> in{random_tensor(Shape{3, 8}, 1000 * t + i)};
        std::vector<Tensor> got, want;
        if (!dev->run(in, &got).ok() || !cpu->run(in, &want).ok() ||
            std::memcmp(got[0].raw(), want[0].raw(), want[0].nbytes()) != 0)
          bad.fetch_add(1);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  // Every run of a context is its first (step by step), its recording or a replay: each context
  // records at most once, and no run is lost or doubled.
  const auto& c = mock->counters();
  EXPECT_GE(c.captures, 1);
  EXPECT_LE(c.captures, c.contexts);
  EXPECT_EQ(c.contexts + c.captures + c.replays, 4 * 40);
}

}  // namespace
}  // namespace mserve::testing

namespace mserve::testing {
namespace {

TEST(MockDevice, DeviceMemoryIsReportedAndAllReturned) {
  auto mock = std::make_shared<MockBackend>();
  {
    auto dev = session_on(mlp(), mock);
    for (int run = 0; run < 3; ++run) run_on(*dev, {random_tensor(Shape{4, 8}, run)});
    const auto m = mock->memory();
    ASSERT_TRUE(m);
    // W [8, 16] and b [16] uploaded, plus an arena and staging per context.
    EXPECT_GE(m->used, (8u * 16 + 16) * sizeof(float));
  }
  EXPECT_EQ(mock->memory()->used, 0u) << "device memory outlived the session";
}

}  // namespace
}  // namespace mserve::testing

namespace mserve::testing {
namespace {

TEST(MockDevice, OutputsStayOnTheDeviceAndFeedTheNextModel) {
  auto mock = std::make_shared<MockBackend>();
  auto a = session_on(mlp(), mock);  // x [n, 8] -> y [n, 16]
  GraphBuilder b;
  b.input("h", DType::kFloat32, {-1, 16});
  b.node("Neg", {"h"}, {"y"});
  Graph second = b.output("y").build();
  auto bdev = session_on(second, mock);
  std::vector<Tensor> in{random_tensor(Shape{3, 8}, 5)};
  // The CPU twin: both models on the host.
  auto mid = run_on(*session_on(mlp(), nullptr), in);
  auto want = run_on(*session_on(second, nullptr), mid);
  const auto& c = mock->counters();
  const int64_t up = c.to_device, down = c.to_host;
  RunOptions keep;
  keep.device_outputs = true;
  std::vector<Tensor> on_device;
  ASSERT_TRUE(a->run(in, &on_device, nullptr, keep).ok());
  ASSERT_EQ(on_device.size(), 1u);
  EXPECT_EQ(on_device[0].device(), DeviceType::kMock);
  EXPECT_EQ(on_device[0].shape(), (Shape{3, 16}));
  std::vector<Tensor> got;
  ASSERT_TRUE(bdev->run(on_device, &got).ok());  // read where it is: no copy in
  expect_same(got, want);
  EXPECT_EQ(c.to_device - up, 1);                  // x, once
  EXPECT_EQ(c.to_host - down, 1);                  // the second model's y, once
  EXPECT_FALSE(a->placement()->no_graph.empty());  // a per-call output buffer: not one graph
  // A device tensor given to a model without that device is refused, not read.
  std::vector<Tensor> ignored;
  Status st = session_on(second, nullptr)->run(on_device, &ignored);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("on device 'mock' given to a model on 'cpu'"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace mserve::testing
