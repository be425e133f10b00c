"""Step 5: latency of BERT-base (batch 1 and 32, sequence 128) and ResNet-50 (batch 1 and 32):
mserve against PyTorch on the same card, read against the card's ceilings and the issue's targets.

The models are built on the machine from transformers' BertConfig() (bert-base's sizes) and
torchvision's resnet50(), with random weights from a fixed seed (nothing is downloaded), and
exported to ONNX (TorchScript exporter, opset 17, static shapes; the dynamo exporter when that
fails), one file per batch size, kept in the work folder for a rerun (an export's seconds are in
the log and summary.json). Each model runs these variants (bench.GPU_VARIANTS, in this order):

  torch_eager       PyTorch eager, TF32 off; its output is the reference
  mserve            mserve device="cuda", CUDA graphs on, float32; also its first call: the load,
                    the first predict and the second (where the plan is recorded as a graph)
  mserve_tf32       mserve precision="tf32"
  mserve_fp16       mserve precision="fp16"
  mserve_bf16       mserve precision="bf16"
  mserve_nograph    mserve cuda_graphs=False: what recording the plan as one graph saves
  torch_eager_tf32  PyTorch eager with TF32 on: mserve_tf32's peer
  torch_autocast_fp16  PyTorch eager under torch.autocast("cuda", float16): mserve_fp16's peer
  torch_graph       PyTorch replaying a captured CUDA graph, TF32 off

Each is the median of up to N calls after warm-up. mserve's time is a user's: numpy in, numpy
out, copies included; PyTorch's inputs and outputs stay on the device. PyTorch's BERT uses its
default attention (SDPA), the exported one plain MatMul/Softmax, with the same weights. mserve's
float32 output must match PyTorch's within a relative L2 error of 1e-3 (checked on the first call
and again on a replayed graph); the tf32, fp16 and bf16 errors are reported.

Time: each measurement gets an equal share of what is left of the step (at most a few seconds);
--quick drops the two least important variants (bench.IMPORTANCE), and when the estimate of the
variants still to run exceeds the time left, more are dropped from the least important end. The
card's GEMM rates and copy bandwidth come from the roofline step's numbers (common.read_ceilings);
this step runs first, so when there are none of this card it runs the roofline step's code once
in a process of its own. The tables: latency (ms, ratios at the same precision), work (FLOPs,
fewest bytes, the floor, the fraction of the GEMM rate and of the copy bandwidth achieved, the
first call) and the targets, pass or miss (reported, never failing the step).

With device "mock" (only where torch imports) mserve on the mock device is timed against mserve on
the CPU: the cost of the device plumbing (copies, arenas) with CPU kernels; BERT b1 and ResNet-50 b1
(and b32 without --quick)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import bench
from .common import HERE, Result, device_unavailable, median_ms, read_ceilings, rel_l2

VS_TORCH_RTOL = 1e-3
RESERVE_S = 15.0  # of the step's time, kept for the tables and the verdict
FP32_VARIANTS = {"mserve", "mserve_nograph", "mserve_cpu"}  # held to VS_TORCH_RTOL
LOAD_OPTIONS: dict[str, dict[str, Any]] = {"mserve": {}, "mserve_tf32": {"precision": "tf32"},
                                           "mserve_fp16": {"precision": "fp16"}, "mserve_bf16": {"precision": "bf16"},
                                           "mserve_nograph": {"cuda_graphs": False}, "mserve_cpu": {}}


class Clock:
    """The step's deadline: its time limit less RESERVE_S."""

    def __init__(self, seconds: float):
        self.start = time.monotonic()
        self.deadline = self.start + seconds - RESERVE_S

    def left(self) -> float:
        return self.deadline - time.monotonic()


def _stopped(signum: int, frame: Any) -> None:
    raise TimeoutError("stopped at the step's time limit; the tables show what was measured")


