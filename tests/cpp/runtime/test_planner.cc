#include <atomic>
#include <new>

#include "core/parallel/thread_pool.h"
#include "core/plan/plan.h"
#include "helpers.h"

// Counts every operator-new in this binary, to show repeated runs don't allocate per
// intermediate.
static std::atomic<long> g_news{0};
void* operator new(size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// Every form that pairs with the plain delete allocates with malloc too (a sanitizer build
// would otherwise see its own nothrow/array allocations freed here).
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  g_news.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace mserve::testing {

// x -> Relu -> Sigmoid -> Relu -> ... (n nodes) -> y
static Graph chain(int n) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {-1, 64});
  std::string prev = "x";
  for (int i = 0; i < n; ++i) {
    std::string out = i + 1 == n ? "y" : "t" + std::to_string(i);
    b.node(i % 2 ? "Sigmoid" : "Relu", {prev}, {out});
    prev = out;
  }
  return b.output("y").build();
}

TEST(Planner, ReusesArenaByLiveness) {
  Program p;
  p.graph = chain(10);
  p.order = topological_order(p.graph).value();
  ASSERT_TRUE(create_kernels(p).ok());
  ThreadPool pool(1);
  auto plan = make_plan(p, {ValueInfo{DType::kFloat32, Shape{8, 64}, nullptr}}, pool).value();
  // 9 intermediates of 2 KiB each; a chain needs only two live at once.
  EXPECT_EQ(plan->arena_bytes, 2u * 8 * 64 * 4);
  EXPECT_EQ(plan->steps.size(), 10u);
}

TEST(Planner, ViewsShareTheirSourceMemory) {
  // x -> Relu -> Reshape -> Flatten -> Relu -> y: the two views are the first Relu's memory.
  GraphBuilder b;
  b.input("x", DType::kFloat32, {8, 64});
  b.constant("shape", Tensor::from<int64_t>(Shape{3}, {8, 8, 8}));
  b.node("Relu", {"x"}, {"a"});
  b.node("Reshape", {"a", "shape"}, {"r"});
  b.node("Flatten", {"r"}, {"f"});
  b.node("Relu", {"f"}, {"y"});
  Program p;
  p.graph = b.output("y").build();
  p.order = topological_order(p.graph).value();
  ASSERT_TRUE(create_kernels(p).ok());
  ThreadPool pool(1);
  auto plan = make_plan(p, {ValueInfo{DType::kFloat32, Shape{8, 64}, nullptr}}, pool).value();
  const int a = p.graph.find_value("a"), r = p.graph.find_value("r"), f = p.graph.find_value("f");
  EXPECT_EQ(plan->values[r].storage, Storage::kArena);
  EXPECT_EQ(plan->values[r].offset, plan->values[a].offset);
  EXPECT_EQ(plan->values[f].offset, plan->values[a].offset);
  EXPECT_EQ(plan->arena_bytes, 8u * 64 * 4);  // one block for the three
}

TEST(Planner, RepeatedShapesAllocateNothingPerIntermediate) {
  auto count = [](int nodes) {
    SessionOptions o;
    o.threads = 1;
    auto s = Session::create(chain(nodes), o).value();
    std::vector<Tensor> in{random_tensor(Shape{4, 64}, 1)}, out;
    EXPECT_TRUE(s->run(in, &out).ok());  // plans and creates the run context
    long before = g_news.load();
    EXPECT_TRUE(s->run(in, &out).ok());
    return g_news.load() - before;
  };
  long small = count(3), large = count(30);
  EXPECT_EQ(small, large) << "allocations grow with the number of intermediates";
  EXPECT_LE(large, 4);  // the output buffer and its bookkeeping
}

