"""Step 6: the card's two ceilings, measured through PyTorch, so that the latency numbers can be
read against them: device-to-device copy bandwidth (1 GiB, bytes read plus bytes written) and a
large GEMM (8192 x 8192 x 8192) in float32 with TF32 off (mserve's default arithmetic), with TF32
on and in bf16 for reference. Timed with CUDA events after warm-up.

The numbers are also stored in the work folder (common.write_ceilings), where the latency step
finds them: it runs before this step, so when it finds none of this card it runs this step's
code once itself (a process of its own) and this step then measures again, which shows how far
two measurements of the same card differ.

With device "mock" the step is skipped: nothing to measure without a GPU."""
from __future__ import annotations

import time
from typing import Any

from .common import Result, read_ceilings, write_ceilings


def _events_ms(torch: Any, fn: Any, iters: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end)) / iters


def run(args: Any, result: Result) -> None:
    if args.device != "cuda":
        result.skip("needs a CUDA device (device mock)")
        return
    try:
        import torch
    except ImportError:
        result.fail("torch is not importable")
        return
    if not torch.cuda.is_available():
        result.fail("PyTorch sees no CUDA device")
        return
    props = torch.cuda.get_device_properties(0)
    earlier = read_ceilings(args.work, props.name)
    print(f"{props.name}: {props.multi_processor_count} SMs, {props.total_memory / 2**30:.0f} GiB")
    n_copy = (1 << 30) // 4
    a = torch.rand(n_copy, device="cuda")
    b = torch.empty_like(a)
    ms = _events_ms(torch, lambda a=a, b=b: b.copy_(a), 20)
    copy_gbs = 2 * a.numel() * 4 / (ms * 1e-3) / 1e9
    del a, b
    result.line(f"device copy 1 GiB: {ms:.3f} ms, {copy_gbs:.0f} GB/s (read + write)")
    n = 4096 if args.quick else 8192
    flops = 2.0 * n**3
    x = torch.randn(n, n, device="cuda")
    y = torch.randn(n, n, device="cuda")
    numbers = {}
    for name, tf32, dtype in (("fp32", False, torch.float32), ("tf32", True, torch.float32),
                              ("bf16", False, torch.bfloat16)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        xa, ya = x.to(dtype), y.to(dtype)
        ms = _events_ms(torch, lambda xa=xa, ya=ya: xa @ ya, 10)
        numbers[name] = flops / (ms * 1e-3) / 1e12
        result.line(f"GEMM {n}^3 {name}: {ms:.2f} ms, {numbers[name]:.1f} TFLOP/s")
    torch.backends.cuda.matmul.allow_tf32 = False
    result.data = {"gpu": props.name, "copy_gb_s": copy_gbs, "gemm_n": n,
                   **{f"gemm_{k}_tflops": v for k, v in numbers.items()}}
    if earlier:  # measured for the latency step a little earlier: the spread of two measurements
        e = {k: float(earlier.get(k) or 0) for k in ("copy_gb_s", "gemm_fp32_tflops", "gemm_tf32_tflops",
                                                       "gemm_bf16_tflops", "measured_at")}
        result.line(f"earlier ({time.time() - e['measured_at']:.0f} s ago, GEMM {earlier.get('gemm_n')}^3): "
                    f"copy {e['copy_gb_s']:.0f} GB/s, GEMM fp32 {e['gemm_fp32_tflops']:.1f}, "
                    f"tf32 {e['gemm_tf32_tflops']:.0f}, bf16 {e['gemm_bf16_tflops']:.0f} TFLOP/s")
        result.data["earlier"] = earlier
    write_ceilings(args.work, {k: v for k, v in result.data.items() if k != "earlier"})
    result.summary = (f"copy {copy_gbs:.0f} GB/s, GEMM fp32 {numbers['fp32']:.1f} TFLOP/s "
                      f"(tf32 {numbers['tf32']:.0f}, bf16 {numbers['bf16']:.0f})")
