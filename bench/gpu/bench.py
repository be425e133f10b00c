"""The latency step's arithmetic, apart from PyTorch and the GPU: the work of each model (floating-
point operations and the fewest bytes an inference moves), ratios, the issue's targets, the plan
that fits the variants into the step's time, and the tables. Pure Python, so that the test suite
checks all of it on a machine without a GPU or PyTorch.

A row is a dict: "label" ("BERT-base b1 s128"), "family" ("BERT-base" / "ResNet-50"), "batch",
"flops" and "min_bytes" (from Work), and per variant "<variant>_ms" (the median) with, for
mserve's variants, "<variant>_load_ms", "_first_ms", "_second_ms" and "_rel_l2". A value that was
not measured is absent or None, and prints as "-"."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# ---- the work of one inference -----------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    """What one inference (the whole batch) must do at least.

    flops: twice the multiply-adds of the matrix products and convolutions (LayerNorm, softmax,
    GELU, residual adds and pooling are under 1% of it and left out; BatchNorm folds into the
    convolutions). params: the PyTorch module's parameter count. weight_bytes: the float32 weights
    an inference reads at least once (embedding rows it does not touch left out, BatchNorm folded
    into a bias). io_bytes: the inputs read once and the outputs written once."""

    flops: int
    params: int
    weight_bytes: int
    io_bytes: int

    @property
    def min_bytes(self) -> int:
        return self.weight_bytes + self.io_bytes


def bert_work(batch: int, seq: int = 128, layers: int = 12, hidden: int = 768, ffn: int = 3072,
              vocab: int = 30522, positions: int = 512, types: int = 2) -> Work:
    """BERT (BertModel: embeddings, encoder, pooler) on `batch` sequences of `seq` tokens."""
    tokens = batch * seq
    # Per layer: the Q, K, V and output projections and the two feed-forward products (every
    # token), then Q K^T and P V (every head: seq x seq x head size, summed over heads: hidden).
    linear = 2 * tokens * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = 2 * 2 * batch * seq * seq * hidden
    pooler = 2 * batch * hidden * hidden  # the first token of each sequence only
    layer_params = (4 * (hidden * hidden + hidden) + (hidden * ffn + ffn) + (ffn * hidden + hidden)
                    + 2 * 2 * hidden)  # + two LayerNorms
    embedding_params = (vocab + positions + types) * hidden + 2 * hidden
    pooler_params = hidden * hidden + hidden
    rows = min(vocab, tokens) + min(positions, seq) + types  # the embedding rows a batch can touch
    weights = rows * hidden + 2 * hidden + layers * layer_params + pooler_params
    io = 3 * 8 * tokens + 4 * (tokens * hidden + batch * hidden)  # three int64 inputs; two float32 outputs
    return Work(flops=layers * (linear + attention) + pooler,
                params=embedding_params + layers * layer_params + pooler_params,
                weight_bytes=4 * weights, io_bytes=io)


def resnet50_work(batch: int, size: int = 224, classes: int = 1000, blocks: tuple[int, ...] = (3, 4, 6, 3)) -> Work:
    """torchvision's resnet50 (bottlenecks with the stride on the 3x3 convolution) on `batch`
    images of size x size, walked layer by layer."""
    macs = conv_weights = channels = 0

    def conv(cin: int, cout: int, k: int, stride: int, hw: int) -> int:
        nonlocal macs, conv_weights, channels
        out = (hw + 2 * (k // 2) - k) // stride + 1
        macs += out * out * cout * cin * k * k
        conv_weights += cout * cin * k * k
        channels += cout  # one BatchNorm per convolution
        return out

    hw = conv(3, 64, 7, 2, size)
    hw = (hw + 2 - 3) // 2 + 1  # max pooling 3x3, stride 2, padding 1
    cin = 64
    for stage, n in enumerate(blocks):
        width = 64 << stage
        for i in range(n):
            stride = 2 if i == 0 and stage > 0 else 1
            conv(cin, width, 1, 1, hw)
            out = conv(width, width, 3, stride, hw)
            conv(width, 4 * width, 1, 1, out)
            if i == 0:
                conv(cin, 4 * width, 1, stride, hw)  # the projection shortcut
            cin, hw = 4 * width, out
    macs += cin * classes
    fc = cin * classes + classes
    return Work(flops=2 * batch * macs, params=conv_weights + 2 * channels + fc,
                weight_bytes=4 * (conv_weights + channels + fc), io_bytes=4 * batch * (3 * size * size + classes))


# ---- ratios and fractions ------------------------------------------------------------------------


def ratio(ms: float | None, base: float | None) -> float | None:
    """ms / base, None when either is missing or not positive."""
    return ms / base if ms and base and ms > 0 and base > 0 else None


def tflops(flops: float | None, ms: float | None) -> float | None:
    """The rate achieved: flops done in ms milliseconds, in TFLOP/s."""
    return flops / (ms * 1e-3) / 1e12 if flops and ms and ms > 0 else None


def gb_per_s(nbytes: float | None, ms: float | None) -> float | None:
    return nbytes / (ms * 1e-3) / 1e9 if nbytes and ms and ms > 0 else None


def fraction(value: float | None, ceiling: float | None) -> float | None:
    """value over the card's measured ceiling (roofline step), None when either is missing."""
    return value / ceiling if value and ceiling and ceiling > 0 else None


