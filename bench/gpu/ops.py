"""Step 2: every op of the CUDA kernel table against the CPU's kernels.

Each case of op_cases.py for an op that mserve._core_cuda.ops() lists is loaded twice, with
device="cuda" (or "mock") and with device="cpu", and run on two fresh draws of random inputs
(the second run reuses the device arena the first one filled: a kernel that skips part of its
output shows there too). Float32 outputs must agree within a relative L2 error of 1e-5, with NaN
and infinities in the same places; other dtypes exactly. MSERVE_CUDA_POISON=1 (set by the driver)
makes the backend fill new device arenas with NaN, so an output element no kernel wrote is NaN.
The placement must show every node on the device: a node the backend quietly left on the CPU
fails its case. An op in the kernel table with no case here fails the step (its kernel would go
untested). On the GPU, each activation also runs through mserve._core_cuda.activation() (the bare
kernel, no planner) on a million values with the edge values mixed in."""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

from . import op_cases
from .common import OP_RTOL, Result, compare_outputs, cuda_ops, device_unavailable, fmt_op

# The sanitizer's subset: these ops' cheap cases in this order, then any others, SANITIZER_CASES in all.
SANITIZER_ORDER = ["Add", "Relu", "Gelu", "Where", "Softmax", "LayerNormalization", "Gather", "Transpose",
                   "ReduceMean", "Concat", "MatMul", "FusedMatMul", "MultiHeadAttention", "Conv"]
SANITIZER_CASES = 12


class CaseResult:
    def __init__(self, case: op_cases.Case):
        self.case = case
        self.ok = True
        self.err = 0.0
        self.problems: list[str] = []
        self.placement = ""
        self.ms = 0.0

    def fail(self, why: str) -> None:
        self.ok = False
        self.problems.append(why)


def _placement_problems(case: op_cases.Case, dev: Any, cpu: Any, device: str) -> tuple[str, list[str]]:
    p, c = dev.placement(), cpu.placement()
    if p is None or c is None:
        return "no plan", ["no plan was made at load (undeclared input shapes?)"]
    text = f"{p.device_nodes} on {device}, {p.cpu_nodes} on cpu, {p.copies} copies, {p.uploads} uploads"
    problems = [f"fell back to the CPU: {op} {node}: {why}" for node, op, why in p.fallbacks]
    if p.cpu_nodes and not p.fallbacks:
        problems.append(f"{p.cpu_nodes} node(s) on the CPU")
    nodes = c.cpu_nodes  # the loaded graph's node count (the CPU model runs them all)
    if not case.pattern and nodes != 1:
        problems.append(f"the one-node model has {nodes} nodes after loading")
    if p.device_nodes != nodes and not problems:
        problems.append(f"{p.device_nodes} node(s) on {device}, {nodes} expected")
    return text, problems


