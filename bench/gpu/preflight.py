"""Step 1: is this machine ready, and is mserve installed so that its CUDA backend loads?

On the GPU machine: nvidia-smi; PyTorch's CUDA libraries (the nvidia-* pip packages beside it,
site-packages/nvidia/*/lib: cuBLAS, cuDNN); the cp312 wheel installed with pip --no-deps
--no-index into a target folder (the machine has no network, and every dependency mserve needs
at run time, numpy, is already there); ldd of the extension modules with those library folders
on LD_LIBRARY_PATH, nothing "not found"; then a fresh interpreter with that environment imports
mserve and asks mserve.cuda_available(). The environment it settles on (PYTHONPATH,
LD_LIBRARY_PATH) is what every later step runs with. When something fails it prints what a
diagnosis needs: the commands' output, the environment, the library folders and their cuBLAS /
cuDNN files, mserve's own reason.

With device "mock" the GPU parts are skipped; a wheel given with --wheel is still installed and
checked the same way (a cp311 wheel under the development venv exercises this code here)."""
from __future__ import annotations

import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import HERE, Result, fmt_op


def sh(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Runs cmd, logs it and its output; (exit code, output). 124 when it ran out of time, 127
    when the program is missing."""
    print(f"$ {' '.join(cmd)}", flush=True)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                           env=env, check=False)
        out, rc = p.stdout, p.returncode
    except FileNotFoundError as e:
        out, rc = f"{e}\n", 127
    except subprocess.TimeoutExpired as e:
        out = (e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or "")
        out, rc = out + f"\n(timed out after {timeout:.0f} s)\n", 124
    print(out.rstrip(), flush=True)
    return rc, out


def nvidia_library_dirs() -> tuple[list[str], dict[str, Any]]:
    """The lib folders of the nvidia-* pip packages this interpreter sees (PyTorch's CUDA
    libraries), and what PyTorch says about itself."""
    info: dict[str, Any] = {}
    try:
        import torch
        info.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        info["torch_sees_gpu"] = torch.cuda.is_available()
        if info["torch_sees_gpu"]:
            info["torch_gpu"] = torch.cuda.get_device_name(0)
    except Exception as e:  # noqa: BLE001 (reported, not fatal: mserve does not need torch)
        info["torch_error"] = f"{type(e).__name__}: {e}"
    roots: list[str] = []
    try:
        import nvidia  # type: ignore[import-not-found]  # a namespace package of the nvidia-* wheels
        roots = list(nvidia.__path__)
    except ImportError:
        roots = [os.path.join(p, "nvidia") for p in sys.path if os.path.isdir(os.path.join(p, "nvidia"))]
    dirs: list[str] = []
    for root in roots:
        dirs += [d for d in sorted(glob.glob(os.path.join(root, "*", "lib"))) if d not in dirs]
    return dirs, info


def cuda_library_files(dirs: list[str]) -> list[str]:
    """The cuBLAS / cuDNN / CUDA runtime files in `dirs` (which of them the backend can find)."""
    pattern = re.compile(r"lib(cublas|cublasLt|cudnn|cudart)\.so")
    return [os.path.join(d, f) for d in dirs for f in sorted(os.listdir(d)) if pattern.match(f)]


def find_wheel(given: str | None) -> Path | None:
    """--wheel, else the one mserve wheel for this interpreter beside gpu_check.py (the bundle) or
    in dist/ (a checkout)."""
    if given:
        return Path(given)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for folder in (HERE.parent, HERE.parent.parent / "dist"):
        found = sorted(folder.glob(f"mserve-*-{tag}-*.whl"))
        if found:
            return found[-1]
    return None


def ldd_missing(paths: list[Path], env: dict[str, str]) -> tuple[list[str], str]:
    """(the "not found" libraries of ldd on every path, ldd's output)."""
    missing: list[str] = []
    text = ""
    for p in paths:
        rc, out = sh(["ldd", str(p)], 30, env)
        text += out
        if rc != 0:
            missing.append(f"{p.name}: ldd failed (rc {rc})")
        missing += [f"{p.name}: {line.split()[0]}" for line in out.splitlines() if "not found" in line]
    return missing, text


def probe() -> dict[str, Any]:
    """Run in a fresh interpreter with the environment preflight settled on: where mserve comes
    from, whether its CUDA backend loads (and why not), and which CUDA libraries got loaded."""
    import mserve
    from mserve import cuda
    info: dict[str, Any] = {"mserve": mserve.__file__, "version": mserve.__version__, "python": sys.version.split()[0]}
    try:
        from mserve import _core_cuda  # type: ignore[attr-defined]
        info["backend_module"] = _core_cuda.__file__
        info["device_count"] = list(_core_cuda.device_count())
        info["ops"] = [fmt_op((str(d), str(o))) for d, o in _core_cuda.ops()]
    except (ImportError, AttributeError) as e:  # not built; or a backend without the kernel table
        info["backend_module_error"] = f"{type(e).__name__}: {e}"
    info["cuda_available"] = mserve.cuda_available()
    if not info["cuda_available"]:
        try:
            cuda.backend()
        except mserve.Unavailable as e:
            info["reason"] = str(e)
    try:
        maps = Path("/proc/self/maps").read_text()
        libs = sorted({line.split()[-1] for line in maps.splitlines()
                       if re.search(r"lib(cublas|cudnn|cudart|cuda)[^/]*\.so", line)})
        info["loaded_cuda_libraries"] = libs
    except OSError:
        pass
    print(json.dumps(info, indent=1))
    return info


def run(args: Any, result: Result) -> None:
    cuda = args.device == "cuda"
    work = Path(args.work)
    notes: list[str] = []
    env = dict(os.environ)
    print(f"python {sys.executable} {platform.python_version()}, {platform.platform()}")

    # The GPU and its driver.
    gpu = ""
    if cuda:
        rc, out = sh(["nvidia-smi"], 30)
        if rc != 0:
            result.fail(f"nvidia-smi failed (rc {rc})")
        rc, out = sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                      "--format=csv,noheader"], 30)
        if rc == 0 and out.strip():
            gpu = out.strip().splitlines()[0]
            result.data["gpu"] = gpu
    else:
        print("nvidia-smi: skipped (device mock)")

    # PyTorch's CUDA libraries.
    dirs, torch_info = nvidia_library_dirs()
    result.data.update(torch_info, nvidia_lib_dirs=dirs)
    print(f"torch: {json.dumps(torch_info)}")
    print("nvidia-* library folders:\n  " + "\n  ".join(dirs or ["(none)"]))
    libs = cuda_library_files(dirs)
    print("cuBLAS / cuDNN / cudart files in them:\n  " + "\n  ".join(libs or ["(none)"]))
    if cuda and not dirs:
        result.fail("no nvidia-* pip package folders (site-packages/nvidia/*/lib): where are cuBLAS and cuDNN?")
    if dirs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(dirs + [p for p in [os.environ.get("LD_LIBRARY_PATH", "")] if p])

    # mserve: the wheel into a target folder, or the interpreter's own.
    wheel = find_wheel(args.wheel)
    site = work / "site"
    if wheel is not None and (cuda or args.wheel):
        if not wheel.exists():
            result.fail(f"wheel {wheel} does not exist")
        else:
            tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
            if f"-{tag}-" not in wheel.name:
                result.fail(f"{wheel.name} is not for this interpreter ({tag}, {sys.executable})")
            shutil.rmtree(site, ignore_errors=True)
            rc, _ = sh([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
                        "--disable-pip-version-check", "--target", str(site), str(wheel)], 180)
            if rc != 0:
                result.fail(f"pip install {wheel.name} failed (rc {rc})")
            else:
                env["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in [os.environ.get("PYTHONPATH", "")] if p])
                notes.append(f"installed {wheel.name}")
    elif cuda:
        result.fail("no mserve-*-cp312-*.whl beside gpu_check.py (make gpu-bundle) and no --wheel given")
    else:
        notes.append("mserve of this interpreter")

    # ldd of the extension modules: nothing missing once the library folders are on the path.
    pkg = site / "mserve" if "PYTHONPATH" in env and str(site) in env["PYTHONPATH"] else None
    if pkg is None:
        spec = _mserve_dir(env)
        pkg = Path(spec) if spec else None
    if pkg is not None:
        modules = sorted(pkg.glob("_core_cuda*.so")) + sorted(pkg.glob("_core.*.so"))
        if not any(m.name.startswith("_core_cuda") for m in modules):
            (result.fail if cuda else print)(f"no CUDA backend (_core_cuda*.so) in {pkg}")
        missing, _ = ldd_missing(modules, env)
        if missing:
            text = "ldd: not found: " + ", ".join(missing)
            if cuda:
                result.fail(text)
            else:
                print(text + " (not needed on the mock device)")
        elif modules:
            notes.append("ldd ok")

    # A fresh interpreter with that environment: does the backend load?
    out_file = work / "probe.json"
    rc, out = sh([sys.executable, str(HERE.parent / "gpu_check.py"), "--run-step", "probe", "--device", args.device,
                  "--result", str(out_file), "--work", str(work)], 120, env)
    info: dict[str, Any] = {}
    if out_file.exists():
        info = json.loads(out_file.read_text()).get("data", {})
    result.data["probe"] = info
    if not info:
        result.fail(f"importing mserve failed (rc {rc}); see the output above")
    elif cuda and not info.get("cuda_available"):
        result.fail(f"mserve.cuda_available() is False: {info.get('reason', '?')}")
    result.data["env"] = {k: env[k] for k in ("PYTHONPATH", "LD_LIBRARY_PATH") if k in env}
    if result.status == "fail":
        _diagnose(env, dirs)
    ops = info.get("ops")
    parts = [gpu.split(",")[0] if gpu else ("mock device" if not cuda else "no GPU"),
             f"mserve {info.get('version', '?')}"]
    if ops is not None:
        parts.append(f"{len(ops)} CUDA ops")
    parts.append(f"cuda_available {info.get('cuda_available', '?')}")
    parts += notes
    result.summary = ", ".join(parts)
    result.line(result.summary)
    for lib in info.get("loaded_cuda_libraries", []):
        result.line(f"  loaded {lib}")


def _mserve_dir(env: dict[str, str]) -> str | None:
    """The folder of the mserve package the interpreter imports with `env`."""
    rc, out = sh([sys.executable, "-c", "import importlib.util as u, os; "
                  "print(os.path.dirname(u.find_spec('mserve').origin))"], 60, env)
    return out.strip().splitlines()[-1] if rc == 0 and out.strip() else None


def _diagnose(env: dict[str, str], dirs: list[str]) -> None:
    print("---- diagnosis: environment")
    for k in ("PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH", "CUDA_VISIBLE_DEVICES"):
        print(f"{k}={env.get(k, '')}")
    print(f"sys.path: {sys.path}")
    for d in dirs:
        print(f"{d}: {' '.join(sorted(os.listdir(d)))}")
    if shutil.which("ldconfig"):
        p = subprocess.run(["ldconfig", "-p"], stdout=subprocess.PIPE, text=True, check=False)
        wanted = re.compile(r"(cublas|cudnn|cudart|libcuda)\.so\.\d")
        print("ldconfig -p, CUDA libraries:\n  " + "\n  ".join(
            line.strip() for line in p.stdout.splitlines() if wanted.search(line)))
    homes = [os.environ.get(v, "") for v in ("CUDA_HOME", "CUDA_PATH")]
    toolkits = {"/usr/local/cuda/lib64"} | {os.path.join(h, "lib64") for h in homes if h}
    for toolkit in sorted(toolkits):
        if os.path.isdir(toolkit):
            print(f"{toolkit}: {' '.join(f for f in sorted(os.listdir(toolkit)) if 'cublas' in f or 'cudnn' in f)}")
