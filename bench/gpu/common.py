"""What the steps share: the verdict file, the comparison of outputs, timing, and the question
whether mserve's device can run here."""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Relative L2 error ||got - want|| / ||want|| allowed against the CPU: one kernel in float32, and a
# whole model (many kernels, other summation orders) in float32.
OP_RTOL = 1e-5
MODEL_RTOL = 1e-4

HERE = Path(__file__).resolve().parent


def zoo_dir(given: str | None = None) -> Path:
    """The model zoo: --zoo, else zoo/ beside gpu_check.py (the bundle), else tests/models."""
    if given:
        return Path(given)
    bundle = HERE.parent / "zoo"
    return bundle if bundle.is_dir() else HERE.parent.parent / "tests" / "models"


class Result:
    """A step's verdict: status ok / fail / skip, the key numbers for the summary table, the lines
    the driver prints under the step's name, and data for summary.json. Steps log to stdout."""

    def __init__(self, path: str | None):
        self.path = path
        self.status = "ok"
        self.summary = ""
        self.lines: list[str] = []
        self.data: dict[str, Any] = {}
        self.failures: list[str] = []

    def fail(self, why: str) -> None:
        """Marks the step failed (it keeps running) and logs why."""
        self.status = "fail"
        self.failures.append(why)
        print(f"FAIL {why}", flush=True)

    def skip(self, why: str) -> None:
        if self.status != "fail":
            self.status = "skip"
        self.summary = why
        print(f"SKIP {why}", flush=True)

    def line(self, text: str) -> None:
        """A line of the step's table: printed to the log now and by the driver to the console."""
        self.lines.append(text)
        print(text, flush=True)

    def write(self) -> None:
        if self.path is None:
            return
        body = {"status": self.status, "summary": self.summary, "lines": self.lines,
                "failures": self.failures, "data": self.data}
        Path(self.path).write_text(json.dumps(body, indent=1, default=str))


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    norm = float(np.linalg.norm(w))
    return float(np.linalg.norm(g - w)) / (norm if norm > 0 else 1.0)


def compare(got: Any, want: Any, rtol: float) -> tuple[float, str]:
    """(relative L2 error, "" or what differs) of one output against the CPU's. Floats: NaN where
    the CPU has NaN and only there, the same infinities, relative L2 over the rest under rtol;
    other dtypes equal. A list of dicts (a classifier's ZipMap) is compared as its matrix."""
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return float("inf"), f"a list of {len(want)} expected, got {type(got).__name__}"
        if want and isinstance(want[0], dict):
            if [list(r) for r in got] != [list(r) for r in want]:
                return float("inf"), "ZipMap labels differ"
            got = np.array([list(r.values()) for r in got], np.float32)
            want = np.array([list(r.values()) for r in want], np.float32)
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf"), f"shape {got.shape}, want {want.shape}"
    if got.dtype != want.dtype:
        return float("inf"), f"dtype {got.dtype}, want {want.dtype}"
    if want.dtype.kind not in "fc":
        if want.dtype == object:
            same = [str(a) for a in got.ravel()] == [str(b) for b in want.ravel()]
        else:
            same = bool(np.array_equal(got, want))
        return (0.0, "") if same else (1.0, f"{int(np.sum(got != want))} of {want.size} values differ")
    nan_w, nan_g = np.isnan(want), np.isnan(got)
    if not np.array_equal(nan_w, nan_g):
        return float("inf"), (f"NaN at {int(np.sum(nan_g & ~nan_w))} place(s) where the CPU has a number, "
                              f"a number at {int(np.sum(nan_w & ~nan_g))} where it has NaN")
    inf_w = np.isinf(want)
    if not np.array_equal(got[inf_w], want[inf_w]) or np.any(np.isinf(got[~inf_w])):
        return float("inf"), "infinities differ"
    finite = ~nan_w & ~inf_w
    err = rel_l2(got[finite], want[finite])
    return err, "" if err < rtol else f"relative L2 error {err:.2e} over {rtol:.0e}"


def compare_outputs(got: Any, want: Any, rtol: float) -> tuple[float, list[str]]:
    """compare() over every output (a dict name -> value, or one value): (worst error, problems)."""
    if not isinstance(want, dict):
        got, want = {"y": got}, {"y": want}
    worst, problems = 0.0, []
    if not isinstance(got, dict) or list(got) != list(want):
        return float("inf"), [f"outputs {list(got) if isinstance(got, dict) else type(got).__name__}, "
                              f"want {list(want)}"]
    for name in want:
        err, why = compare(got[name], want[name], rtol)
        worst = max(worst, err)
        if why:
            problems.append(f"{name}: {why}")
    return worst, problems


def median_ms(fn: Callable[[], Any], warmup: int, runs: int, budget_s: float) -> tuple[float, int]:
    """(median milliseconds of fn(), runs timed): warm-up calls first, then up to `runs` timed
    calls, fewer when they would exceed `budget_s` (at least 3). fn must return once its work is
    done (synchronize inside for device work)."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
        if time.perf_counter() - start > budget_s / 2:
            break
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < runs and (len(times) < 3 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), len(times)


# The card's ceilings (the roofline step's numbers) are kept in the work folder, where the latency
# step reads them: it runs before the roofline step and divides by them. A GPU machine is held for
# at most half an hour, so older numbers, or another card's, are not used.
CEILINGS_FILE = "ceilings.json"
CEILINGS_MAX_AGE_S = 1800.0


def write_ceilings(work: str | Path, numbers: dict[str, Any]) -> Path:
    """Stores the roofline numbers ("gpu": the card's name, "copy_gb_s", "gemm_<fp32|tf32|bf16>_tflops")
    with the time they were measured."""
    path = Path(work) / CEILINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(numbers, measured_at=time.time()), indent=1))
    return path


def read_ceilings(work: str | Path, card: str, now: float | None = None,
                  max_age_s: float = CEILINGS_MAX_AGE_S) -> dict[str, Any] | None:
    """The stored roofline numbers when they are of `card` and fresh, else None."""
    path = Path(work) / CEILINGS_FILE
    try:
        numbers = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(numbers, dict) or numbers.get("gpu") != card:
        return None
    age = (time.time() if now is None else now) - float(numbers.get("measured_at", 0.0))
    return numbers if 0 <= age <= max_age_s else None


def device_unavailable(device: str) -> str:
    """"" when mserve can load models on `device` here, else why not (mserve's own message)."""
    if device != "cuda":
        return ""
    import mserve
    from mserve import cuda
    try:
        cuda.backend()
    except mserve.Unavailable as e:
        return str(e)
    return ""


def cuda_ops() -> list[tuple[str, str]] | None:
    """The (domain, op) rows of the CUDA kernel table, or None where mserve has no CUDA backend
    (the backend module imports without a GPU: the table is known on any machine it is built on)."""
    try:
        from mserve import _core_cuda  # type: ignore[attr-defined]
    except ImportError:
        return None
    return [(str(d), str(o)) for d, o in _core_cuda.ops()]


def fmt_op(op: tuple[str, str]) -> str:
    return op[1] if not op[0] else f"{op[0]}.{op[1]}"