def _fused_ops(cpu: Any, feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """The op types of the optimized graph and how many nodes of each (profile() names them)."""
    return {op: calls // 2 for op, calls, _ in cpu.profile(feeds, runs=2)}


def run_case(mserve: Any, case: op_cases.Case, device: str, seed: int, index: int, draws: int = 2) -> CaseResult:
    r = CaseResult(case)
    rng = np.random.default_rng([seed, index])
    t0 = time.perf_counter()
    try:
        graph = case.make(rng)
        model = graph.model()
        cpu = mserve.load(model, device="cpu", optimize=case.optimize)
        precision = {"precision": case.precision} if device == "cuda" and case.precision != "fp32" else {}
        dev = mserve.load(model, device=device, optimize=case.optimize, **precision)
    except Exception as e:  # noqa: BLE001 (every failure is the case's result)
        r.fail(f"load: {type(e).__name__}: {e}")
        return r
    r.placement, problems = _placement_problems(case, dev, cpu, device)
    for why in problems:
        r.fail(why)
    rtol = case.rtol or OP_RTOL
    for draw in range(draws):
        feeds = graph.draw(rng)
        if case.pattern and draw == 0:
            try:
                fused = _fused_ops(cpu, feeds)
            except Exception as e:  # noqa: BLE001
                fused = {}
                r.fail(f"profile: {type(e).__name__}: {e}")
            r.placement += " [" + " ".join(f"{op}x{n}" for op, n in sorted(fused.items())) + "]"
            if fused and case.op[1] not in fused:
                r.fail(f"the pattern no longer fuses into {case.op[1]}: the optimized graph has {sorted(fused)}")
        if case.error:
            outcomes = []
            for m in (cpu, dev):
                try:
                    m.predict(feeds)
                    outcomes.append("ran")
                except mserve.Error as e:
                    outcomes.append(f"refused ({type(e).__name__})")
            if outcomes[1] == "ran" or outcomes[0] == "ran":
                r.fail(f"invalid inputs: cpu {outcomes[0]}, {device} {outcomes[1]}; both must refuse them")
            continue
        try:
            want = cpu.predict(feeds)
            got = dev.predict(feeds)
        except Exception as e:  # noqa: BLE001
            r.fail(f"predict: {type(e).__name__}: {e}")
            break
        err, diffs = compare_outputs(got, want, rtol)
        r.err = max(r.err, err)
        for d in diffs:
            r.fail(d)
        if diffs:
            break
    r.ms = (time.perf_counter() - t0) * 1e3
    return r


def run_activation_kernels(mserve: Any, ops: set[tuple[str, str]], seed: int) -> list[tuple[str, bool, float, str]]:
    """Each activation of the kernel table through the bare kernel: (label, ok, error, problem)."""
    from mserve import _core_cuda  # type: ignore[attr-defined]
    rows = []
    rng = np.random.default_rng([seed, 1 << 20])
    for op, attrs, row, a, b in op_cases.ACTIVATIONS:
        if ("", op) not in ops:
            continue
        label = f"{op} activation({row}) 1M+edges"
        x = np.concatenate([op_cases.EDGES, (rng.standard_normal(1 << 20) * 4).astype(np.float32)])
        try:
            kw = {k: v for k, v in (("alpha", a), ("beta", b)) if v is not None}
            got = _core_cuda.activation(row, x, **kw)
            g = op_cases.Graph(rng)
            g.input("x", x.shape)
            g.node(op, ["x"], ["y"], **attrs)
            g.output("y")
            want = mserve.load(g.model(), optimize=False).predict(x)
            err, diffs = compare_outputs(got, want, OP_RTOL)
            rows.append((label, not diffs, err, "; ".join(diffs)))
        except Exception as e:  # noqa: BLE001
            rows.append((label, False, float("inf"), f"{type(e).__name__}: {e}"))
    return rows


def run(args: Any, result: Result, subset: bool = False) -> None:
    import mserve
    device = args.device
    why = device_unavailable(device)
    if why:
        result.fail(why)
        result.summary = "mserve cannot use the device: " + why[:80]
        return
    table = cuda_ops()
    if device == "cuda":
        assert table is not None  # device_unavailable("cuda") == "" means the backend imported
        wanted: set[tuple[str, str]] | None = set(table)
    else:
        wanted = None  # the mock device runs every case: the builders stay working before their kernels
    if table is not None:
        print(f"CUDA kernel table: {len(table)} ops: {', '.join(fmt_op(o) for o in table)}")
    uncovered = sorted(set(table or []) - op_cases.covered_ops())
    cases = op_cases.cases_for(wanted, quick=args.quick, small_only=subset)
    if subset:  # one cheap case of each kernel family first, cuBLAS and cuDNN last (slowest to start)
        rank = {op: i for i, op in enumerate(SANITIZER_ORDER)}
        cases = sorted(cases, key=lambda c: rank.get(c.op[1], len(rank)))[:SANITIZER_CASES]
    print(f"{len(cases)} cases on device {device!r}, seed {args.seed}")
    results: list[CaseResult] = []
    for case in cases:
        r = run_case(mserve, case, device, args.seed, op_cases.CASES.index(case))
        results.append(r)
        state = "ok  " if r.ok else "FAIL"
        print(f"{state} {case.label:<62} err {r.err:8.1e}  {r.placement}  {r.ms:7.1f} ms"
              + "".join(f"\n       {p}" for p in r.problems), flush=True)
    direct: list[tuple[str, bool, float, str]] = []
    if device == "cuda" and not subset and wanted:
        direct = run_activation_kernels(mserve, wanted, args.seed)
        for label, ok, err, problem in direct:
            print(f"{'ok  ' if ok else 'FAIL'} {label:<62} err {err:8.1e}  {problem}", flush=True)
    _report(result, results, direct, uncovered, table, device)


def _report(result: Result, results: list[CaseResult], direct: list[tuple[str, bool, float, str]],
            uncovered: list[tuple[str, str]], table: list[tuple[str, str]] | None, device: str) -> None:
    per_op: dict[tuple[str, str], list[tuple[bool, float, str]]] = defaultdict(list)
    for r in results:
        per_op[r.case.op].append((r.ok, r.err, r.problems[0] if r.problems else ""))
    for label, ok, err, problem in direct:
        op = ("", label.split()[0])
        per_op[op].append((ok, err, problem))
    result.line(f"{'op':<34} {'cases':>5} {'ok':>4} {'max rel L2':>10}  first problem")
    for op in sorted(per_op, key=lambda o: (o[0], o[1])):
        rows = per_op[op]
        n_ok = sum(ok for ok, _, _ in rows)
        worst = max(err for _, err, _ in rows)
        problem = next((p for ok, _, p in rows if not ok), "")
        line = f"{fmt_op(op):<34} {len(rows):>5} {n_ok:>4} {worst:>10.1e}  {problem[:70]}"
        if n_ok < len(rows):
            result.fail(f"{fmt_op(op)}: {len(rows) - n_ok} of {len(rows)} case(s) failed: {problem}")
        result.line(line)
    for op in uncovered:
        result.line(f"{fmt_op(op):<34} {0:>5} {0:>4} {'':>10}  no case in bench/gpu/op_cases.py")
    n_cases = len(results) + len(direct)
    n_fail = sum(not r.ok for r in results) + sum(not ok for _, ok, _, _ in direct)
    worst_all = max([r.err for r in results if r.ok] + [e for _, ok, e, _ in direct if ok] + [0.0])
    if uncovered:
        names = ", ".join(fmt_op(o) for o in uncovered)
        if device == "cuda":
            result.fail(f"ops with a CUDA kernel but no case: {names}")
        else:
            print(f"note: the kernel table has ops without a case: {names}")
    result.summary = (f"{len(per_op)} ops, {n_cases} cases, {n_fail} failed, max rel L2 {worst_all:.1e}"
                      + (f", {len(uncovered)} ops without a case" if uncovered else ""))
    result.data = {
        "kernel_table": [list(o) for o in table] if table is not None else None,
        "cases": [{"op": list(r.case.op), "case": r.case.name, "ok": r.ok, "rel_l2": r.err, "placement": r.placement,
                   "problems": r.problems, "ms": round(r.ms, 2)} for r in results],
        "activation_kernels": [{"case": label, "ok": ok, "rel_l2": err, "problem": p} for label, ok, err, p in direct],
        "uncovered": [list(o) for o in uncovered],
    }
