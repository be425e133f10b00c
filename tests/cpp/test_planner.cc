#include <atomic>
#include <new>

#include "core/exec/thread_pool.h"
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
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

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