def floor_ms(flops: float | None, nbytes: float | None, rate_tflops: float | None,
             copy_gb_s: float | None) -> float | None:
    """The fastest an inference can run on this card: the larger of its arithmetic at the GEMM
    rate and its fewest bytes at the copy bandwidth (None when a ceiling is missing)."""
    times = []
    if flops and rate_tflops:
        times.append(flops / (rate_tflops * 1e12) * 1e3)
    if nbytes and copy_gb_s:
        times.append(nbytes / (copy_gb_s * 1e9) * 1e3)
    return max(times) if times else None


# ---- the issue's targets -------------------------------------------------------------------------

# mserve / PyTorch eager at the same precision (TF32 off), by batch, on BERT-base and ResNet-50.
RATIO_TARGETS = {1: 0.8, 32: 1.0}
# BERT-base b1 s128 on an H100, milliseconds, strictly under.
BERT_B1_MS = {"fp32": 1.0, "tf32": 0.6, "fp16": 0.5}


@dataclass(frozen=True)
class Verdict:
    what: str
    value: float | None
    limit: float
    unit: str  # "x" (a ratio, at most the limit) or "ms" (under the limit)
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "-"
        ok = self.value <= self.limit if self.unit == "x" else self.value < self.limit
        return "pass" if ok else "miss"


def targets(rows: Iterable[dict[str, Any]], card: str) -> list[Verdict]:
    """The issue's targets against the rows measured on `card`; a target whose numbers are
    missing has value None (verdict "-"). They are reported, never a failure of the step."""
    out: list[Verdict] = []
    rows = list(rows)
    for row in rows:
        limit = RATIO_TARGETS.get(row.get("batch", 0))
        if limit is None or row.get("family") not in ("BERT-base", "ResNet-50"):
            continue
        out.append(Verdict(f"{row['label']} fp32: mserve / PyTorch eager", ratio(row.get("mserve_ms"),
                           row.get("torch_eager_ms")), limit, "x"))
        if row.get("mserve_fp16_ms") is not None or row.get("torch_autocast_fp16_ms") is not None:
            out.append(Verdict(f"{row['label']} fp16: mserve / PyTorch autocast", ratio(row.get("mserve_fp16_ms"),
                               row.get("torch_autocast_fp16_ms")), limit, "x"))
    bert = next((r for r in rows if r.get("family") == "BERT-base" and r.get("batch") == 1), None)
    if bert is not None:
        note = "" if "H100" in card else f"an H100's target; this card: {card}"
        for precision, limit in BERT_B1_MS.items():
            key = "mserve_ms" if precision == "fp32" else f"mserve_{precision}_ms"
            out.append(Verdict(f"{bert['label']} {precision}: mserve", bert.get(key), limit, "ms", note))
    return out


