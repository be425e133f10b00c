"""The GPU device checks (bench/gpu_check.py, bench/gpu/) on the mock device: the whole run ends in
its summary table with every step ok or skipped, the comparisons catch what they must catch
(unwritten outputs, CPU fallbacks), the driver survives steps that crash or run out of time, and
the bundle for GPU machines is built and kept under its size limit."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mserve

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

from gpu import bench, common, latency, op_cases, ops, zoo  # noqa: E402  (bench/ is not a package)
from gpu.zoo import input_sets  # noqa: E402

STEPS = ["preflight", "ops", "sanitizer", "zoo", "roofline", "latency"]


def run_check(tmp_path, *args, timeout=600):
    cmd = [sys.executable, str(BENCH / "gpu_check.py"), "--out", str(tmp_path / "out"),
           "--work", str(tmp_path / "work"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, check=False)


def summary_rows(stdout):
    """{step: (status, key numbers)} from the table after '== summary'."""
    table = stdout.split("== summary", 1)[1]
    rows = {}
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(ok|fail|skip)\s+\d+s\s+(.*)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_mock_run_ends_in_one_summary_with_no_failed_step(tmp_path):
    p = run_check(tmp_path, "--device", "mock", "--quick")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert p.stdout.count("== summary") == 1
    assert re.search(r"^step\s+status\s+time\s+key numbers$", p.stdout, re.M)
    rows = summary_rows(p.stdout)
    assert list(rows) == STEPS, rows
    assert all(status in ("ok", "skip") for status, _ in rows.values()), rows
    assert rows["preflight"][0] == rows["ops"][0] == rows["zoo"][0] == "ok", rows
    assert rows["sanitizer"] == ("skip", "needs a CUDA device (device mock)")
    assert rows["roofline"] == ("skip", "needs a CUDA device (device mock)")
    if importlib.util.find_spec("torch") is None:
        assert rows["latency"] == ("skip", "torch is not importable here: no models to export, latency not measured")
    assert re.match(r"\d+ ops, \d+ cases, 0 failed", rows["ops"][1])
    assert "all steps ok or skipped" in p.stdout
    out = tmp_path / "out"
    # Eight files: what comes back from a GPU machine's output folder.
    assert sorted(f.name for f in out.iterdir()) == sorted(["gpu-check.log", "summary.json"] +
                                                            [f"{s}.log" for s in STEPS])
    summary = json.loads((out / "summary.json").read_text())
    assert [s["step"] for s in summary["steps"]] == STEPS and summary["failed"] == []
    cases = next(s for s in summary["steps"] if s["step"] == "ops")["data"]["cases"]
    assert cases and all(c["ok"] for c in cases)
    assert "== summary" in (out / "gpu-check.log").read_text()


def test_a_step_that_crashes_or_has_no_time_fails_or_skips_and_the_summary_still_comes(tmp_path):
    crashed = run_check(tmp_path, "--device", "mock", "--steps", "zoo", "--python", shutil.which("false"))
    assert crashed.returncode == 1
    assert summary_rows(crashed.stdout) == {"zoo": ("fail", "ended (rc 1) without a verdict")}
    assert "FAILED: zoo" in crashed.stdout
    late = run_check(tmp_path, "--device", "mock", "--steps", "ops,zoo", "--budget", "1")
    assert late.returncode == 0
    assert summary_rows(late.stdout) == {"ops": ("skip", "no time left in the budget"),
                                         "zoo": ("skip", "no time left in the budget")}


def test_compare_finds_unwritten_and_wrong_outputs():
    want = np.array([1.0, -2.0, np.nan, np.inf, 3.0], np.float32)
    assert common.compare(want.copy(), want, 1e-5) == (0.0, "")
    poisoned = want.copy()
    poisoned[0] = np.nan  # an element no kernel wrote, in a NaN-filled arena
    assert "NaN at 1 place" in common.compare(poisoned, want, 1e-5)[1]
    lost = want.copy()
    lost[2] = 0.0
    assert "a number at 1" in common.compare(lost, want, 1e-5)[1]
    flipped = want.copy()
    flipped[3] = -np.inf
    assert common.compare(flipped, want, 1e-5)[1] == "infinities differ"
    off = want.copy()
    off[4] = 3.001
    err, why = common.compare(off, want, 1e-5)
    assert 1e-5 < err < 1e-3 and "relative L2" in why
    assert "dtype" in common.compare(want.astype(np.float64), want, 1e-5)[1]
    assert "shape" in common.compare(want[:4], want, 1e-5)[1]
    assert common.compare(np.array([1, 2]), np.array([1, 3]), 1e-5)[1] == "1 of 2 values differ"
    rows = [{0: 0.25, 1: 0.75}]
    assert common.compare([{0: 0.25, 1: 0.75}], rows, 1e-5) == (0.0, "")
    assert "labels" in common.compare([{1: 0.25, 0: 0.75}], rows, 1e-5)[1]


class _Corrupting:
    """mserve.load for the device, with a model whose outputs or placement are wrong."""

    def __init__(self, corrupt=None, fallback=False):
        self.corrupt, self.fallback, self.Error = corrupt, fallback, mserve.Error

    def load(self, model, device="cpu", optimize=True):
        real = mserve.load(model, device="mock" if device != "cpu" else "cpu", optimize=optimize)
        if device == "cpu":
            return real
        outer = self

        class Model:
            def predict(self, x):
                y = real.predict(x)
                return outer.corrupt(y) if outer.corrupt else y

            def placement(self):
                p = real.placement()
                if outer.fallback:
                    return p._replace(device_nodes=0, cpu_nodes=1, fallbacks=[("n0", "Relu", "no kernel")])
                return p

        return Model()


def _relu_case():
    return next(c for c in op_cases.CASES if c.op == ("", "Relu") and c.name.startswith("(7,13,3)"))


def _poison_one(y):
    y = y.copy()
    y.reshape(-1)[5] = np.nan
    return y


@pytest.mark.parametrize("fake, problem", [
    (_Corrupting(corrupt=_poison_one), "NaN at 1 place"),
    (_Corrupting(corrupt=lambda y: y * 1.001), "relative L2 error"),
    (_Corrupting(fallback=True), "fell back to the CPU: Relu n0: no kernel"),
])
def test_an_op_case_fails_on_a_wrong_output_or_a_cpu_fallback(fake, problem):
    r = ops.run_case(fake, _relu_case(), "mock", seed=7, index=0)
    assert not r.ok and any(problem in p for p in r.problems), r.problems
    assert ops.run_case(_Corrupting(), _relu_case(), "mock", seed=7, index=0).ok


def test_the_error_case_needs_both_devices_to_refuse():
    bad = next(c for c in op_cases.CASES if c.error)
    assert ops.run_case(mserve, bad, "mock", seed=3, index=0).ok

    class Accepting(_Corrupting):
        def load(self, model, device="cpu", optimize=True):
            m = super().load(model, device, optimize)
            if device == "cpu":
                return m

            class Quiet:
                def predict(self, x):
                    return np.zeros(1, np.float32)

                def placement(self):
                    return m.placement()
            return Quiet()

    r = ops.run_case(Accepting(), bad, "mock", seed=3, index=0)
    assert not r.ok and "both must refuse" in r.problems[0]


@pytest.mark.slow
def test_every_op_case_passes_on_the_mock_device():
    failed = []
    for i, case in enumerate(op_cases.CASES):
        r = ops.run_case(mserve, case, "mock", seed=11, index=i)
        if not r.ok:
            failed.append(f"{case.label}: {r.problems}")
    assert not failed, failed


def test_every_op_of_the_cuda_kernel_table_has_a_case():
    """A kernel without a case here would go unchecked on the GPU machine (the ops step fails
    there): add its cases to bench/gpu/op_cases.py with the kernel."""
    table = common.cuda_ops()
    if table is None:
        pytest.skip("mserve was built without its CUDA backend")
    missing = sorted(set(table) - op_cases.covered_ops())
    assert not missing, f"ops with a CUDA kernel and no case in bench/gpu/op_cases.py: {missing}"


def _fake_dist(tmp_path, *names, size=1000):
    dist = tmp_path / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    for name in names:
        with open(dist / name, "wb") as f:
            f.truncate(size)  # sparse: the size limit counts apparent bytes
    return dist


def _bundle(tmp_path, dist, limit_mib):
    dest = tmp_path / "bundle"
    p = subprocess.run(["bash", str(BENCH / "gpu" / "make_bundle.sh"), str(dest), str(dist), str(limit_mib)],
                       capture_output=True, text=True, timeout=120, check=False)
    return p, dest


def test_gpu_bundle_holds_the_wheel_the_checks_and_the_zoo(tmp_path):
    wheel = "mserve-9.9.9-cp312-cp312-manylinux_2_35_x86_64.whl"
    dist = _fake_dist(tmp_path, wheel, "mserve-9.9.9-cp311-cp311-manylinux_2_35_x86_64.whl")
    p, dest = _bundle(tmp_path, dist, 64)
    assert p.returncode == 0, p.stderr
    names = {f.name for f in dest.iterdir()}
    assert names == {wheel, "gpu_check.sh", "gpu_check.py", "gpu", "zoo", "README.txt"}
    assert {f.name for f in (dest / "gpu").iterdir()} >= {"ops.py", "op_cases.py", "preflight.py", "common.py"}
    assert (dest / "zoo" / "resnet18.onnx").exists() and (dest / "zoo" / "resnet18.npz").exists()
    assert "bash gpu_check.sh" in (dest / "README.txt").read_text()
    # The bundle's own copy finds its zoo (zoo/ beside gpu_check.py).
    listing = subprocess.run([sys.executable, "-c", "from gpu import common; print(common.zoo_dir())"],
                             cwd=dest, capture_output=True, text=True, check=True)
    assert listing.stdout.strip() == str(dest / "zoo")


def test_gpu_bundle_leaves_out_the_zoo_when_it_does_not_fit_and_refuses_to_be_too_large(tmp_path):
    dist = _fake_dist(tmp_path, "mserve-9.9.9-cp312-cp312-manylinux_2_35_x86_64.whl", size=2 << 20)
    p, dest = _bundle(tmp_path, dist, 3)  # the wheel fits in 3 MiB, the zoo (~5 MiB) does not
    assert p.returncode == 0, p.stderr
    assert "does not fit" in p.stderr and not (dest / "zoo").exists()
    big = _fake_dist(tmp_path / "big", "mserve-9.9.9-cp312-cp312-manylinux_2_35_x86_64.whl", size=70 << 20)
    p, _ = _bundle(tmp_path, big, 64)
    assert p.returncode == 1 and "over the 64 MiB" in p.stderr
    none = _fake_dist(tmp_path / "none")
    p, _ = _bundle(tmp_path, none, 64)
    assert p.returncode == 1 and "found 0" in p.stderr
    two = _fake_dist(tmp_path / "two", "mserve-1-cp312-cp312-a.whl", "mserve-2-cp312-cp312-a.whl")
    p, _ = _bundle(tmp_path, two, 64)
    assert p.returncode == 1 and "found 2" in p.stderr


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu/make_bundle.sh"])
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", str(BENCH / script)], check=True)
    if shutil.which("shellcheck"):
        p = subprocess.run(["shellcheck", str(BENCH / script)], capture_output=True, text=True, check=False)
        assert p.returncode == 0, p.stdout


def test_gpu_check_sh_runs_the_driver_and_honours_out(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "o"), PYTHON=sys.executable, TMPDIR=str(tmp_path))
    p = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--device", "mock", "--steps", "preflight"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    assert summary_rows(p.stdout)["preflight"][0] == "ok"
    assert (tmp_path / "o" / "summary.json").exists()


# ---- the latency step's arithmetic, plan and tables (no PyTorch, no GPU) ----------------------


def test_the_work_counts_match_the_models_published_sizes():
    b1 = bench.bert_work(1)
    assert b1.params == 109_482_240  # BertModel (bert-base) with its pooler
    # 12 layers x (2 x 128 tokens x (4 x 768^2 + 2 x 768 x 3072) + 4 x 128^2 x 768) + the pooler
    assert b1.flops == 12 * (2 * 128 * 7_077_888 + 4 * 128 * 128 * 768) + 2 * 768 * 768 == 22_348_431_360
    assert 340e6 < b1.weight_bytes < 345e6  # the encoder and pooler in float32, 258 embedding rows
    assert bench.bert_work(32).flops == 32 * b1.flops
    assert bench.bert_work(32).weight_bytes > b1.weight_bytes  # more embedding rows touched
    r1 = bench.resnet50_work(1)
    assert r1.params == 25_557_032  # torchvision's resnet50
    assert r1.flops == 2 * 4_089_184_256  # torchvision's 4.09 G multiply-adds per image
    assert bench.resnet50_work(32).flops == 32 * r1.flops
    assert r1.min_bytes == r1.weight_bytes + 4 * (3 * 224 * 224 + 1000)
    assert r1.weight_bytes == 4 * (25_557_032 - 26_560)  # BatchNorm folded: one bias where it had two numbers


def test_ratios_fractions_and_the_floor_leave_missing_values_missing():
    assert bench.ratio(0.8, 1.0) == pytest.approx(0.8)
    assert bench.ratio(None, 1.0) is None and bench.ratio(1.0, None) is None and bench.ratio(1.0, 0.0) is None
    assert bench.tflops(2e12, 1000.0) == pytest.approx(2.0)
    assert bench.tflops(None, 1.0) is None and bench.tflops(1e9, None) is None
    assert bench.gb_per_s(3e9, 1000.0) == pytest.approx(3.0)
    assert bench.fraction(25.0, 50.0) == pytest.approx(0.5) and bench.fraction(25.0, None) is None
    # 1 TFLOP at 50 TFLOP/s is 20 ms; 300 MB at 3000 GB/s is 0.1 ms: the arithmetic is the floor
    assert bench.floor_ms(1e12, 3e8, 50.0, 3000.0) == pytest.approx(20.0)
    assert bench.floor_ms(1e9, 3e8, 50.0, 3000.0) == pytest.approx(0.1)
    assert bench.floor_ms(1e12, 3e8, None, 3000.0) == pytest.approx(0.1)
    assert bench.floor_ms(1e12, 3e8, None, None) is None


def _rows():
    bert = {"label": "BERT-base b1 s128", "family": "BERT-base", "batch": 1, "flops": bench.bert_work(1).flops,
            "min_bytes": bench.bert_work(1).min_bytes, "mserve_ms": 0.9, "torch_eager_ms": 1.5,
            "mserve_tf32_ms": 0.7, "torch_eager_tf32_ms": 1.2, "mserve_nograph_ms": 2.5, "torch_graph_ms": 0.8,
            "mserve_rel_l2": 2e-7, "mserve_tf32_rel_l2": 1.1e-3, "mserve_load_ms": 900.0, "mserve_first_ms": 40.0,
            "mserve_second_ms": 12.0, "mserve_fp16_ms": 0.45, "torch_autocast_fp16_ms": 0.9, "mserve_bf16_ms": 0.5,
            "mserve_fp16_rel_l2": 2e-3, "mserve_bf16_rel_l2": 1e-2}
    bert32 = {"label": "BERT-base b32 s128", "family": "BERT-base", "batch": 32, "mserve_ms": 16.0,
              "torch_eager_ms": 15.0}
    r1 = {"label": "ResNet-50 b1", "family": "ResNet-50", "batch": 1, "flops": bench.resnet50_work(1).flops,
          "min_bytes": bench.resnet50_work(1).min_bytes, "torch_eager_ms": 2.0}  # mserve failed
    r32 = {"label": "ResNet-50 b32", "family": "ResNet-50", "batch": 32, "mserve_ms": 6.0, "torch_eager_ms": 6.5}
    return [bert, bert32, r1, r32]


def test_targets_pass_miss_or_say_what_was_not_measured():
    verdicts = bench.targets(_rows(), "NVIDIA H100 80GB HBM3")
    got = {v.what: (v.verdict, v.value) for v in verdicts}
    assert got["BERT-base b1 s128 fp32: mserve / PyTorch eager"] == ("pass", pytest.approx(0.6))
    assert got["BERT-base b32 s128 fp32: mserve / PyTorch eager"][0] == "miss"  # 1.07x over 1.0x
    assert got["ResNet-50 b1 fp32: mserve / PyTorch eager"] == ("-", None)
    assert got["ResNet-50 b32 fp32: mserve / PyTorch eager"][0] == "pass"
    assert got["BERT-base b1 s128 fp32: mserve"] == ("pass", 0.9)
    assert got["BERT-base b1 s128 tf32: mserve"] == ("miss", 0.7)  # 0.6 ms is the tf32 target
    assert got["BERT-base b1 s128 fp16: mserve"] == ("pass", 0.45)  # under 0.5 ms
    assert got["BERT-base b1 s128 fp16: mserve / PyTorch autocast"] == ("pass", pytest.approx(0.5))
    assert "BERT-base b32 s128 fp16: mserve / PyTorch autocast" not in got  # neither measured
    assert len(verdicts) == 8 and not any(v.note for v in verdicts)
    assert bench.target_count(verdicts) == "5 of 8 targets pass (2 miss, 1 not measured)"
    # Exactly at the limit: a ratio passes (at most), a time does not (under).
    edge = [{"label": "BERT-base b1 s128", "family": "BERT-base", "batch": 1, "mserve_ms": 0.8,
             "torch_eager_ms": 1.0}]
    on_h200 = {v.what: v for v in bench.targets(edge, "NVIDIA H200")}
    assert on_h200["BERT-base b1 s128 fp32: mserve / PyTorch eager"].verdict == "pass"
    assert on_h200["BERT-base b1 s128 fp32: mserve"].verdict == "pass"
    assert on_h200["BERT-base b1 s128 tf32: mserve"].verdict == "-"
    assert on_h200["BERT-base b1 s128 fp16: mserve"].verdict == "-"
    assert "H100" in on_h200["BERT-base b1 s128 fp32: mserve"].note and "H200" in on_h200[
        "BERT-base b1 s128 fp32: mserve"].note
    assert bench.targets([], "NVIDIA H100") == []


def test_the_tables_print_every_row_with_dashes_for_missing_values():
    rows = _rows()
    card = "NVIDIA H100 80GB HBM3"
    lat = bench.latency_table(rows, card, on_gpu=True)
    assert card in lat[0]
    assert len(lat) == 3 + len(rows) and len({len(line) for line in lat[2:]}) == 1  # aligned columns
    bert, bert32, r1 = lat[3], lat[4], lat[5]
    assert bert.split() == ["BERT-base", "b1", "s128", "0.90", "2.50", "1.50", "0.80", "0.60x", "0.70", "1.20",
                            "0.58x", "0.45", "0.90", "0.50x", "0.50", "2.0e-07", "1.1e-03", "2.0e-03", "1.0e-02"]
    assert bert32.split()[3:] == ["16.00", "-", "15.00", "-", "1.07x"] + ["-"] * 11
    assert r1.split()[2:] == ["-", "-", "2.00"] + ["-"] * 13
    ceilings = {"gemm_fp32_tflops": 50.0, "gemm_tf32_tflops": 400.0, "copy_gb_s": 3000.0}
    work = bench.work_table(rows, ceilings)
    assert "GEMM fp32 50.0, tf32 400 TFLOP/s, copy 3000 GB/s" in work[0]
    fields = work[2].split()
    # 22.35 GFLOP in 0.9 ms: 24.8 TFLOP/s, 50% of 50; in 0.7 ms (tf32): 31.9, 8% of 400;
    # 343.8 MB in 0.9 ms: 382 GB/s, 13% of 3000; the floor: 22.35 GFLOP at 50 TFLOP/s = 0.45 ms.
    assert fields[3:] == ["22.3", "344", "0.45", "24.8", "50%", "31.9", "8%", "382", "13%", "900", "40.0", "12.0"]
    assert work[3].split()[-6:] == ["-", "-", "-", "-", "-", "-"]  # batch 32: no bandwidth; no first call
    assert work[4].split()[2:] == ["8.2", "103", "0.16", "-", "-", "-", "-", "-", "-", "-", "-", "-"]
    bare = bench.work_table(rows, {})
    assert "no roofline numbers" in bare[0] and bare[2].split()[5] == "-"  # no floor without ceilings
    targets = bench.target_table(bench.targets(rows, card))
    assert targets[1].split()[-4:] == ["0.60x", "<=", "0.80x", "pass"]
    assert next(t for t in targets if t.startswith("ResNet-50 b1 ")).split()[-4:] == ["-", "<=", "0.80x", "-"]
    assert next(t for t in targets if "tf32: mserve" in t).split()[-6:] == ["0.700", "ms", "<", "0.60", "ms", "miss"]
    assert bench.summary(rows, True, bench.targets(rows, card)) == (
        "mserve/torch eager ms: BERT b1 0.90/1.50, BERT b32 16.00/15.00, R50 b1 -/2.00, R50 b32 6.00/6.50; "
        "5 of 8 targets pass (2 miss, 1 not measured)")
    mock = bench.latency_table([{"label": "ResNet-50 b1", "mserve_ms": 3.0, "mserve_cpu_ms": 2.0}], "mock", False)
    assert mock[2].split()[2:] == ["3.00", "-", "2.00", "1.50x", "-", "-"]
    assert bench.fmt(float("nan")) == "-" and bench.fmt(None) == "-" and bench.fmt(0.5, ".0%") == "50%"


def test_quick_and_a_short_step_drop_the_least_important_variants_first():
    assert bench.choose_variants(True, False) == bench.GPU_VARIANTS
    assert bench.choose_variants(True, True) == ["torch_eager", "mserve", "mserve_tf32", "mserve_fp16",
                                                 "torch_autocast_fp16", "torch_graph"]
    assert bench.choose_variants(False, True) == bench.MOCK_VARIANTS
    rest = ["mserve_tf32", "mserve_nograph", "torch_eager_tf32", "torch_graph"]
    est = {"mserve_tf32": 10.0, "mserve_nograph": 10.0, "torch_eager_tf32": 5.0, "torch_graph": 5.0}
    assert bench.drop_to_fit(rest, est, 30.0) == (rest, [])
    assert bench.drop_to_fit(rest, est, 29.0) == (["mserve_tf32", "mserve_nograph", "torch_graph"],
                                                  ["torch_eager_tf32"])
    assert bench.drop_to_fit(rest, est, 12.0) == (["mserve_tf32"], ["torch_eager_tf32", "mserve_nograph",
                                                                    "torch_graph"])
    assert bench.drop_to_fit(rest, est, 1.0)[0] == []
    essential = ["torch_eager", "mserve", "mserve_cpu"]
    assert bench.drop_to_fit(essential, dict.fromkeys(essential, 100.0), 1.0) == (essential, [])
    assert bench.measurement_seconds(100.0, 10, cap=4.0) == 4.0
    assert bench.measurement_seconds(20.0, 10, cap=4.0) == 2.0
    assert bench.measurement_seconds(-5.0, 10, cap=4.0) == 0.3
    assert bench.estimate_seconds(1.0, 10, 200, cap=4.0) == pytest.approx(0.21)
    assert bench.estimate_seconds(50.0, 10, 200, cap=4.0, load_s=2.0) == pytest.approx(8.0)  # cut at 1.5 x cap
    assert bench.estimate_seconds(None, 10, 200, cap=4.0, load_s=3.0) == pytest.approx(9.0)


def test_the_roofline_numbers_reach_the_latency_step_for_the_same_card_only(tmp_path):
    numbers = {"gpu": "NVIDIA H100 80GB HBM3", "copy_gb_s": 3000.0, "gemm_fp32_tflops": 50.0}
    common.write_ceilings(tmp_path, numbers)
    got = common.read_ceilings(tmp_path, "NVIDIA H100 80GB HBM3")
    assert got is not None and got["gemm_fp32_tflops"] == 50.0 and got["measured_at"] > 0
    assert common.read_ceilings(tmp_path, "NVIDIA H200") is None
    stale = got["measured_at"] + common.CEILINGS_MAX_AGE_S + 1
    assert common.read_ceilings(tmp_path, "NVIDIA H100 80GB HBM3", now=stale) is None
    assert common.read_ceilings(tmp_path / "none", "NVIDIA H100 80GB HBM3") is None
    (tmp_path / common.CEILINGS_FILE).write_text("{not json")
    assert common.read_ceilings(tmp_path, "NVIDIA H100 80GB HBM3") is None


class _Tensor:
    """What the latency step reads of a PyTorch input tensor: .numpy()."""

    def __init__(self, a):
        self.a = a

    def numpy(self):
        return self.a


class _Module:
    def to(self, device):
        return self


class _DeviceMserve:
    """mserve.load for device "cuda" on the mock device: precision is taken and not used."""

    def __init__(self, loads):
        self.loads = loads

    def load(self, path, device="cpu", cuda_graphs=True, precision="fp32"):
        self.loads.append((device, cuda_graphs, precision))
        return mserve.load(path, device="mock" if device == "cuda" else device, cuda_graphs=cuda_graphs)


def _zoo_case(name="mlp", family="BERT-base", batch=1):
    path = ROOT / "tests" / "models" / f"{name}.onnx"
    feeds = input_sets(path.with_suffix(".npz"))[0]
    return latency.Case(f"{name} b{batch}", family, batch, None, _Module(), {k: _Tensor(v) for k, v in feeds.items()},
                        ["y"], path, bench.bert_work(batch)), feeds


def _args(device, quick, tmp_path):
    return type("Args", (), {"device": device, "quick": quick, "work": str(tmp_path), "step_seconds": 120.0})()


def test_the_latency_step_times_mserve_variants_and_reports_them(tmp_path, monkeypatch):
    """measure() and report() with mserve on the mock device standing in for the GPU (PyTorch's
    variants simulated): every variant loads with its options, the rows fill, the tables print."""
    case, feeds = _zoo_case()
    want = mserve.load(str(case.path)).predict(feeds)

    def eager(self, c, budget, tf32):
        c.row["torch_eager_tf32_ms" if tf32 else "torch_eager_ms"] = 5.0
        if not tf32:
            c.ref = latency._first(want)

    def graph(self, c, budget):
        c.row["torch_graph_error"] = "RuntimeError: capture failed"

    def autocast(self, c, budget):
        c.row["torch_autocast_fp16_ms"] = 4.0
    monkeypatch.setattr(latency.Runner, "torch_eager", eager)
    monkeypatch.setattr(latency.Runner, "torch_graph", graph)
    monkeypatch.setattr(latency.Runner, "torch_autocast", autocast)
    loads = []
    result = common.Result(None)
    seconds, notes = {}, []
    clock = latency.Clock(120.0)
    latency.measure(_FakeTorch(), _DeviceMserve(loads), _args("cuda", False, tmp_path), result, [case], clock,
                    seconds, notes, False, 1, 5, 0.2)
    assert result.status == "ok", result.failures
    assert loads == [("cuda", True, "fp32"), ("cuda", True, "tf32"), ("cuda", True, "fp16"), ("cuda", True, "bf16"),
                     ("cuda", False, "fp32")]
    row = case.row
    assert row["torch_autocast_fp16_ms"] == 4.0
    for key in ("mserve", "mserve_tf32", "mserve_fp16", "mserve_bf16", "mserve_nograph"):
        assert row[f"{key}_ms"] > 0 and row[f"{key}_rel_l2"] < 1e-6 and row[f"{key}_load_ms"] > 0
    assert row["placement"].startswith("4 nodes on cuda, 0 on cpu") and row["export"] == "cached"
    assert list(seconds) == ["exports"] + bench.GPU_VARIANTS
    latency.report(result, [row], "NVIDIA H100 80GB HBM3", {}, True, seconds, notes, clock)
    text = "\n".join(result.lines)
    assert "latency on NVIDIA H100 80GB HBM3" in text and "torch graph error: RuntimeError" in text
    assert "mlp b1: placement: 4 nodes on cuda" in text
    assert result.summary.startswith("mserve/torch eager ms: mlp b1 ") and "targets" in result.summary


def test_the_latency_step_fails_on_a_wrong_output_and_drops_variants_when_time_is_short(tmp_path, monkeypatch):
    case, feeds = _zoo_case()
    want = latency._first(mserve.load(str(case.path)).predict(feeds))

    def eager(self, c, budget, tf32):
        c.row["torch_eager_ms"] = 5.0
        c.ref = want * 1.01  # PyTorch and mserve disagree by 1%
    monkeypatch.setattr(latency.Runner, "torch_eager", eager)
    monkeypatch.setattr(latency, "_estimate", lambda row, variant, *a: 1000.0)  # nothing more fits
    result = common.Result(None)
    notes: list[str] = []
    latency.measure(_FakeTorch(), _DeviceMserve([]), _args("cuda", True, tmp_path), result, [case],
                    latency.Clock(120.0), {}, notes, False, 1, 5, 0.2)
    assert result.status == "fail" and "relative L2 9.9e-03 over 1e-03" in result.failures[0]
    assert notes[0] == "--quick: not measured: mserve_bf16, mserve_nograph, torch_eager_tf32"
    assert notes[1].startswith("dropped for time") and notes[1].endswith(
        "torch_graph, torch_autocast_fp16, mserve_tf32, mserve_fp16")
    assert "mserve_tf32_ms" not in case.row


class _FakeTorch:
    class cuda:  # noqa: N801 (the attribute PyTorch has)
        @staticmethod
        def empty_cache():
            pass


class _PrecisionMserve:
    """mserve.load for device "cuda" on the mock device; precision "bf16" answers 3% off (a
    float output scaled), "fp16" fails to load for models named in `broken`."""

    def __init__(self, broken=()):
        self.broken = set(broken)

    def load(self, path, device="cpu", precision="fp32"):
        if precision == "fp16" and Path(path).stem in self.broken:
            raise mserve.InvalidArgument("no fp16 here")
        model = mserve.load(path, device="mock" if device == "cuda" else device)
        if precision != "bf16":
            return model

        class Off:
            def predict(self, feeds):
                y = model.predict(feeds)
                scale = lambda v: v * np.float32(1.03) if np.asarray(v).dtype.kind == "f" else v  # noqa: E731
                return {k: scale(v) for k, v in y.items()} if isinstance(y, dict) else scale(y)
        return Off()


def test_the_zoo_step_reports_each_precisions_error_and_holds_it_to_its_tolerance():
    root = ROOT / "tests" / "models"
    got = zoo.precision_errors(_PrecisionMserve(broken={"resnet18"}), root, ["mlp", "resnet18"])
    assert got["worst"]["tf32"] == 0.0 and got["worst"]["fp16"] == 0.0
    assert got["worst"]["bf16"] == pytest.approx(0.03, rel=1e-3)  # under bf16's 5e-2: no problem
    assert got["problems"] == ["resnet18 fp16: InvalidArgument: no fp16 here"]
    mlp = next(line for line in got["lines"] if line.startswith("mlp "))
    assert mlp.split()[1:] == ["0.0e+00", "0.0e+00", "3.0e-02"]
    assert "error" in next(line for line in got["lines"] if line.startswith("resnet18 "))
    strict = dict(zoo.PRECISION_RTOL, bf16=1e-2)
    old = zoo.PRECISION_RTOL
    try:
        zoo.PRECISION_RTOL = strict
        over = zoo.precision_errors(_PrecisionMserve(), root, ["mlp"])
    finally:
        zoo.PRECISION_RTOL = old
    assert over["problems"] == ["mlp bf16: relative L2 3.0e-02 over 1e-02"]
    # Exact outputs (labels) that differ are counted, not failed; NaN where the CPU has none is.
    assert zoo.float_error({"y": np.array([1, 2])}, {"y": np.array([1, 3])}) == (0.0, 1)
    assert zoo.float_error(np.array([np.nan, 1.0], np.float32), np.array([0.0, 1.0], np.float32))[0] == float("inf")