def set_tf32(torch: Any, on: bool) -> None:
    """TF32 for PyTorch's matrix products and cuDNN convolutions. Always through these two legacy
    switches: they keep PyTorch's newer per-backend precision settings in step, and mixing the
    two interfaces is an error in recent versions."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def export(torch: Any, module: Any, inputs: tuple[Any, ...], path: Path, names_in: list[str],
           names_out: list[str]) -> str:
    """Exports `module` once (kept in the work folder for a rerun); returns how."""
    if path.exists():
        return "cached"
    path.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    kw: dict[str, Any] = {"input_names": names_in, "output_names": names_out, "do_constant_folding": True}
    try:
        try:
            torch.onnx.export(module, inputs, str(path), opset_version=17, dynamo=False, **kw)
        except TypeError:  # a torch without the dynamo switch: the TorchScript exporter is all it has
            torch.onnx.export(module, inputs, str(path), opset_version=17, **kw)
        return "torchscript exporter"
    except Exception as e:  # noqa: BLE001 (then the other exporter)
        errors.append(f"torchscript: {type(e).__name__}: {e}")
    try:
        torch.onnx.export(module, inputs, str(path), opset_version=18, dynamo=True, external_data=False, **kw)
        return "dynamo exporter"
    except Exception as e:  # noqa: BLE001
        errors.append(f"dynamo: {type(e).__name__}: {e}")
    path.unlink(missing_ok=True)
    raise RuntimeError("export failed: " + " | ".join(errors))


class Case:
    """One row of the tables: a model at one batch size, its export, its inputs, its numbers."""

    def __init__(self, label: str, family: str, batch: int, exported: Any, timed: Any, inputs: dict[str, Any],
                 outputs: list[str], path: Path, work: bench.Work):
        self.exported, self.timed, self.inputs, self.outputs, self.path = exported, timed, inputs, outputs, path
        self.row: dict[str, Any] = {"label": label, "family": family, "batch": batch, "flops": work.flops,
                                    "min_bytes": work.min_bytes, "params": work.params}
        self.ref: np.ndarray | None = None  # PyTorch eager's output, TF32 off
        self.args: tuple[Any, ...] = ()  # the inputs on the device PyTorch runs on

    @property
    def label(self) -> str:
        return str(self.row["label"])


def bert_models(torch: Any) -> tuple[Any, Any, int]:
    """BERT-base with random weights: (the module to export: plain attention; the module PyTorch
    is timed with: its default attention, the same weights; the vocabulary size)."""
    import transformers
    torch.manual_seed(0)
    try:
        config = transformers.BertConfig(attn_implementation="eager")  # plain MatMul/Softmax attention to export
    except TypeError:
        config = transformers.BertConfig()
    model = transformers.BertModel(config).eval()

    class Outputs(torch.nn.Module):  # tuple outputs for the exporter
        def __init__(self, m: Any):
            super().__init__()
            self.m = m

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         return_dict=False)
            return out[0], out[1]

    timed = Outputs(model)
    try:  # PyTorch timed as users run it: its default attention (SDPA), the same weights
        fast = transformers.BertModel(transformers.BertConfig()).eval()
        fast.load_state_dict(model.state_dict())
        timed = Outputs(fast)
    except Exception as e:  # noqa: BLE001
        print(f"PyTorch's default attention not used ({type(e).__name__}: {e}); timing the eager one")
    return Outputs(model), timed, int(config.vocab_size)


def bert_inputs(torch: Any, batch: int, seq: int, vocab: int) -> dict[str, Any]:
    """Token ids, an attention mask with padding at the end (a different length per sequence, so
    the mask matters) and two token types."""
    g = torch.Generator().manual_seed(1 + batch)
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    for i in range(batch):
        mask[i, seq - (seq // 8 + 7 * i) % (seq // 2):] = 0
    types = torch.zeros(batch, seq, dtype=torch.int64)
    types[:, seq // 2:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def build_cases(torch: Any, work: Path, batches: dict[str, list[int]], seq: int = 128) -> list[Case]:
    cases = []
    if batches.get("BERT-base"):
        exported, timed, vocab = bert_models(torch)
        for b in batches["BERT-base"]:
            cases.append(Case(f"BERT-base b{b} s{seq}", "BERT-base", b, exported, timed,
                              bert_inputs(torch, b, seq, vocab), ["last_hidden_state", "pooler_output"],
                              work / f"bert_base_b{b}_s{seq}.onnx", bench.bert_work(b, seq)))
    if batches.get("ResNet-50"):
        import torchvision
        torch.manual_seed(0)
        model = torchvision.models.resnet50(weights=None).eval()
        for b in batches["ResNet-50"]:
            x = torch.randn(b, 3, 224, 224, generator=torch.Generator().manual_seed(1))
            cases.append(Case(f"ResNet-50 b{b}", "ResNet-50", b, model, model, {"image": x}, ["logits"],
                              work / f"resnet50_b{b}.onnx", bench.resnet50_work(b)))
    return cases


def _feeds(model: Any, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """mserve's feeds: by name, else in order (an exporter may rename or drop inputs)."""
    arrays = [v.numpy() for v in inputs.values()]
    named = {k: v.numpy() for k, v in inputs.items()}
    return {s.name: named.get(s.name, arrays[i]) for i, s in enumerate(model.inputs)}


