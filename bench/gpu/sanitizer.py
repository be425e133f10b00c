"""Step 3: compute-sanitizer's memcheck (out-of-bounds and misaligned device accesses, API errors)
and racecheck (shared-memory hazards) over a subset: the first cheap case of up to eight ops of
the kernel table and one small zoo model, in a process of its own under each tool. Skipped where
compute-sanitizer is not installed, and where it refuses the device (as it does on some
virtualized machines), with its message."""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from . import ops, zoo
from .common import HERE, Result
from .preflight import sh

TOOLS = ("memcheck", "racecheck")
ZOO_MODEL = "mlp"
REFUSALS = ("Device not supported", "Unable to find injection library", "Target application returned an error",
            "No supported devices")


def find_tool() -> str | None:
    found = shutil.which("compute-sanitizer")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"):
        path = Path(root or "/nonexistent") / "bin" / "compute-sanitizer"
        if path.exists():
            return str(path)
    return None


def target(args: Any, result: Result) -> None:
    """What runs under the sanitizer: the op subset, then the zoo model."""
    ops.run(args, result, subset=True)
    models = Result(None)
    zoo.run(args, models, names=[ZOO_MODEL])
    result.lines += models.lines
    if models.status == "fail":
        result.status = "fail"
        result.failures += models.failures


def run(args: Any, result: Result) -> None:
    if args.device != "cuda":
        result.skip("needs a CUDA device (device mock)")
        return
    tool = find_tool()
    if tool is None:
        result.skip("compute-sanitizer not available")
        return
    sh([tool, "--version"], 30)
    per_tool = max(20.0, (args.step_seconds - 10) / len(TOOLS))
    work = Path(args.work)
    parts = []
    for name in TOOLS:
        inner = work / f"sanitizer-{name}.json"
        inner.unlink(missing_ok=True)
        cmd = [tool, "--tool", name, "--error-exitcode", "86", "--print-limit", "20", sys.executable,
               str(HERE.parent / "gpu_check.py"), "--run-step", "sanitizer-target", "--device", "cuda",
               "--seed", str(args.seed), "--work", str(work), "--result", str(inner)]
        if args.zoo:
            cmd += ["--zoo", args.zoo]
        rc, out = sh(cmd, per_tool)
        errors = re.search(r"ERROR SUMMARY: (\d+) error", out)
        hazards = re.search(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, (\d+) warnings?\)", out)
        inner_ok = inner.exists() and json.loads(inner.read_text())["status"] != "fail"
        refused = next((r for r in REFUSALS if r in out), None)
        row: dict[str, Any] = {"tool": name, "rc": rc}
        if errors is None and refused:
            row["status"] = "refused"
            parts.append(f"{name} refused the device")
            result.line(f"{name:<10} not run: compute-sanitizer says '{refused}'")
        elif rc == 124 or errors is None:
            row["status"] = "fail"
            result.fail(f"{name}: {'timed out' if rc == 124 else f'no error summary (rc {rc})'}")
            parts.append(f"{name} {'timed out' if rc == 124 else 'failed'}")
        else:
            n = int(errors.group(1))
            row.update(status="ok" if n == 0 else "fail", errors=n)
            note = f", {hazards.group(3)} race warning(s)" if hazards and int(hazards.group(3)) else ""
            result.line(f"{name:<10} {n} error(s){note}, rc {rc}")
            parts.append(f"{name} {n} errors{note}")
            if n:
                result.fail(f"{name}: {n} error(s); see the log")
        if not inner_ok and row["status"] != "refused":
            result.fail(f"{name}: the checks under the sanitizer failed or did not finish")
        result.data.setdefault("tools", []).append(row)
    if all(r["status"] == "refused" for r in result.data.get("tools", [])):
        result.skip("compute-sanitizer refused the device: " + "; ".join(parts))
        return
    result.summary = "; ".join(parts)