// The oneDNN-backed kernels (NhwcConv, Conv, MatMul, Gemm with constant weights) keep their
// primitives and memory objects, so a repeated call allocates only what oneDNN's execute does
// inside (its argument map: 6 blocks per primitive call, measured with Debian's oneDNN 2.6),
// the same number every call.
TEST(Planner, RepeatedShapesAllocateNothingInOneDnnKernels) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {-1, 8, 16, 16});
  b.input("m", DType::kFloat32, {-1, 128});
  b.constant("w1", random_tensor(Shape{16, 8, 3, 3}, 1)).constant("b1", random_tensor(Shape{16}, 2));
  b.constant("w2", random_tensor(Shape{16, 1, 3, 3}, 3));
  b.constant("B", random_tensor(Shape{128, 256}, 4)).constant("B2", random_tensor(Shape{64, 256}, 5));
  b.constant("C2", random_tensor(Shape{64}, 6));
  b.node("Conv", {"x", "w1", "b1"}, {"c1"}).attrs["pads"] = ints_attr({1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"});
  Node& dw = b.node("Conv", {"r1", "w2"}, {"y"});
  dw.attrs["pads"] = ints_attr({1, 1, 1, 1});
  dw.attrs["group"] = int_attr(16);
  b.node("MatMul", {"m", "B"}, {"mm"});
  b.node("Gemm", {"mm", "B2", "C2"}, {"z"}).attrs["transB"] = int_attr(1);
  b.output("y").output("z");
  for (int threads : {1, 2}) {
    for (bool optimize : {true, false}) {  // NhwcConv, or Conv with its reorders
      SessionOptions o;
      o.threads = threads;
      o.optimize = optimize;
      auto s = Session::create(b.build(), o).value();
      std::vector<Tensor> in{random_tensor(Shape{2, 8, 16, 16}, 7), random_tensor(Shape{64, 128}, 8)}, out;
      ASSERT_TRUE(s->run(in, &out).ok());
      ASSERT_TRUE(s->run(in, &out).ok());
      long counts[3];
      for (long& c : counts) {
        const long before = g_news.load();
        ASSERT_TRUE(s->run(in, &out).ok());
        c = g_news.load() - before;
      }
      // Primitive calls: 2 convs (each with 2 reorders when not channels-last) + 2 products.
      const long executes = optimize ? 4 : 8;
      EXPECT_EQ(counts[0], counts[1]);
      EXPECT_EQ(counts[1], counts[2]);
      // 6 per call measured on AVX-512; other oneDNN implementations (other CPUs) may differ a
      // little, the point is a small constant per primitive call.
      EXPECT_LE(counts[0], 4 + 12 * executes) << "threads " << threads << ", optimize " << optimize;
    }
  }
}

TEST(Planner, ArenasFollowRunsNotCachedShapes) {
  // 16 batch sizes through a 4-plan cache, five times over: every call re-plans, but scratch
  // arenas are reused, so none is allocated after the first pass (memory stays flat).
  SessionOptions o;
  o.threads = 1;
  o.plan_cache_size = 4;
  auto s = Session::create(chain(5), o).value();
  size_t after_first = 0;
  for (int pass = 0; pass < 5; ++pass) {
    for (int n = 1; n <= 16; ++n) {
      std::vector<Tensor> in{random_tensor(Shape{n, 64}, n)}, out;
      ASSERT_TRUE(s->run(in, &out).ok());
    }
    if (pass == 0) after_first = s->arena_allocations();
  }
  EXPECT_LE(after_first, 16u);
  EXPECT_EQ(s->arena_allocations(), after_first);
}

TEST(Planner, PlanCacheIsBounded) {
  SessionOptions o;
  o.threads = 1;
  o.plan_cache_size = 4;
  auto s = Session::create(chain(3), o).value();
  for (int n = 1; n <= 20; ++n) {
    std::vector<Tensor> in{random_tensor(Shape{n, 64}, n)}, out;
    ASSERT_TRUE(s->run(in, &out).ok());
    ASSERT_EQ(out[0].dim(0), n);
  }
  EXPECT_EQ(s->cached_plans(), 4u);
}

TEST(Planner, FoldsShapeArithmetic) {
  // Reshape(x, Shape(x)) is planned with the shape folded to a constant.
  GraphBuilder b;
  b.input("x", DType::kFloat32, {-1, 6});
  b.node("Shape", {"x"}, {"s"});
  b.node("Relu", {"x"}, {"r"});
  b.node("Reshape", {"r", "s"}, {"y"});
  b.output("y");
  Program p;
  p.graph = b.build();
  p.order = topological_order(p.graph).value();
  ASSERT_TRUE(create_kernels(p).ok());
  ThreadPool pool(1);
  auto plan = make_plan(p, {ValueInfo{DType::kFloat32, Shape{2, 6}, nullptr}}, pool).value();
  EXPECT_EQ(plan->steps.size(), 2u);  // Shape was folded
  EXPECT_EQ(plan->folded.size(), 1u);
  for (const Step& s : plan->steps) EXPECT_FALSE(s.dynamic);
}

TEST(Planner, DetectsCycles) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {2});
  b.node("Add", {"x", "b"}, {"a"});
  b.node("Relu", {"a"}, {"b"});
  b.output("a");
  EXPECT_FALSE(topological_order(b.build()).ok());
}