def _first(y: Any) -> np.ndarray:
    if isinstance(y, dict):
        y = next(iter(y.values()))
    if isinstance(y, (tuple, list)):
        y = y[0]
    return np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)


# ---- the variants ----------------------------------------------------------------------------


class Runner:
    """Runs one variant on one case and leaves its numbers in the case's row."""

    def __init__(self, torch: Any, mserve: Any, device: str, result: Result, warmup: int, runs: int):
        self.torch, self.mserve, self.device, self.result = torch, mserve, device, result
        self.on_gpu = device == "cuda"
        self.warmup, self.runs = warmup, runs

    def __call__(self, variant: str, case: Case, budget: float) -> None:
        if variant.startswith("torch_eager"):
            self.torch_eager(case, budget, tf32=variant.endswith("tf32"))
        elif variant == "torch_autocast_fp16":
            self.torch_autocast(case, budget)
        elif variant == "torch_graph":
            self.torch_graph(case, budget)
        else:
            self.mserve_variant(variant, case, budget)

    def _on_device(self, case: Case) -> tuple[Any, ...]:
        dev = "cuda" if self.on_gpu else "cpu"
        case.timed.to(dev)
        if not case.args:
            case.args = tuple(v.to(dev) for v in case.inputs.values())
        return case.args

    def torch_eager(self, case: Case, budget: float, tf32: bool) -> None:
        torch, m = self.torch, case.timed
        args = self._on_device(case)
        set_tf32(torch, tf32)
        try:
            with torch.inference_mode():
                y = _first(m(*args))

            def eager() -> None:
                with torch.inference_mode():
                    m(*args)
                if self.on_gpu:
                    torch.cuda.synchronize()
            ms, n = median_ms(eager, self.warmup, self.runs, budget)
        finally:
            set_tf32(torch, False)
        key = "torch_eager_tf32" if tf32 else "torch_eager"
        case.row.update({f"{key}_ms": ms, f"{key}_runs": n})
        if tf32:
            if case.ref is not None:
                case.row["torch_tf32_rel_l2"] = rel_l2(y, case.ref)
            return
        case.ref = y
        try:  # the analytic count (bench.Work) against PyTorch's own count of the same forward
            from torch.utils.flop_counter import FlopCounterMode
            with torch.inference_mode(), FlopCounterMode(display=False) as counter:
                m(*args)
            case.row["torch_counted_flops"] = int(counter.get_total_flops())
            print(f"{case.label}: {case.row['flops'] / 1e9:.2f} GFLOP counted here, "
                  f"{case.row['torch_counted_flops'] / 1e9:.2f} by PyTorch's FlopCounterMode")
        except Exception as e:  # noqa: BLE001 (a cross-check only)
            print(f"{case.label}: FlopCounterMode not available ({type(e).__name__}: {e})")

    def torch_autocast(self, case: Case, budget: float) -> None:
        """PyTorch eager with its products and convolutions in float16 (torch.autocast), the way
        a PyTorch user runs a float32 model in half precision: mserve_fp16's peer."""
        torch, m = self.torch, case.timed
        args = self._on_device(case)
        dev = "cuda" if self.on_gpu else "cpu"
        dtype = torch.float16 if self.on_gpu else torch.bfloat16  # the CPU's autocast takes bfloat16

        def run() -> Any:
            with torch.inference_mode(), torch.autocast(dev, dtype=dtype):
                return m(*args)
        y = _first(run()).astype(np.float32)

        def timed() -> None:
            run()
            if self.on_gpu:
                torch.cuda.synchronize()
        ms, n = median_ms(timed, self.warmup, self.runs, budget)
        case.row.update(torch_autocast_fp16_ms=ms, torch_autocast_fp16_runs=n)
        if case.ref is not None:
            case.row["torch_autocast_fp16_rel_l2"] = rel_l2(y, case.ref)

    def torch_graph(self, case: Case, budget: float) -> None:
        """PyTorch replaying a captured CUDA graph; no number where capture fails (a model that
        syncs with the host). Run last: a failed capture may leave the stream unusable."""
        try:
            ms, n, out = self._graph_replays(case, budget)
            case.row.update(torch_graph_ms=ms, torch_graph_runs=n)
            if case.ref is not None:
                case.row["torch_graph_rel_l2"] = rel_l2(out, case.ref)
        except Exception as e:  # noqa: BLE001 (capture is not possible for every model)
            case.row["torch_graph_error"] = f"{type(e).__name__}: {e}"[:300]
            print(f"{case.label}: CUDA graph capture failed: {case.row['torch_graph_error']}")
        self.torch.cuda.empty_cache()  # the graph is gone: its memory pool goes back

    def _graph_replays(self, case: Case, budget: float) -> tuple[float, int, np.ndarray]:
        torch, m = self.torch, case.timed
        args = self._on_device(case)
        with torch.inference_mode():
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    m(*args)
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = m(*args)

        def replay() -> None:
            graph.replay()
            torch.cuda.synchronize()
        ms, n = median_ms(replay, self.warmup, self.runs, budget)
        return ms, n, _first(out)

    def mserve_variant(self, key: str, case: Case, budget: float) -> None:
        kw = dict(LOAD_OPTIONS[key])
        if key != "mserve_cpu":
            kw["device"] = self.device
        t0 = time.perf_counter()
        m = self.mserve.load(str(case.path), **kw)
        t1 = time.perf_counter()
        feeds = _feeds(m, case.inputs)
        first = _first(m.predict(feeds))
        t2 = time.perf_counter()
        m.predict(feeds)  # where the plan is recorded as a graph
        t3 = time.perf_counter()
        ms, n = median_ms(lambda: m.predict(feeds), self.warmup, self.runs, budget)
        last = _first(m.predict(feeds))  # a replayed graph's output
        case.row.update({f"{key}_ms": ms, f"{key}_runs": n, f"{key}_load_ms": (t1 - t0) * 1e3,
                         f"{key}_first_ms": (t2 - t1) * 1e3, f"{key}_second_ms": (t3 - t2) * 1e3})
        if key == "mserve":
            p = m.placement()
            graphs = "one graph" if p and not p.no_graph else f"no graph: {p.no_graph}" if p else ""
            case.row["placement"] = (f"{p.device_nodes} nodes on {self.device}, {p.cpu_nodes} on cpu, "
                                     f"{p.copies} copies, {graphs}" if p else "?")
        if case.ref is None:
            return
        err = max(rel_l2(first, case.ref), rel_l2(last, case.ref))
        case.row[f"{key}_rel_l2"] = err
        if key in FP32_VARIANTS and err > VS_TORCH_RTOL:
            self.result.fail(f"{case.label} {key}: mserve's output differs from PyTorch's: relative L2 "
                             f"{err:.1e} over {VS_TORCH_RTOL:.0e}")


