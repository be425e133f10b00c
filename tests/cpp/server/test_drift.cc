// Drift monitoring (server/monitor/drift.h): the profile file and its checks against a signature,
// PSI and binned KS against a naive double-precision computation, and DriftMonitor's window,
// selectors, counters and drifting flag on a clock the test moves. Served end to end in
// tests/python/test_monitoring.py.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "server/monitor/drift.h"

namespace mserve::server {
namespace {

Signature signature() {
  Signature sig;
  auto value = [](const char* name, DType t, std::vector<int64_t> dims) {
    Value v;
    v.name = name;
    v.dtype = t;
    v.has_shape = true;
    for (int64_t d : dims) v.dims.push_back(d < 0 ? Dim{-1, "batch"} : Dim{d, ""});
    return v;
  };
  sig.inputs = {value("x", DType::kFloat32, {-1, 3}), value("img", DType::kFloat32, {-1, 2, 2, 3}),
                value("s", DType::kString, {-1})};
  sig.outputs = {value("probs", DType::kFloat32, {-1, 3})};
  return sig;
}

// x[1]: deciles of N(0, 1) would be the usual; here four bins at -1, 0, 1.
const char* kProfile = R"({"mserve_profile": 1, "rows": 1000, "features": [
  {"name": "x[1]", "tensor": "x", "select": "column", "index": 1, "kind": "numeric",
   "edges": [-1, 0, 1], "fractions": [0.16, 0.34, 0.34, 0.16], "min": -3.5, "max": 3.5, "nan": 0},
  {"name": "img[c=2]", "tensor": "img", "select": "channel", "axis": 3, "index": 2, "kind": "numeric",
   "edges": [0.5], "fractions": [0.5, 0.5], "min": 0, "max": 1},
  {"name": "s", "tensor": "s", "kind": "categorical", "values": ["red", "blue"], "fractions": [0.5, 0.5, 0]},
  {"name": "class", "tensor": "probs", "io": "output", "select": "argmax", "kind": "categorical",
   "values": [0, 1, 2], "fractions": [0.6, 0.3, 0.1, 0]}]})";

TEST(Profile, ParsesAndChecksAgainstTheSignature) {
  auto p = parse_profile(kProfile, signature());
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_EQ(p.value().features.size(), 4u);
  const ProfileFeature& img = p.value().features[1];
  EXPECT_EQ(img.select, ProfileFeature::Select::kChannel);
  EXPECT_EQ(img.tensor_index, 1u);
  EXPECT_EQ(p.value().features[2].strings, (std::vector<std::string>{"red", "blue"}));
  EXPECT_TRUE(p.value().features[3].output);
  EXPECT_EQ(p.value().features[3].integers, (std::vector<int64_t>{0, 1, 2}));

  auto one = [](const std::string& feature) { return R"({"mserve_profile": 1, "features": [)" + feature + "]}"; };
  const std::pair<std::string, const char*> bad[] = {
      {"[]", "not a JSON object"},
      {R"({"mserve_profile": 2, "features": []})", "must be 1"},
      {one(R"({"name": "a", "tensor": "nope", "edges": [], "fractions": [1]})"), "the model has no input 'nope'"},
      {one(R"({"name": "a", "tensor": "x", "edges": [1, 1], "fractions": [0.3, 0.3, 0.4]})"), "strictly increasing"},
      {one(R"({"name": "a", "tensor": "x", "edges": [1], "fractions": [1]})"), "1 edges make 2 bins, 1 fractions"},
      {one(R"({"name": "a", "tensor": "x", "edges": [], "fractions": [1.5]})"), "fractions lie in 0..1"},
      {one(R"({"name": "a", "tensor": "x", "select": "channel", "axis": 2, "edges": [], "fractions": [1]})"),
       "must name a dimension"},
      {one(R"({"name": "a", "tensor": "s", "edges": [], "fractions": [1]})"), "a numeric feature reads numbers"},
      {one(R"({"name": "a", "tensor": "s", "kind": "categorical", "values": [1], "fractions": [1, 0]})"),
       "must be strings"},
      {one(R"({"name": "a", "tensor": "x", "select": "middle", "edges": [], "fractions": [1]})"), "\"select\" is"},
      {one(R"({"name": "a", "tensor": "x", "io": "output", "edges": [], "fractions": [1]})"), "no output 'x'"},
      {one(R"({"name": "a", "tensor": "x", "edges": [], "fractions": [1], "min": 2, "max": 1})"), "min must not"},
      {one(R"({"tensor": "x"})"), "\"name\" must be a string"},
  };
  for (const auto& [text, want] : bad) {
    auto r = parse_profile(text, signature());
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(want), std::string::npos) << text << " -> " << r.status().message();
  }
}

TEST(Profile, PsiAndKsMatchANaiveComputation) {
  const std::vector<double> q = {0.1, 0.2, 0.3, 0.4, 0.0};
  const uint64_t counts[] = {30, 30, 20, 20, 0};
  double naive = 0, P = 0, Q = 0, ks = 0;
  for (int i = 0; i < 5; ++i) {
    const double p = std::max(counts[i] / 100.0, 1e-4), r = std::max(q[i], 1e-4);
    naive += (p - r) * std::log(p / r);
    P += counts[i] / 100.0;
    Q += q[i];
    ks = std::max(ks, std::fabs(P - Q));
  }
  EXPECT_NEAR(psi(q, counts), naive, 1e-12);
  EXPECT_NEAR(binned_ks(q, counts), ks, 1e-12);
  EXPECT_NEAR(ks, 0.3, 1e-12);
  const uint64_t none[] = {0, 0, 0, 0, 0};
  EXPECT_EQ(psi(q, none), 0);
}

struct Clock {
  double t = 500;
};