TEST(Planner, ReportsEveryUnsupportedNode) {
  GraphBuilder b;
  b.input("x", DType::kFloat32, {2});
  b.node("Frobnicate", {"x"}, {"a"});
  b.node("Relu", {"a"}, {"r"});
  b.node("Zorch", {"r"}, {"y"});
  b.output("y");
  auto s = Session::create(b.build(), SessionOptions{});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnsupported);
  EXPECT_NE(s.status().message().find("Frobnicate"), std::string::npos);
  EXPECT_NE(s.status().message().find("Zorch"), std::string::npos);
  EXPECT_NE(s.status().message().find("2 unsupported"), std::string::npos);
}

TEST(Session, ReleasesWeightsItsKernelsPacked) {
  // W1 (512 x 256) is big enough that oneDNN takes every row count: held only packed. W2 (256 x 8)
  // stays (the Eigen path reads it for small products), and so does W3, also read by a Mul.
  GraphBuilder b;
  b.input("x", DType::kFloat32, {-1, 512});
  b.input("k", DType::kFloat32, {});
  b.constant("W1", random_tensor(Shape{512, 256}, 1));
  b.constant("W2", random_tensor(Shape{256, 8}, 2));
  b.constant("W3", random_tensor(Shape{256, 512}, 3));
  b.node("MatMul", {"x", "W1"}, {"h"});
  b.node("MatMul", {"h", "W2"}, {"y"});
  b.node("MatMul", {"h", "W3"}, {"z"});
  b.node("Mul", {"W3", "k"}, {"w"});
  b.output("y").output("z").output("w");
  const Graph g = b.build();
  auto s = Session::create(g, SessionOptions{}).value();
  const Graph& sg = s->graph();
  EXPECT_EQ(sg.initializers.at(sg.find_value("W1")).raw(), nullptr);
  EXPECT_NE(sg.initializers.at(sg.find_value("W2")).raw(), nullptr);
  EXPECT_NE(sg.initializers.at(sg.find_value("W3")).raw(), nullptr);
  // Still right for every row count (1 row: a product oneDNN refuses for small weights).
  SessionOptions plain;
  plain.optimize = false;
  Graph g2 = g;
  for (auto& [v, t] : g2.initializers) t = t.clone().value();  // an independent copy of the weights
  auto ref = Session::create(std::move(g2), plain).value();
  for (int64_t rows : {1, 3, 70}) {
    std::vector<Tensor> in{random_tensor(Shape{rows, 512}, 9), Tensor::from<float>(Shape{}, {2.0f})}, out, want;
    Status st = s->run(in, &out);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_TRUE(ref->run(in, &want).ok());
    for (size_t o = 0; o < want.size(); ++o)
      for (int64_t i = 0; i < want[o].numel(); ++i) {
        const float w = want[o].data<float>()[i];
        ASSERT_NEAR(out[o].data<float>()[i], w, 1e-3 * (1 + std::abs(w))) << "output " << o << " rows " << rows;
      }
  }
}

TEST(Session, ValidatesInputs) {
  auto s = Session::create(chain(2), SessionOptions{}).value();
  std::vector<Tensor> out;
  auto wrong_dtype = Tensor::empty(DType::kFloat64, Shape{2, 64}).value();
  Status st = s->run({wrong_dtype}, &out);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("expected dtype float32, got float64"), std::string::npos) << st.message();
  st = s->run({random_tensor(Shape{2, 63}, 1)}, &out);
  EXPECT_NE(st.message().find("dimension 1 must be 64, got 63"), std::string::npos) << st.message();
  st = s->run({random_tensor(Shape{64}, 1)}, &out);
  EXPECT_NE(st.message().find("expected rank 2"), std::string::npos) << st.message();
  st = s->run({}, &out);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
}

}  // namespace mserve::testing
