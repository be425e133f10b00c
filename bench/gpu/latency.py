"""Step 5: latency of BERT-base (batch 1, sequence 128) and ResNet-50 (batch 1 and 32).

The models are built on the machine from transformers' BertConfig() (bert-base's sizes) and
torchvision's resnet50(), with random weights from a fixed seed (nothing is downloaded), and
exported to ONNX (TorchScript exporter, opset 17, static shapes; the dynamo exporter when that
fails). mserve device="cuda" is timed against PyTorch eager on the same card (and PyTorch replaying
a CUDA graph, where capture works), and against itself with cuda_graphs=False: the median of N
runs after warm-up runs. mserve's time is a
user's: numpy in, numpy out, copies included; PyTorch's inputs and outputs stay on the device.
TF32 is off on both sides (torch.backends.*.allow_tf32 = False; mserve computes in float32 unless
asked otherwise), and mserve's output must match PyTorch's within a relative L2 error of 1e-3.

With device "mock" (only where torch imports) mserve on the mock device is timed against
mserve on the CPU: the cost of the device plumbing (copies, arenas) with CPU kernels."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .common import Result, device_unavailable, median_ms, rel_l2

VS_TORCH_RTOL = 1e-3


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


class Bench:
    """A model to time: its torch module and inputs, and its ONNX export."""

    def __init__(self, label: str, module: Any, inputs: dict[str, Any], outputs: list[str], path: Path):
        self.label, self.module, self.inputs, self.outputs, self.path = label, module, inputs, outputs, path


def bert(torch: Any, work: Path, seq: int = 128) -> tuple[Bench, Any]:
    """BERT-base with random weights: (the export's Bench, the model PyTorch is timed with)."""
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

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (1, seq), generator=g)
    mask = torch.ones(1, seq, dtype=torch.int64)
    mask[0, seq - seq // 8:] = 0  # padding at the end: the attention mask matters
    types = torch.zeros(1, seq, dtype=torch.int64)
    types[0, seq // 2:] = 1
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    bench = Bench(f"BERT-base b1 s{seq}", Outputs(model), inputs, ["last_hidden_state", "pooler_output"],
                  work / f"bert_base_s{seq}.onnx")
    timed = Outputs(model)
    try:  # PyTorch timed as users run it: its default attention (SDPA), the same weights
        fast = transformers.BertModel(transformers.BertConfig()).eval()
        fast.load_state_dict(model.state_dict())
        timed = Outputs(fast)
    except Exception as e:  # noqa: BLE001
        print(f"PyTorch's default attention not used ({type(e).__name__}: {e}); timing the eager one")
    return bench, timed


def resnet50(torch: Any, work: Path, batch: int) -> Bench:
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    return Bench(f"ResNet-50 b{batch}", model, {"image": x}, ["logits"], work / f"resnet50_b{batch}.onnx")


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


def torch_eager(torch: Any, module: Any, inputs: dict[str, Any], warmup: int, runs: int, budget: float,
                on_gpu: bool) -> tuple[float, np.ndarray]:
    """PyTorch eager on the device: (median ms, its output)."""
    dev = "cuda" if on_gpu else "cpu"
    m = module.to(dev)
    args = tuple(v.to(dev) for v in inputs.values())
    with torch.inference_mode():
        y = _first(m(*args))

    def eager() -> None:
        with torch.inference_mode():
            m(*args)
        if on_gpu:
            torch.cuda.synchronize()
    ms, _ = median_ms(eager, warmup, runs, budget)
    return ms, y


def torch_graph(torch: Any, module: Any, inputs: dict[str, Any], warmup: int, runs: int,
                budget: float) -> float | None:
    """PyTorch replaying a captured CUDA graph: median ms, None where capture fails (a model that
    syncs with the host). Run last for a model: a failed capture may leave the stream unusable."""
    m = module.to("cuda")
    args = tuple(v.to("cuda") for v in inputs.values())
    try:
        with torch.inference_mode():
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    m(*args)
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                m(*args)

        def replay() -> None:
            graph.replay()
            torch.cuda.synchronize()
        ms, _ = median_ms(replay, warmup, runs, budget)
        return ms
    except Exception as e:  # noqa: BLE001 (capture is not possible for every model)
        print(f"CUDA graph capture failed: {type(e).__name__}: {e}")
        return None


def run(args: Any, result: Result) -> None:
    try:
        import torch
    except ImportError:
        result.skip("torch is not importable here: no models to export, latency not measured")
        return
    device = args.device
    on_gpu = device == "cuda"
    if on_gpu and not torch.cuda.is_available():
        result.fail("PyTorch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    import mserve
    why = device_unavailable(device)
    if why:
        result.fail(f"mserve cannot use the device, PyTorch alone is timed: {why}")
    work = Path(args.work) / "latency"
    warmup, runs = (2, 10) if args.quick else (5, 50)
    budget = min(8.0, max(1.5, args.step_seconds / 40))  # seconds per measurement: 9 of them, and exports
    plans: list[tuple[str, Callable[[], tuple[Bench, Any]]]] = [
        ("BERT-base b1 s128", lambda: bert(torch, work)),
        ("ResNet-50 b1", lambda: _timed_as_exported(resnet50(torch, work, 1))),
    ]
    if on_gpu or not args.quick:
        plans.append(("ResNet-50 b32", lambda: _timed_as_exported(resnet50(torch, work, 32))))
    other = "torch eager" if on_gpu else "mserve cpu"
    result.line(f"{'model':<20} {'mserve ' + device:>12} {'no graphs':>10} {other:>12} "
                f"{'torch graph' if on_gpu else '':>12} {'ratio':>6} {'rel L2':>8}  placement")
    summary = []
    for label, make in plans:
        row: dict[str, Any] = {"model": label}
        t0 = time.perf_counter()
        try:
            bench, timed = make()
            # PyTorch first: its numbers stand even when the export or mserve fails.
            row["torch_eager_ms"], ref_out = torch_eager(torch, timed, bench.inputs, warmup, runs, budget, on_gpu)
            timed.to("cpu")
            row["export"] = export(torch, bench.module, tuple(bench.inputs.values()), bench.path,
                                   list(bench.inputs), bench.outputs)
            print(f"{label}: {bench.path} ({row['export']}, {time.perf_counter() - t0:.1f} s)")
            if not why:
                m = mserve.load(str(bench.path), device=device)
                feeds = _feeds(m, bench.inputs)
                got = _first(m.predict(feeds))
                row["rel_l2_vs_torch"] = rel_l2(got, ref_out)
                row["mserve_ms"], row["runs"] = median_ms(lambda m=m, f=feeds: m.predict(f), warmup, runs, budget)
                p = m.placement()
                row["placement"] = (f"{p.device_nodes} on {device}, {p.cpu_nodes} on cpu, "
                                    f"{'one graph' if not p.no_graph else 'no graph: ' + p.no_graph}") if p else "?"
                # The same model stepping through its kernels: what recording it as a graph saves.
                stepped = mserve.load(str(bench.path), device=device, cuda_graphs=False)
                row["mserve_nograph_ms"], _ = median_ms(lambda s=stepped, f=feeds: s.predict(f), warmup, runs, budget)
                del stepped
                if on_gpu:  # TF32 tensor cores: the time they save and the accuracy they cost
                    tf32 = mserve.load(str(bench.path), device=device, precision="tf32")
                    row["tf32_rel_l2_vs_torch"] = rel_l2(_first(tf32.predict(feeds)), ref_out)
                    row["mserve_tf32_ms"], _ = median_ms(lambda t=tf32, f=feeds: t.predict(f), warmup, runs, budget)
                    print(f"{label}: precision tf32 {row['mserve_tf32_ms']:.3f} ms, relative L2 vs PyTorch (fp32) "
                          f"{row['tf32_rel_l2_vs_torch']:.1e}")
                    del tf32
                if not on_gpu:
                    cpu = mserve.load(str(bench.path))
                    row["mserve_cpu_ms"], _ = median_ms(lambda c=cpu, f=feeds: c.predict(f), warmup, runs, budget)
                del m
                if row["rel_l2_vs_torch"] > VS_TORCH_RTOL:
                    result.fail(f"{label}: mserve's output differs from PyTorch's: relative L2 "
                                f"{row['rel_l2_vs_torch']:.1e} over {VS_TORCH_RTOL:.0e}")
            if on_gpu:
                row["torch_graph_ms"] = torch_graph(torch, timed, bench.inputs, warmup, runs, budget)
                timed.to("cpu")
                torch.cuda.empty_cache()
        except Exception as e:  # noqa: BLE001 (the model's row says it)
            row["error"] = f"{type(e).__name__}: {e}"
            result.fail(f"{label}: {row['error']}")
        base = row.get("torch_eager_ms") if on_gpu else row.get("mserve_cpu_ms")
        ms = row.get("mserve_ms")
        ratio = ms / base if ms and base else None
        row["ratio"] = ratio
        result.data.setdefault("models", []).append(row)
        result.line(f"{label:<20} {_ms(ms):>12} {_ms(row.get('mserve_nograph_ms')):>10} {_ms(base):>12} "
                    f"{_ms(row.get('torch_graph_ms')) if on_gpu else '':>12} "
                    f"{f'{ratio:.2f}x' if ratio else '-':>6} {row.get('rel_l2_vs_torch', float('nan')):>8.1e}  "
                    f"{row.get('placement', row.get('error', ''))[:90]}")
        short = label.replace("BERT-base ", "BERT ").replace("ResNet-50 ", "R50 ").replace(" s128", "")
        summary.append(f"{short} {_ms(ms)}/{_ms(base)} ms")
    result.summary = f"mserve/{other}: " + ", ".join(summary)


def _timed_as_exported(bench: Bench) -> tuple[Bench, Any]:
    return bench, bench.module


def _ms(v: float | None) -> str:
    return f"{v:.2f}" if v else "-"