# ---- the step -----------------------------------------------------------------------------------


def ceilings_for(args: Any, card: str, clock: Clock) -> dict[str, Any]:
    """The roofline numbers of this card: stored by an earlier roofline step, else measured now by
    the roofline step's code in a process of its own (gpu_check.py --run-step roofline)."""
    found = read_ceilings(args.work, card)
    if found:
        print(f"roofline numbers of {card} from {time.ctime(found['measured_at'])}")
        return found
    limit = min(60.0, max(20.0, clock.left() * 0.15))
    cmd = [sys.executable, "-u", str(HERE.parent / "gpu_check.py"), "--run-step", "roofline", "--device", "cuda",
           "--work", str(args.work), "--result", str(Path(args.work) / "results" / "roofline-for-latency.json"),
           "--step-seconds", f"{limit:.0f}"] + (["--quick"] if args.quick else [])
    print(f"no roofline numbers of {card} yet: $ {' '.join(cmd)}", flush=True)
    try:
        subprocess.run(cmd, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        print(f"the roofline measurement took over {limit:.0f} s: no fractions of the card's ceilings")
    return read_ceilings(args.work, card) or {}


def run(args: Any, result: Result) -> None:
    try:
        import torch
    except ImportError:
        result.skip("torch is not importable here: no models to export, latency not measured")
        return
    clock = Clock(args.step_seconds)
    signal.signal(signal.SIGTERM, _stopped)  # timeout(1)'s TERM: the tables and verdict still come
    device = args.device
    on_gpu = device == "cuda"
    if on_gpu and not torch.cuda.is_available():
        result.fail("PyTorch sees no CUDA device")
        return
    set_tf32(torch, False)
    card = torch.cuda.get_device_name(0) if on_gpu else f"the {device} device (CPU kernels)"
    seconds: dict[str, float] = {}
    result.data.update(card=card, seconds=seconds, step_seconds=args.step_seconds)
    t = time.monotonic()
    ceilings = ceilings_for(args, card, clock) if on_gpu else {}
    seconds["roofline"] = time.monotonic() - t
    result.data["ceilings"] = ceilings

    import mserve
    why = device_unavailable(device)
    if why:
        result.fail(f"mserve cannot use the device, PyTorch alone is timed: {why}")
    quick = args.quick
    if on_gpu:
        warmup, runs = (3, 40) if quick else (10, 200)
        cap = min(1.5 if quick else 4.0, max(1.0, args.step_seconds / 60))
        batches = {"BERT-base": [1, 32], "ResNet-50": [1, 32]}
    else:
        warmup, runs = (2, 10) if quick else (5, 50)
        cap = min(8.0, max(1.5, args.step_seconds / 40))
        batches = {"BERT-base": [1], "ResNet-50": [1] if quick else [1, 32]}
    t = time.monotonic()
    cases = build_cases(torch, Path(args.work) / "latency", batches)
    seconds["models"] = time.monotonic() - t
    result.data["models"] = [c.row for c in cases]
    notes: list[str] = []
    try:
        measure(torch, mserve, args, result, cases, clock, seconds, notes, bool(why), warmup, runs, cap)
    finally:
        report(result, [c.row for c in cases], card, ceilings, on_gpu, seconds, notes, clock)


def measure(torch: Any, mserve: Any, args: Any, result: Result, cases: list[Case], clock: Clock,
            seconds: dict[str, float], notes: list[str], no_mserve: bool, warmup: int, runs: int, cap: float) -> None:
    on_gpu = args.device == "cuda"
    # The exports, before anything moves to the device (cached from an earlier run when there).
    t = time.monotonic()
    for case in cases:
        if no_mserve:
            break
        if not case.path.exists() and clock.left() < 30:
            case.row["export_error"] = "no time left to export"
            notes.append(f"{case.label}: not exported, no time left")
            continue
        t0 = time.perf_counter()
        try:
            case.row["export"] = export(torch, case.exported, tuple(case.inputs.values()), case.path,
                                        list(case.inputs), case.outputs)
        except Exception as e:  # noqa: BLE001 (the row says it; PyTorch's numbers still come)
            case.row["export_error"] = f"{type(e).__name__}: {e}"[:300]
            result.fail(f"{case.label}: {case.row['export_error']}")
        case.row["export_s"] = time.perf_counter() - t0
        print(f"{case.label}: {case.path} ({case.row.get('export', 'failed')}, {case.row['export_s']:.1f} s)",
              flush=True)
    seconds["exports"] = time.monotonic() - t

    variants = bench.choose_variants(on_gpu, args.quick)
    if on_gpu and args.quick:
        skipped = [v for v in bench.GPU_VARIANTS if v not in variants]
        notes.append("--quick: not measured: " + ", ".join(skipped))
    run_one = Runner(torch, mserve, args.device, result, warmup, runs)
    i = 0
    while i < len(variants):
        variant = variants[i]
        if i >= 2:  # PyTorch eager and mserve measured: the estimate of the rest, against the time left
            est = {v: sum(_estimate(c.row, v, warmup, runs, cap) for c in cases) for v in variants[i:]}
            kept, dropped = bench.drop_to_fit(variants[i:], est, clock.left())
            if dropped:
                notes.append(f"dropped for time ({clock.left():.0f} s left): " + ", ".join(dropped))
                variants = variants[:i] + kept
                if i >= len(variants):
                    break
                variant = variants[i]
        t = time.monotonic()
        for j, case in enumerate(cases):
            if variant.startswith("mserve") and (no_mserve or not case.path.exists()):
                continue
            if clock.left() <= 0:
                case.row[f"{variant}_error"] = "no time left"
                notes.append(f"{case.label} {variant}: no time left")
                continue
            left = (len(variants) - i) * len(cases) - j
            budget = bench.measurement_seconds(clock.left(), left, cap)
            try:
                run_one(variant, case, budget)
            except TimeoutError:
                raise
            except Exception as e:  # noqa: BLE001 (the row says it)
                case.row[f"{variant}_error"] = f"{type(e).__name__}: {e}"[:300]
                result.fail(f"{case.label} {variant}: {case.row[f'{variant}_error']}")
        seconds[variant] = time.monotonic() - t
        print(f"{bench.LABELS.get(variant, variant)}: {seconds[variant]:.1f} s for {len(cases)} models, "
              f"{clock.left():.0f} s left", flush=True)
        i += 1
    for case in cases:  # free the device for the next step's process
        case.timed.to("cpu")
        case.args = ()
    if on_gpu:
        torch.cuda.empty_cache()


def _estimate(row: dict[str, Any], variant: str, warmup: int, runs: int, cap: float) -> float:
    """Seconds the variant will take on this row, from what is measured so far."""
    if variant.startswith("mserve"):
        loaded = [row.get(f"mserve_{k}_ms") for k in ("load", "first", "second")]
        load_s = sum(v for v in loaded if v) / 1e3 if all(loaded) else 3.0
        return bench.estimate_seconds(row.get("mserve_ms"), warmup, runs, cap, load_s)
    return bench.estimate_seconds(row.get("torch_eager_ms"), warmup, runs, cap, 1.0 if variant == "torch_graph" else 0)


def report(result: Result, rows: list[dict[str, Any]], card: str, ceilings: dict[str, Any], on_gpu: bool,
           seconds: dict[str, float], notes: list[str], clock: Clock) -> None:
    for line in bench.latency_table(rows, card, on_gpu):
        result.line(line)
    result.line("")
    for line in bench.work_table(rows, ceilings):
        result.line(line)
    verdicts = bench.targets(rows, card) if on_gpu else None
    if verdicts:
        result.line("")
        for line in bench.target_table(verdicts):
            result.line(line)
        result.data["targets"] = [{"what": v.what, "value": v.value, "limit": v.limit, "unit": v.unit,
                                   "verdict": v.verdict, "note": v.note} for v in verdicts]
    for r in rows:
        for what in ("placement", "export_error", "torch_graph_error"):
            if r.get(what):
                result.line(f"{r['label']}: {what.replace('_', ' ')}: {str(r[what])[:150]}")
    for note in notes:
        result.line(note)
    spent = ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
    result.line(f"seconds: {spent}; {time.monotonic() - clock.start:.0f} of {clock.deadline - clock.start:.0f} "
                f"(+{RESERVE_S:.0f} reserved)")
    result.summary = bench.summary(rows, on_gpu, verdicts)
