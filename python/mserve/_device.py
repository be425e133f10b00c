"""Device names as users write them ("cpu", "cuda", "mock") to what the runtime takes."""
from __future__ import annotations

from typing import Any

from . import cuda
from .errors import InvalidArgument

DEVICES = ("cpu", "cuda", "mock")


def backend_for(name: str, device: Any) -> Any:
    """``_core``'s device argument for ``device``: "cpu", "mock", or the CUDA backend's capsule
    (``mserve.Unavailable`` naming what is missing: the backend, a CUDA library or a GPU).
    ``name`` says whose device it is in errors."""
    if device in ("cpu", "mock"):
        return device
    if device == "cuda":
        return cuda.backend().backend()
    raise InvalidArgument(f"{name} {device!r} is not known; use 'cpu', 'cuda' or 'mock'")
