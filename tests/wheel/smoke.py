"""What a user does first with an installed wheel, run by tests/wheel/check.sh in a fresh venv that
has only numpy and mserve, outside the checkout, with a clean environment:
the README quick start, one served REST request, the CLI's help, and every library the extension
needs resolved from the wheel (mserve.libs) or the base system. With --hidden LIB..., those host
libraries must be unloadable first (the check then stands for a host that lacks them)."""
import ctypes
import glob
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

import numpy as np

import mserve
from mserve import examples

# What a manylinux wheel may take from the host (auditwheel's policy), and the kernel's vDSO.
BASE_SYSTEM = ("linux-vdso", "ld-linux", "libc.so", "libm.so", "libdl.so", "librt.so", "libpthread.so",
               "libstdc++.so", "libgcc_s.so", "libz.so")


def check_clean_environment():
    assert "LD_LIBRARY_PATH" not in os.environ, "LD_LIBRARY_PATH is set"
    here = os.path.dirname(os.path.abspath(mserve.__file__))
    assert os.sep + "site-packages" + os.sep in here, f"mserve imported from {here}, not from the venv"
    for p in sys.path:
        assert not os.path.exists(os.path.join(p, "CMakeLists.txt")), f"a checkout is on sys.path: {p}"


def check_hidden(libs):
    for lib in libs:
        try:
            ctypes.CDLL(lib)
        except OSError:
            continue
        raise AssertionError(f"{lib} still loads: the host libraries are not hidden")


def quick_start():
    model = mserve.load(examples.mlp())
    x = np.random.rand(8, 256).astype(np.float32)
    probs = model.predict(x)
    assert probs.shape == (8, 10), probs.shape
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def served_request():
    with tempfile.TemporaryDirectory() as d:
        config = examples.save_repository(os.path.join(d, "repository"))
        with mserve.start(config, port=0, quiet=True) as server:
            server.wait_ready()
            body = json.dumps({"instances": [1.0, 2.0, 5.0]}).encode()
            req = urllib.request.Request(f"{server.url}/v1/models/half_plus_two:predict", data=body, method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                answer = json.load(r)
    assert answer == {"predictions": [2.5, 3.0, 4.5]}, answer


def cli_help():
    out = subprocess.run([sys.executable, "-m", "mserve", "--help"], capture_output=True, text=True, check=True)
    assert "serve" in out.stdout, out.stdout


def libraries_resolve():
    pkg = os.path.dirname(os.path.abspath(mserve.__file__))
    bundled = os.path.join(os.path.dirname(pkg), "mserve.libs")
    # _core, _server, libmserve_runtime.so under them, and _core_cuda where it was built
    exts = glob.glob(os.path.join(pkg, "*.so"))
    assert exts, "no extension module in the wheel"
    lines = [line for ext in exts
             for line in subprocess.run(["ldd", ext], capture_output=True, text=True, check=True).stdout.splitlines()]
    inside, base = [], []
    # The CUDA libraries of the GPU backend are the host's (mserve/cuda.py finds and preloads
    # them), never the wheel's: they may resolve anywhere or nowhere here.
    cuda_host = {soname for soname, _ in mserve.cuda.CUDA_LIBRARIES}
    for line in lines:
        name = line.split()[0]
        if name in cuda_host:
            continue
        assert "not found" not in line, line
        path = os.path.realpath(line.split("=>")[1].split("(")[0].strip()) if "=>" in line else name
        if path.startswith((os.path.realpath(bundled) + os.sep, os.path.realpath(pkg) + os.sep)):
            inside.append(os.path.basename(path))
        elif any(os.path.basename(name).startswith(b) for b in BASE_SYSTEM):
            base.append(os.path.basename(name))
        else:
            raise AssertionError(f"{name} resolves outside the wheel and the base system: {line.strip()}")
    assert inside, "no library resolved inside the wheel"
    return sorted(set(inside)), sorted(set(base))


def main():
    hidden = sys.argv[sys.argv.index("--hidden") + 1:] if "--hidden" in sys.argv else []
    check_clean_environment()
    check_hidden(hidden)
    quick_start()
    served_request()
    cli_help()
    gpu = mserve.cuda_available()  # never raises: False without a device, driver or backend
    inside, base = libraries_resolve()
    where = f"with {len(hidden)} host libraries hidden" if hidden else "clean environment"
    print(f"wheel ok ({where}): Python {sys.version.split()[0]}, mserve {mserve.__version__}; "
          f"cuda_available {gpu}; {len(inside)} libraries from the wheel, from the base system: {' '.join(base)}")


if __name__ == "__main__":
    main()