def target_count(verdicts: list[Verdict]) -> str:
    """"4 of 6 targets pass (1 miss, 1 not measured)"."""
    n = {v: sum(x.verdict == v for x in verdicts) for v in ("pass", "miss", "-")}
    more = [f"{n['miss']} miss"] if n["miss"] else []
    more += [f"{n['-']} not measured"] if n["-"] else []
    return f"{n['pass']} of {len(verdicts)} targets pass" + (f" ({', '.join(more)})" if more else "")


# ---- the variants and the time they get ---------------------------------------------------------

# On the GPU, in the order they run: PyTorch eager first (its output is the reference), a captured
# PyTorch graph last (a failed capture can leave PyTorch's stream unusable).
GPU_VARIANTS = ["torch_eager", "mserve", "mserve_tf32", "mserve_fp16", "mserve_bf16", "mserve_nograph",
                "torch_eager_tf32", "torch_autocast_fp16", "torch_graph"]
# On the mock device: mserve with and without graphs against mserve on the CPU, PyTorch (CPU) as
# the reference output.
MOCK_VARIANTS = ["torch_eager", "mserve", "mserve_nograph", "mserve_cpu"]
# Most important first: --quick and a short step drop variants from the end; the essential ones
# (the reference, mserve itself, the mock device's peer) are never dropped.
IMPORTANCE = ["torch_eager", "mserve", "mserve_cpu", "mserve_fp16", "mserve_tf32", "torch_autocast_fp16",
              "torch_graph", "mserve_nograph", "mserve_bf16", "torch_eager_tf32"]
ESSENTIAL = {"torch_eager", "mserve", "mserve_cpu"}
QUICK_DROPS = 3  # --quick drops the three least important: the TF32 peer, bf16 and mserve without graphs

LABELS = {"torch_eager": "PyTorch eager, TF32 off", "mserve": "mserve, CUDA graphs", "mserve_tf32":
          "mserve, precision tf32", "mserve_nograph": "mserve, cuda_graphs=False", "torch_eager_tf32":
          "PyTorch eager, TF32 on", "torch_graph": "PyTorch replaying a CUDA graph, TF32 off",
          "mserve_cpu": "mserve on the CPU", "mserve_fp16": "mserve, precision fp16", "mserve_bf16":
          "mserve, precision bf16", "torch_autocast_fp16": "PyTorch eager under autocast(float16)"}


def _rank(variant: str) -> int:
    return IMPORTANCE.index(variant) if variant in IMPORTANCE else len(IMPORTANCE)


def choose_variants(on_gpu: bool, quick: bool) -> list[str]:
    """The variants to measure, in the order they run."""
    if not on_gpu:
        return list(MOCK_VARIANTS)
    dropped = sorted(GPU_VARIANTS, key=_rank)[len(GPU_VARIANTS) - QUICK_DROPS:] if quick else []
    return [v for v in GPU_VARIANTS if v not in dropped]


def drop_to_fit(variants: list[str], estimate_s: dict[str, float], left_s: float) -> tuple[list[str], list[str]]:
    """(kept, dropped): the least important variants dropped until the estimated seconds of those
    kept fit in left_s; ESSENTIAL ones stay even when they do not fit. A variant without an
    estimate counts as free. `kept` keeps the order of `variants`."""
    kept = list(variants)
    dropped: list[str] = []
    while sum(estimate_s.get(v, 0.0) for v in kept) > left_s:
        optional = [v for v in kept if v not in ESSENTIAL]
        if not optional:
            break
        worst = max(optional, key=_rank)
        kept.remove(worst)
        dropped.append(worst)
    return kept, dropped


def measurement_seconds(left_s: float, measurements_left: int, cap: float, floor: float = 0.3) -> float:
    """The time one measurement may take: an equal share of what is left, at most cap, at least floor."""
    return max(floor, min(cap, left_s / max(1, measurements_left)))


def estimate_seconds(call_ms: float | None, warmup: int, runs: int, cap: float, load_s: float = 0.0) -> float:
    """What one measurement costs: the warm-up and timed calls, cut at the cap (median_ms stops
    there after 3 calls, and warms up for at most half of it), plus a load for mserve's variants."""
    if not call_ms:
        return cap * 1.5 + load_s
    return min((warmup + runs) * call_ms / 1e3, cap * 1.5) + load_s


