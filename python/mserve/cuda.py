"""Finding the CUDA backend at run time.

The CUDA backend is a separate extension module, ``mserve._core_cuda``, next to ``_core``: importing
mserve never needs a GPU or the CUDA libraries. It is imported on the first ``device="cuda"``; it
carries the CUDA runtime (linked statically, so only the driver's libcuda comes from the host) and
links the libraries in CUDA_LIBRARIES dynamically. Those are not shipped with mserve (they are
hundreds of MB); they are found the way PyTorch and CuPy find them: first in the ``nvidia-*`` pip
packages (``site-packages/nvidia/cu13/lib`` or ``site-packages/nvidia/<name>/lib``), preloaded by
absolute path so the dynamic loader reuses them, then in the CUDA toolkit (``$CUDA_HOME``,
``/usr/local/cuda``), then through the system's library path (``LD_LIBRARY_PATH``, ``ldconfig``).
Then a device must be there: ``device_count()`` of the backend.
"""
from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import sys
from types import ModuleType

from .errors import Unavailable

# (soname, the nvidia-* pip package folder that carries it) of the libraries the backend links
# dynamically, in load order: cuBLASLt (MatMul, Gemm, attention) and cuDNN (Conv).
CUDA_LIBRARIES: tuple[tuple[str, str], ...] = (("libcublasLt.so.13", "cublas"), ("libcudnn.so.9", "cudnn"))
BACKEND_MODULE = "mserve._core_cuda"

_backend: ModuleType | None = None
_failure: str | None = None


def _pip_library_dirs() -> list[str]:
    """The lib folders of installed nvidia-* pip packages, per package name."""
    dirs = []
    for entry in sys.path:
        root = os.path.join(entry, "nvidia")
        if os.path.isdir(root):
            dirs.append(root)
    return dirs


def _toolkit_library_dirs() -> list[str]:
    """The CUDA toolkit's library folders: $CUDA_HOME / $CUDA_PATH, then /usr/local/cuda."""
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    return [os.path.join(r, sub) for r in roots if r for sub in ("lib64", "lib")]


def _load_library(soname: str, package: str) -> None:
    # CUDA 13's pip packages gather the toolkit's libraries in nvidia/cu13/lib; cuDNN (and CUDA 12's
    # packages) keep one folder per package.
    candidates = [os.path.join(root, sub, "lib", soname)
                  for root in _pip_library_dirs() for sub in ("cu13", package)]
    candidates += [os.path.join(d, soname) for d in _toolkit_library_dirs()]
    for path in candidates:
        if os.path.exists(path):
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            return
    ctypes.CDLL(soname, mode=ctypes.RTLD_GLOBAL)  # the system's search path


def _load() -> ModuleType:
    global _backend, _failure
    if _backend is not None:
        return _backend
    if _failure is not None:
        raise Unavailable(_failure)
    try:
        spec = importlib.util.find_spec(BACKEND_MODULE)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        _failure = "device 'cuda' is not available: this mserve was built without its CUDA backend"
        raise Unavailable(_failure)
    for soname, package in CUDA_LIBRARIES:
        try:
            _load_library(soname, package)
        except OSError as e:
            _failure = (f"device 'cuda' is not available: {soname} was not found or could not be loaded ({e}); "
                        f"install the CUDA toolkit or `pip install nvidia-{package.replace('_', '-')}-cu13`")
            raise Unavailable(_failure) from None
    try:
        module = importlib.import_module(BACKEND_MODULE)
    except ImportError as e:
        _failure = f"device 'cuda' is not available: the CUDA backend failed to load ({e})"
        raise Unavailable(_failure) from None
    count, why = module.device_count()
    if count < 1:
        _failure = f"device 'cuda' is not available: no usable CUDA device ({why or 'none found'})"
        raise Unavailable(_failure)
    _backend = module
    return _backend


def backend() -> ModuleType:
    """The CUDA backend module, loaded on first use. Raises ``mserve.Unavailable`` naming what is
    missing (the backend itself, or the CUDA library that could not be loaded)."""
    return _load()


def cuda_available() -> bool:
    """Whether ``device="cuda"`` can be used here: the backend is built and every CUDA library it
    needs loads. Never raises."""
    try:
        _load()
    except Unavailable:
        return False
    return True
