#!/usr/bin/env python3
"""The device checks of mserve's CUDA backend, in one run that ends in one summary table.

    python3 gpu_check.py [--device cuda|mock] [--quick] [--out DIR] [--steps a,b] [--seed N]

Steps (bench/gpu/<step>.py says what each checks):
  preflight  nvidia-smi, PyTorch's CUDA libraries, the cp312 wheel installed, ldd, cuda_available()
  ops        every op of the CUDA kernel table against the CPU (relative L2 < 1e-5, NaN-poisoned
             arenas, every node on the device)
  sanitizer  compute-sanitizer memcheck and racecheck on a subset
  zoo        the model zoo on the device against the CPU (relative L2 < 1e-4), with placements
  roofline   device copy GB/s and GEMM TFLOP/s through PyTorch (the latency step's ceilings)
  latency    BERT-base and ResNet-50 at batch 1 and 32: mserve (graphs, no graphs, TF32) against
             PyTorch eager (fp32, TF32) and CUDA graphs; first-call times, fractions of the
             measured ceilings, the targets as pass / miss

Each step runs as its own process under `timeout` (a crash or a hung kernel costs that step
only), with a time limit cut to what is left of --budget, logs to OUT/<step>.log and prints its
table; a failed step prints why and the end of its log, and the next step runs. OUT gets eight
files: gpu-check.log (this output), summary.json and the six step logs. Exit status 1 when a
step failed.

--device mock runs the same steps on mserve's mock device (host memory standing in for the GPU)
without a GPU: the GPU-only parts say "skip", so CI runs all of this code."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

# (step, longest it may run in seconds): the sum is over the budget on purpose, a step that ends
# early leaves its time to the next; each later step keeps at least MIN_STEP seconds.
STEPS = [("preflight", 100), ("ops", 120), ("sanitizer", 150), ("zoo", 90), ("roofline", 45), ("latency", 220)]
MIN_STEP = 20
POISONED = {"ops", "sanitizer", "zoo"}  # steps run with MSERVE_CUDA_POISON=1


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cuda", "mock"], default="cuda")
    p.add_argument("--quick", action="store_true", help="fewer cases, models and runs")
    p.add_argument("--out", help="where logs and summary go (default: $OUT, else ./gpu-check-out)")
    p.add_argument("--work", help="scratch: the installed wheel, exports (default: $TMPDIR/mserve-gpu-check)")
    p.add_argument("--wheel", help="the mserve wheel (default: the one beside this script, or dist/)")
    p.add_argument("--zoo", help="the model zoo folder (default: zoo/ beside this script, or tests/models)")
    p.add_argument("--steps", help="comma-separated subset of: " + ",".join(s for s, _ in STEPS))
    p.add_argument("--seed", type=int, help="the inputs' seed (default: a fresh one, printed)")
    p.add_argument("--budget", type=float, default=440.0, help="seconds for all steps together")
    p.add_argument("--python", default=sys.executable, help="the interpreter the steps run with")
    p.add_argument("--run-step", help=argparse.SUPPRESS)  # a worker: run one step in this process
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--step-seconds", type=float, default=120.0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---- a worker: one step, in this process ---------------------------------------------------


def worker(args: argparse.Namespace) -> int:
    from gpu import latency, ops, preflight, roofline, sanitizer, zoo
    from gpu.common import Result
    steps = {"preflight": preflight.run, "ops": ops.run, "sanitizer": sanitizer.run, "zoo": zoo.run,
             "latency": latency.run, "roofline": roofline.run, "sanitizer-target": sanitizer.target}
    result = Result(args.result)
    try:
        if args.run_step == "probe":
            result.data = preflight.probe()
        else:
            steps[args.run_step](args, result)
    except Exception as e:  # noqa: BLE001 (the step's verdict, with the traceback in its log)
        traceback.print_exc()
        result.fail(f"{type(e).__name__}: {e}")
    finally:
        if result.status == "fail" and not result.summary:
            result.summary = result.failures[0][:120] if result.failures else "failed"
        result.write()
    return 1 if result.status == "fail" else 0


# ---- the driver: every step as a child process, then the summary -------------------------------


class Tee:
    """The console, copied to OUT/gpu-check.log."""

    def __init__(self, path: Path):
        self.file: TextIO = path.open("w")

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def run_step(args: argparse.Namespace, name: str, limit: float, env: dict[str, str], out: Path, work: Path,
             say: Tee) -> dict[str, Any]:
    result_file = work / "results" / f"{name}.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.unlink(missing_ok=True)
    cmd = [args.python, "-u", str(Path(__file__).resolve()), "--run-step", name, "--device", args.device,
           "--seed", str(args.seed), "--work", str(work), "--result", str(result_file),
           "--step-seconds", f"{limit:.0f}"]
    for flag in ("wheel", "zoo"):
        if getattr(args, flag):
            cmd += [f"--{flag}", getattr(args, flag)]
    if args.quick:
        cmd.append("--quick")
    timeout_bin = shutil.which("timeout")
    if timeout_bin:  # coreutils' timeout ends the step's whole process group (compute-sanitizer's child too)
        cmd = [timeout_bin, "-k", "10", f"{limit:.0f}"] + cmd
    step_env = dict(env)
    if name in POISONED:
        step_env["MSERVE_CUDA_POISON"] = "1"
    t0 = time.monotonic()
    with (out / f"{name}.log").open("w") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=step_env, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit + 20)
        except subprocess.TimeoutExpired:  # no timeout(1) here, or it did not end the step
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        except KeyboardInterrupt:  # the step runs in its own session: end it with the driver
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    seconds = time.monotonic() - t0
    if result_file.exists():
        res = json.loads(result_file.read_text())
    else:
        if rc in (124, 137) or rc == -signal.SIGKILL:
            why = f"timed out after {limit:.0f} s"
        elif rc < 0:
            why = f"killed by signal {-rc} ({signal.Signals(-rc).name})"
        else:
            why = f"ended (rc {rc}) without a verdict"
        res = {"status": "fail", "summary": why, "lines": [], "failures": [why], "data": {}}
    res.update(step=name, seconds=round(seconds, 1), rc=rc, limit=round(limit))
    for line in res["lines"]:
        say("  " + line)
    if res["status"] == "fail":
        for why in res["failures"][:12]:
            say(f"  FAIL {why[:400]}")
        # The log's end: preflight's diagnosis, or what a step that printed no table left.
        lines = 40 if name == "preflight" else 0 if res["lines"] else 20
        tail = (out / f"{name}.log").read_text(errors="replace").splitlines()[-lines:] if lines else []
        if tail:
            say(f"  -- last lines of {out / (name + '.log')}:")
        for line in tail:
            say("  | " + line[:300])
    say(f"{res['status'].upper():<4} {name} ({seconds:.0f} s): {res['summary']}")
    return res


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'step':<10} {'status':<6} {'time':>6}  key numbers", "-" * 100]
    for r in rows:
        lines.append(f"{r['step']:<10} {r['status']:<6} {r['seconds']:>5.0f}s  {r['summary']}")
    return lines


def drive(args: argparse.Namespace) -> int:
    out = Path(args.out or os.environ.get("OUT") or "gpu-check-out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or Path(os.environ.get("TMPDIR", "/tmp")) / "mserve-gpu-check").resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little")
    names = [s for s, _ in STEPS]
    chosen = names if not args.steps else [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in names]
    if unknown:
        print(f"unknown step(s) {unknown}; the steps are {names}", file=sys.stderr)
        return 2
    say = Tee(out / "gpu-check.log")
    start = time.monotonic()
    say(f"== mserve GPU check: device {args.device}{' (quick)' if args.quick else ''}, seed {args.seed} "
        f"(rerun the same inputs with --seed {args.seed}), {time.strftime('%Y-%m-%d %H:%M:%S')}")
    say(f"   python {args.python}, out {out}, work {work}, budget {args.budget:.0f} s")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    rows: list[dict[str, Any]] = []
    plan = [(s, limit) for s, limit in STEPS if s in chosen]
    for i, (name, longest) in enumerate(plan):
        left = args.budget - (time.monotonic() - start) - MIN_STEP * (len(plan) - i - 1)
        limit = min(float(longest), left)
        say(f"== {name} (limit {max(limit, 0):.0f} s)")
        if limit < MIN_STEP / 2:
            res = {"step": name, "status": "skip", "seconds": 0.0, "summary": "no time left in the budget",
                   "lines": [], "failures": [], "data": {}}
            say(f"SKIP {name}: no time left in the budget")
        else:
            res = run_step(args, name, limit, env, out, work, say)
        rows.append(res)
        if name == "preflight":
            env.update(res.get("data", {}).get("env", {}))  # PYTHONPATH / LD_LIBRARY_PATH for mserve
    total = time.monotonic() - start
    failed = [r["step"] for r in rows if r["status"] == "fail"]
    (out / "summary.json").write_text(json.dumps(
        {"device": args.device, "quick": args.quick, "seed": args.seed, "seconds": round(total, 1), "failed": failed,
         "steps": rows}, indent=1, default=str))
    gpu = next((r["data"].get("gpu") for r in rows if r["step"] == "preflight" and r.get("data")), None)
    say("")
    say(f"== summary: device {args.device}{f' ({gpu})' if gpu else ''}, {total:.0f} s, seed {args.seed}")
    for line in summary_table(rows):
        say(line)
    say(f"FAILED: {', '.join(failed)}" if failed else "all steps ok or skipped")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.run_step:
        return worker(args)
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
