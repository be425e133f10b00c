// Rollouts (server/rollout): the rollout block of a model config, the weighted and sticky split,
// the sliding window, the guard's rollback and steps on a clock the test moves, and the shadow's
// output comparison. Served end to end (REST and gRPC) in tests/python/test_rollout.py.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>

#include "server/repository/config.h"
#include "server/rollout/rollout.h"
#include "server/rollout/shadow.h"

namespace mserve::server {
namespace {

const std::map<std::string, int64_t> kLabels = {{"stable", 1}, {"canary", 2}, {"candidate", 3}};

RolloutConfig parse(const std::string& text) {
  auto r = parse_rollout(text, "m", kLabels);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value() : RolloutConfig{};
}

std::string parse_error(const std::string& text) {
  auto r = parse_rollout(text, "m", kLabels);
  return r.ok() ? "" : r.status().message();
}

TEST(RolloutConfig, ReadsTheBlockWithDefaults) {
  RolloutConfig r = parse(
      "arm { label: 'stable' weight: 90 } arm { label: 'canary' weight: 10 } sticky_header: 'X-User-Id' "
      "shadow { label: 'candidate' percent: 5 } guard { window_seconds: 30 step_percent: 10 "
      "step_interval_seconds: 60 }");
  ASSERT_EQ(r.arms.size(), 2u);
  EXPECT_EQ(r.arms[0].label, "stable");
  EXPECT_EQ(r.arms[1].weight, 10);
  EXPECT_EQ(r.sticky_header, "x-user-id");  // header names are matched in lower case
  EXPECT_EQ(r.shadow.label, "candidate");
  EXPECT_EQ(r.shadow.queue, 64u);
  EXPECT_TRUE(r.guard.enabled);
  EXPECT_EQ(r.guard.window_seconds, 30);
  EXPECT_EQ(r.guard.min_requests, 100u);
  EXPECT_EQ(r.guard.max_error_rate_increase, 0.01);
  EXPECT_EQ(r.guard.max_p99_ratio, 2);
  EXPECT_EQ(r.guard.max_percent, 100);
}

TEST(RolloutConfig, RefusesWhatCannotWork) {
  const std::pair<const char*, const char*> cases[] = {
      {"arm { label: 'nope' weight: 1 }", "label 'nope' is not one of the model's version_labels"},
      {"arm { label: 'stable' weight: 1 } arm { label: 'stable' weight: 2 }", "has two arms"},
      {"arm { label: 'stable' weight: -1 }", "weights are >= 0"},
      {"arm { label: 'stable' weight: 0 } arm { label: 'canary' weight: 0 }", "all 0"},
      {"arm { weight: 1 }", "an arm has no label"},
      {"arm { label: 'stable' weight: 1 } guard { }", "needs a baseline arm and at least one canary"},
      {"arm { label: 'stable' weight: 1 } arm { label: 'canary' weight: 1 } guard { step_percent: 5 }",
       "needs step_interval_seconds"},
      {"arm { label: 'stable' weight: 1 } arm { label: 'canary' weight: 1 } guard { window_seconds: -1 }",
       "window_seconds must be a number >= 0"},
      {"shadow { label: 'candidate' percent: 101 }", "percent must lie in 0..100"},
      {"shadow { percent: 1 }", "the shadow has no label"},
      {"sticky_header: 'x user'", "is not a header name"},
      {"sticky_header: 'x-user'", "give arms, a shadow or both"},
      {"arm { label: 'stable' weight: 1 } bogus: 1", "line 1"},
  };
  for (const auto& [text, want] : cases) {
    const std::string got = parse_error(text);
    EXPECT_NE(got.find(want), std::string::npos) << text << " -> " << got;
  }
  std::string many;
  for (int i = 0; i < 9; ++i) many += "arm { label: 'stable' weight: 1 } ";
  EXPECT_NE(parse_error(many).find("at most 8 arms"), std::string::npos);
}

TEST(RolloutConfig, RoundTripsThroughTheModelConfigFile) {
  const std::string text =
      "model_config_list { config { name: 'm' base_path: '/models/m' version_labels { key: 'stable' value: 1 } "
      "version_labels { key: 'canary' value: 2 } rollout { arm { label: 'stable' weight: 75 } "
      "arm { label: 'canary' weight: 25 } sticky_header: 'identity' guard { min_requests: 7 } } } }";
  auto first = parse_model_config(text);
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_TRUE(first.value()[0].rollout);
  for (const std::string& again : {model_config_text(first.value()), std::string()}) {
    auto second =
        again.empty() ? parse_model_config_binary(model_config_binary(first.value())) : parse_model_config(again);
    ASSERT_TRUE(second.ok()) << second.status().message();
    ASSERT_TRUE(second.value()[0].rollout);
    EXPECT_TRUE(*second.value()[0].rollout == *first.value()[0].rollout);
  }
  // The block is checked against the model's own labels.
  auto bad = parse_model_config(
      "model_config_list { config { name: 'm' base_path: '/m' rollout { arm { label: 'stable' weight: 1 } } } }");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("model 'm': rollout: an arm label 'stable'"), std::string::npos)
      << bad.status().message();
}

// A clock the test moves.
struct FakeClock {
  double t = 1000;
  RolloutModel::Now fn() {
    return [this] { return t; };
  }
};

TEST(RolloutSplit, RandomDrawsFollowTheWeights) {
  FakeClock clock;
  RolloutModel m("m", parse("arm { label: 'stable' weight: 9 } arm { label: 'canary' weight: 1 }"), clock.fn());
  EXPECT_EQ(m.weights(), (std::vector<double>{90, 10}));
  int canary = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) canary += m.pick("") == 1;
  // Binomial(200000, 0.1): sd 134; 5 sd either way.
  EXPECT_NEAR(canary, n / 10, 670);
}

