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

from gpu import common, op_cases, ops  # noqa: E402  (bench/ is not a package)

STEPS = ["preflight", "ops", "sanitizer", "zoo", "latency", "roofline"]


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