# ---- the tables -------------------------------------------------------------------------------


def fmt(v: float | None, spec: str = ".2f", suffix: str = "") -> str:
    """v in `spec`, "-" when missing (None, NaN)."""
    if v is None or v != v:
        return "-"
    return f"{v:{spec}}{suffix}"


def short(label: str) -> str:
    return label.replace("BERT-base ", "BERT ").replace("ResNet-50 ", "R50 ").replace(" s128", "")


def latency_table(rows: list[dict[str, Any]], card: str, on_gpu: bool) -> list[str]:
    """Medians in ms. GPU: mserve (graphs), without graphs, PyTorch eager and graph (TF32 off),
    ratio mserve / eager; mserve tf32, PyTorch eager tf32, their ratio; mserve fp16, PyTorch
    under autocast(float16), their ratio, and mserve bf16; mserve's relative L2 error against
    PyTorch (fp32) in each precision. Mock: mserve on the mock device against mserve on the CPU."""
    if not on_gpu:
        lines = [f"latency on {card}, median ms (ratio: mserve mock / mserve cpu)",
                 f"{'model':<18} {'mock':>8} {'no graph':>8} {'cpu':>8} {'ratio':>6} {'torch cpu':>9} {'rel L2':>8}"]
        for r in rows:
            lines.append(f"{r['label']:<18} {fmt(r.get('mserve_ms')):>8} {fmt(r.get('mserve_nograph_ms')):>8} "
                         f"{fmt(r.get('mserve_cpu_ms')):>8} "
                         f"{fmt(ratio(r.get('mserve_ms'), r.get('mserve_cpu_ms')), '.2f', 'x'):>6} "
                         f"{fmt(r.get('torch_eager_ms')):>9} {fmt(r.get('mserve_rel_l2'), '.1e'):>8}")
        return lines
    lines = [f"latency on {card}, median ms; ratio: mserve / PyTorch eager at the same precision",
             f"{'':<18} {'--------------- fp32 (TF32 off) ----------------':>48}   "
             f"{'---------- tf32 ----------':>26}   {'--------------- fp16 ---------------':>35}   "
             f"{'---------- rel L2 vs PyTorch ----------':>35}",
             f"{'model':<18} {'mserve':>8} {'no graph':>8} {'pt eager':>8} {'pt graph':>8} {'ratio':>6}   "
             f"{'mserve':>8} {'pt eager':>8} {'ratio':>6}   {'mserve':>8} {'autocast':>8} {'ratio':>6} "
             f"{'bf16':>8}   {'fp32':>8} {'tf32':>8} {'fp16':>8} {'bf16':>8}"]
    for r in rows:
        lines.append(
            f"{r['label']:<18} {fmt(r.get('mserve_ms')):>8} {fmt(r.get('mserve_nograph_ms')):>8} "
            f"{fmt(r.get('torch_eager_ms')):>8} {fmt(r.get('torch_graph_ms')):>8} "
            f"{fmt(ratio(r.get('mserve_ms'), r.get('torch_eager_ms')), '.2f', 'x'):>6}   "
            f"{fmt(r.get('mserve_tf32_ms')):>8} {fmt(r.get('torch_eager_tf32_ms')):>8} "
            f"{fmt(ratio(r.get('mserve_tf32_ms'), r.get('torch_eager_tf32_ms')), '.2f', 'x'):>6}   "
            f"{fmt(r.get('mserve_fp16_ms')):>8} {fmt(r.get('torch_autocast_fp16_ms')):>8} "
            f"{fmt(ratio(r.get('mserve_fp16_ms'), r.get('torch_autocast_fp16_ms')), '.2f', 'x'):>6} "
            f"{fmt(r.get('mserve_bf16_ms')):>8}   "
            f"{fmt(r.get('mserve_rel_l2'), '.1e'):>8} {fmt(r.get('mserve_tf32_rel_l2'), '.1e'):>8} "
            f"{fmt(r.get('mserve_fp16_rel_l2'), '.1e'):>8} {fmt(r.get('mserve_bf16_rel_l2'), '.1e'):>8}")
    return lines