TEST(RolloutSplit, AKeyStaysOnItsArmAndKeysSpreadByWeight) {
  FakeClock clock;
  RolloutModel m("m", parse("arm { label: 'stable' weight: 70 } arm { label: 'canary' weight: 30 }"), clock.fn());
  int canary = 0;
  const int n = 20000;
  for (int u = 0; u < n; ++u) {
    const std::string key = "user-" + std::to_string(u);
    const int arm = m.pick(key);
    for (int again = 0; again < 3; ++again) ASSERT_EQ(m.pick(key), arm) << key;
    canary += arm == 1;
  }
  EXPECT_NEAR(canary, n * 3 / 10, 5 * std::sqrt(n * 0.21));
  // Another model places the same users independently.
  RolloutModel other("other", m.config(), clock.fn());
  int same = 0;
  for (int u = 0; u < 2000; ++u) {
    const std::string key = "user-" + std::to_string(u);
    same += m.pick(key) == 1 && other.pick(key) == 1;
  }
  EXPECT_NEAR(same, 2000 * 0.09, 5 * std::sqrt(2000 * 0.09));
}

TEST(RolloutSplit, ZeroWeightArmsGetNothing) {
  FakeClock clock;
  RolloutModel m("m",
                 parse("arm { label: 'stable' weight: 0 } arm { label: 'canary' weight: 5 } "
                       "arm { label: 'candidate' weight: 0 }"),
                 clock.fn());
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(m.pick(""), 1);
  for (int u = 0; u < 1000; ++u) ASSERT_EQ(m.pick(std::to_string(u)), 1);
}

TEST(ArmWindow, CountsTheWindowAndItsP99) {
  ArmWindow w(10);  // ten slices of one second
  for (int i = 0; i < 99; ++i) w.add(100.5, true, 0.001);
  w.add(100.5, false, 0.5);
  ArmWindow::Summary s = w.summary(100.9);
  EXPECT_EQ(s.requests, 100u);
  EXPECT_EQ(s.errors, 1u);
  // The 99th of 100 ordered latencies is 1 ms: its bin's upper edge, within a quarter octave.
  EXPECT_GE(s.p99, 0.001);
  EXPECT_LT(s.p99, 0.001 * std::exp2(0.25) * 1.0001);
  for (int i = 0; i < 100; ++i) w.add(105.5, true, 0.1);
  s = w.summary(105.9);
  EXPECT_EQ(s.requests, 200u);
  EXPECT_GE(s.p99, 0.1);
  // Ten seconds on, the first second's slice has left the window; twenty on, everything has.
  s = w.summary(110.6);
  EXPECT_EQ(s.requests, 100u);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(w.summary(120.6).requests, 0u);
}

const char* kGuarded =
    "arm { label: 'stable' weight: 90 } arm { label: 'canary' weight: 10 } "
    "guard { window_seconds: 10 min_requests: 100 max_error_rate_increase: 0.02 }";

TEST(RolloutGuard, RollsBackACanaryThatFailsMoreThanTheBaseline) {
  FakeClock clock;
  RolloutModel m("m", parse(kGuarded), clock.fn());
  std::vector<RolloutEvent> events;
  // The baseline fails 1%, the canary 5%: 4 points more than allowed 2.
  for (int i = 0; i < 2000 && events.empty(); ++i) {
    clock.t += 0.002;
    auto e = m.record(0, 1, i % 100 != 0, 0.001);
    events.insert(events.end(), e.begin(), e.end());
    if (i % 9 == 0) {
      e = m.record(1, 2, (i / 9) % 20 != 7, 0.001);
      events.insert(events.end(), e.begin(), e.end());
    }
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, "rollback");
  EXPECT_EQ(events[0].arm, "canary");
  EXPECT_EQ(events[0].version, 2);
  // "weight 10% -> 0: error rate 4.902% over 102 requests vs 1.088% on stable"
  EXPECT_EQ(events[0].detail.rfind("weight 10% -> 0: error rate 4.", 0), 0u) << events[0].detail;
  EXPECT_NE(events[0].detail.find("% on stable"), std::string::npos) << events[0].detail;
  EXPECT_EQ(m.weights(), (std::vector<double>{100, 0}));
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(m.pick(""), 0);
  // Rolled back once: more canary failures change nothing.
  for (int i = 0; i < 200; ++i) {
    clock.t += 0.01;
    ASSERT_TRUE(m.record(1, 2, false, 0.001).empty());
  }
  auto snap = m.snapshot();
  EXPECT_EQ(snap.arms[1].rollbacks, 1u);
  EXPECT_NE(snap.arms[1].rolled_back.find("error rate"), std::string::npos);
}