Tensor column(int rows, const std::function<float(int)>& v) {
  auto t = Tensor::empty(DType::kFloat32, Shape({rows, 3})).value();
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < 3; ++c) t.data<float>()[r * 3 + c] = c == 1 ? v(r) : 1e9f;
  return t;
}

TEST(DriftMonitor, ReferenceDataStaysQuietAShiftFlipsTheFlagAndBackAgain) {
  Clock clock;
  std::vector<DriftEvent> events;
  MonitoringConfig cfg;
  cfg.window_seconds = 10;
  cfg.min_rows = 100;
  DriftMonitor m(
      "m", 3, parse_profile(kProfile, signature()).value(), cfg, [&] { return clock.t; },
      [&](const DriftEvent& e) { events.push_back(e); });
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0, 1);
  const std::vector<Tensor> none;  // the other inputs absent: their features read nothing
  for (int i = 0; i < 50; ++i) {
    clock.t += 0.1;
    m.observe({column(20, [&](int) { return normal(rng); })}, false);
  }
  auto st = m.stats();
  EXPECT_EQ(st.rows, 1000u);  // 5 s of 20-row requests, all in the 10 s window
  EXPECT_LT(st.features[0].psi, 0.1);
  EXPECT_FALSE(st.drifting);
  EXPECT_TRUE(events.empty());
  // Shifted by 1.5: PSI far over 0.25; the flag flips once, with the feature named.
  for (int i = 0; i < 30 && events.empty(); ++i) {
    clock.t += 0.1;
    m.observe({column(20, [&](int) { return normal(rng) + 1.5f; })}, false);
  }
  for (int i = 0; i < 30; ++i) {
    clock.t += 0.1;
    m.observe({column(20, [&](int) { return normal(rng) + 1.5f; })}, false);
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].drifting);
  EXPECT_EQ(events[0].version, 3);
  EXPECT_NE(events[0].detail.find("x[1] PSI"), std::string::npos) << events[0].detail;
  st = m.stats();
  EXPECT_TRUE(st.drifting);
  EXPECT_GT(st.features[0].psi, 0.25);
  EXPECT_GT(st.features[0].ks, 0.3);
  // Back to the reference: once the shifted rows have left the window, the flag clears.
  for (int i = 0; i < 150; ++i) {
    clock.t += 0.1;
    m.observe({column(20, [&](int) { return normal(rng); })}, false);
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_FALSE(events[1].drifting);
}

TEST(DriftMonitor, CountsOutOfRangeNanChannelsStringsAndClasses) {
  Clock clock;
  MonitoringConfig cfg;
  cfg.min_rows = 1;
  DriftMonitor m("m", 1, parse_profile(kProfile, signature()).value(), cfg, [&] { return clock.t; });
  const float nan = std::nanf("");
  // x[1]: 5 (out of range), NaN, 0.5.
  auto x = Tensor::from<float>(Shape({3, 3}), {0, 5, 0, 0, nan, 0, 0, 0.5f, 0});
  // img NHWC [2, 2, 2, 3]: channel 2 of row 0 is all 0.2, of row 1 all 0.9; the others 7.
  auto img = Tensor::empty(DType::kFloat32, Shape({2, 2, 2, 3})).value();
  for (int i = 0; i < 24; ++i) img.data<float>()[i] = i % 3 == 2 ? (i < 12 ? 0.2f : 0.9f) : 7.f;
  auto s = Tensor::empty(DType::kString, Shape({4})).value();
  s.str(0) = "red";
  s.str(1) = "red";
  s.str(2) = "green";
  s.str(3) = "blue";
  m.observe({x, img, s}, false);
  m.observe({Tensor::from<float>(Shape({2, 3}), {0.1f, 0.7f, 0.2f, 0.5f, 0.1f, 0.4f})}, true);
  auto st = m.stats();
  const auto& fx = st.features[0];
  EXPECT_EQ(fx.rows, 2u);
  EXPECT_EQ(fx.out_of_range, 1u);
  EXPECT_EQ(fx.nan, 1u);
  const auto& fimg = st.features[1];
  EXPECT_EQ(fimg.rows, 2u);
  EXPECT_EQ(fimg.out_of_range, 0u);
  // One row each side of 0.5: the reference's own shares, PSI 0.
  EXPECT_NEAR(fimg.psi, 0, 1e-12);
  const auto& fs = st.features[2];
  ASSERT_EQ(fs.shares.size(), 3u);
  EXPECT_EQ(fs.shares[0], (std::pair<std::string, double>{"red", 0.5}));
  EXPECT_EQ(fs.shares[2], (std::pair<std::string, double>{"(other)", 0.25}));
  EXPECT_EQ(fs.out_of_range, 1u);
  const auto& fc = st.features[3];
  EXPECT_TRUE(fc.output);
  EXPECT_EQ(fc.shares[0], (std::pair<std::string, double>{"0", 0.5}));
  EXPECT_EQ(fc.shares[1], (std::pair<std::string, double>{"1", 0.5}));
}

TEST(DriftMonitor, NothingIsJudgedBelowMinRows) {
  Clock clock;
  std::vector<DriftEvent> events;
  MonitoringConfig cfg;
  cfg.min_rows = 1000;
  DriftMonitor m(
      "m", 1, parse_profile(kProfile, signature()).value(), cfg, [&] { return clock.t; },
      [&](const DriftEvent& e) { events.push_back(e); });
  for (int i = 0; i < 40; ++i) {
    clock.t += 1;
    m.observe({column(20, [](int) { return 3.f; })}, false);
  }
  EXPECT_GT(m.stats().features[0].psi, 1);
  EXPECT_FALSE(m.stats().drifting);
  EXPECT_TRUE(events.empty());
}

}  // namespace
}  // namespace mserve::server
