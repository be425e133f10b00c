"""Device names as users write them ("cpu", "cuda", "mock") to what the runtime takes."""
from __future__ import annotations

from typing import Any

from . import cuda
from .errors import InvalidArgument

DEVICES = ("cpu", "cuda", "mock")


PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


def backend_for(name: str, device: Any, precision: str = "fp32") -> Any:
    """``_core``'s device argument for ``device``: "cpu", "mock", or the CUDA backend's capsule
    (``mserve.Unavailable`` naming what is missing: the backend, a CUDA library or a GPU).
    ``name`` says whose device it is in errors. ``precision``: "fp32" (exact float32), "tf32"
    (TF32 tensor cores for float32 matrix products and convolutions), "fp16" or "bf16" (their
    weights in 16 bits, float32 accumulation); all but "fp32" for device "cuda" only."""
    if precision not in PRECISIONS:
        raise InvalidArgument(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision != "fp32" and device != "cuda":
        raise InvalidArgument(f"precision {precision!r} is for device 'cuda', not {device!r}")
    if device in ("cpu", "mock"):
        return device
    if device == "cuda":
        return cuda.backend().backend(precision=precision)
    raise InvalidArgument(f"{name} {device!r} is not known; use 'cpu', 'cuda' or 'mock'")