def work_table(rows: list[dict[str, Any]], ceilings: dict[str, Any]) -> list[str]:
    """Per row: the work (GFLOP, fewest MB), the floor on this card (fp32 GEMM rate, copy
    bandwidth), mserve's achieved TFLOP/s as a fraction of the measured fp32 and tf32 GEMM rates,
    its GB/s over the fewest bytes as a fraction of the copy bandwidth (batch 1, where the weights
    read once are most of the time), and its first call: load, first predict, second predict
    (where the graph is recorded)."""
    fp32, tf32 = ceilings.get("gemm_fp32_tflops"), ceilings.get("gemm_tf32_tflops")
    copy = ceilings.get("copy_gb_s")
    if ceilings:
        head = (f"work against the roofline (GEMM fp32 {fmt(fp32, '.1f')}, tf32 {fmt(tf32, '.0f')} TFLOP/s, "
                f"copy {fmt(copy, '.0f')} GB/s); mserve's first call, ms")
    else:
        head = "work (no roofline numbers: no fractions of the card's ceilings); first call of mserve, ms"
    lines = [head, f"{'model':<18} {'GFLOP':>7} {'min MB':>7} {'floor':>6}   {'fp32 TF/s':>9} {'of GEMM':>7}   "
                   f"{'tf32 TF/s':>9} {'of GEMM':>7}   {'GB/s':>6} {'of copy':>7}   {'load':>7} {'1st':>7} {'2nd':>7}"]
    for r in rows:
        flops, nbytes = r.get("flops"), r.get("min_bytes")
        t32, tt = tflops(flops, r.get("mserve_ms")), tflops(flops, r.get("mserve_tf32_ms"))
        bw = gb_per_s(nbytes, r.get("mserve_ms")) if r.get("batch") == 1 else None
        lines.append(
            f"{r['label']:<18} {fmt(flops / 1e9 if flops else None, '.1f'):>7} "
            f"{fmt(nbytes / 1e6 if nbytes else None, '.0f'):>7} {fmt(floor_ms(flops, nbytes, fp32, copy)):>6}   "
            f"{fmt(t32, '.1f'):>9} {fmt(fraction(t32, fp32), '.0%'):>7}   "
            f"{fmt(tt, '.1f'):>9} {fmt(fraction(tt, tf32), '.0%'):>7}   "
            f"{fmt(bw, '.0f'):>6} {fmt(fraction(bw, copy), '.0%'):>7}   "
            f"{fmt(r.get('mserve_load_ms'), '.0f'):>7} {fmt(r.get('mserve_first_ms'), '.1f'):>7} "
            f"{fmt(r.get('mserve_second_ms'), '.1f'):>7}")
    return lines


def target_table(verdicts: list[Verdict]) -> list[str]:
    lines = [f"{'target':<52} {'value':>9} {'limit':>10}  verdict"]
    for v in verdicts:
        value = fmt(v.value, ".2f", "x") if v.unit == "x" else fmt(v.value, ".3f", " ms")
        limit = f"<= {v.limit:.2f}x" if v.unit == "x" else f"< {v.limit:.2f} ms"
        lines.append(f"{v.what:<52} {value:>9} {limit:>10}  {v.verdict}" + (f"  ({v.note})" if v.note else ""))
    return lines


def summary(rows: list[dict[str, Any]], on_gpu: bool, verdicts: list[Verdict] | None = None) -> str:
    """The step's line in the run's summary table."""
    base = "torch_eager_ms" if on_gpu else "mserve_cpu_ms"
    parts = [f"{short(r['label'])} {fmt(r.get('mserve_ms'))}/{fmt(r.get(base))}" for r in rows]
    text = f"mserve/{'torch eager' if on_gpu else 'mserve cpu'} ms: " + ", ".join(parts)
    if verdicts:
        text += "; " + target_count(verdicts)
    return text