TEST(RolloutGuard, JudgesNothingBeforeMinRequestsAndForgetsOldFailures) {
  FakeClock clock;
  RolloutModel m("m", parse(kGuarded), clock.fn());
  for (int i = 0; i < 99; ++i) {
    clock.t += 0.001;
    ASSERT_TRUE(m.record(1, 2, false, 0.001).empty());  // 99 failures: below min_requests
  }
  clock.t += 30;  // the window has moved on
  for (int i = 0; i < 300; ++i) {
    clock.t += 0.01;
    ASSERT_TRUE(m.record(0, 1, true, 0.001).empty());
    ASSERT_TRUE(m.record(1, 2, true, 0.001).empty());
  }
  EXPECT_EQ(m.weights(), (std::vector<double>{90, 10}));
}

TEST(RolloutGuard, RollsBackASlowCanary) {
  FakeClock clock;
  RolloutModel m("m", parse(kGuarded), clock.fn());
  std::vector<RolloutEvent> events;
  for (int i = 0; i < 400 && events.empty(); ++i) {
    clock.t += 0.001;
    auto e = m.record(0, 1, true, 0.002);
    events.insert(events.end(), e.begin(), e.end());
    e = m.record(1, 2, true, i % 50 == 0 ? 0.002 : 0.010);  // p99 10 ms vs 2 ms
    events.insert(events.end(), e.begin(), e.end());
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0].detail.find("p99 latency"), std::string::npos) << events[0].detail;
  // A latency difference under p99_slack_ms (1 ms) never breaches, whatever the ratio.
  RolloutModel fast("m", parse(kGuarded), clock.fn());
  for (int i = 0; i < 400; ++i) {
    clock.t += 0.001;
    ASSERT_TRUE(fast.record(0, 1, true, 0.00005).empty());
    ASSERT_TRUE(fast.record(1, 2, true, 0.0004).empty());
  }
}

TEST(RolloutGuard, StepsAHealthyCanaryUpToMaxPercent) {
  FakeClock clock;
  RolloutModel m("m",
                 parse("arm { label: 'stable' weight: 90 } arm { label: 'canary' weight: 10 } "
                       "guard { window_seconds: 10 min_requests: 20 step_percent: 15 step_interval_seconds: 5 "
                       "max_percent: 50 }"),
                 clock.fn());
  std::vector<std::string> steps;
  // Users on the canary stay there as it grows.
  std::vector<std::string> on_canary;
  for (int u = 0; u < 1000; ++u)
    if (m.pick(std::to_string(u)) == 1) on_canary.push_back(std::to_string(u));
  for (int i = 0; i < 3000; ++i) {
    clock.t += 0.01;
    for (int arm : {0, 1})
      for (const RolloutEvent& e : m.record(arm, arm + 1, true, 0.001)) steps.push_back(e.detail);
  }
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0], "weight 10% -> 25%");
  EXPECT_EQ(steps[2], "weight 40% -> 50%");
  EXPECT_EQ(m.weights(), (std::vector<double>{50, 50}));
  for (const std::string& u : on_canary) ASSERT_EQ(m.pick(u), 1) << u;
}

Tensor floats(const Shape& shape, std::initializer_list<float> v) { return Tensor::from<float>(shape, v); }

TEST(ShadowCompare, MaxAbsDiffAndArgmaxAgreement) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<Tensor> answer = {floats(Shape({2, 3}), {0.1f, 0.7f, 0.2f, 0.5f, 0.4f, nan})};
  std::vector<Tensor> shadow = {floats(Shape({2, 3}), {0.1f, 0.6f, 0.3f, 0.3f, 0.6f, nan})};
  auto d = compare_outputs(answer, shadow);
  ASSERT_TRUE(d.ok());
  EXPECT_NEAR(d.value().max_abs, 0.2, 1e-6);  // NaN against NaN agrees
  EXPECT_EQ(d.value().rows, 2u);
  EXPECT_EQ(d.value().agree, 1u);
  shadow[0].data<float>()[5] = 1;  // NaN against a number: infinitely far
  EXPECT_TRUE(std::isinf(compare_outputs(answer, shadow).value().max_abs));
  auto wrong = compare_outputs(answer, {floats(Shape({3, 2}), {0, 0, 0, 0, 0, 0})});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("float32[3, 2] from the shadow"), std::string::npos)
      << wrong.status().message();
  EXPECT_FALSE(compare_outputs(answer, {}).ok());
  // Integer outputs are compared as numbers, not argmaxed.
  auto ints = compare_outputs({Tensor::from<int64_t>(Shape({2, 2}), {1, 2, 3, 4})},
                              {Tensor::from<int64_t>(Shape({2, 2}), {1, 2, 3, 9})});
  EXPECT_EQ(ints.value().max_abs, 5);
  EXPECT_EQ(ints.value().rows, 0u);
}

}  // namespace
}  // namespace mserve::server
