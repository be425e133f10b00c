"""Helpers for the server tests: small models whose output tells which version answered."""
import os

import numpy as np
import onnx
from onnx import helper

from op_harness import make_model


def scale_model(factor: float, features: int = 4):
    """y = x * factor, x: float32[batch, features]."""
    return make_model([helper.make_node("Mul", ["x", "k"], ["y"])],
                      [("x", np.float32, ["batch", features])], [("y", np.float32, ["batch", features])],
                      {"k": np.array(factor, np.float32)})


def two_io_model():
    """sum = a + b (float32[batch, 3]); flag = a > b (bool); inputs a and b."""
    return make_model([helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Greater", ["a", "b"], ["flag"])],
                      [("a", np.float32, ["batch", 3]), ("b", np.float32, ["batch", 3])],
                      [("sum", np.float32, ["batch", 3]), ("flag", np.bool_, ["batch", 3])])


def write_version(base, version: int, model) -> str:
    d = os.path.join(str(base), str(version))
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    tmp = path + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, path)
    return path


def string_model():
    """up = upper-case(s) and s_bytes = s, s: string[batch] (TensorFlow Serving writes outputs
    named *_bytes as base64)."""
    from onnx import TensorProto
    return make_model([helper.make_node("StringNormalizer", ["s"], ["up"], case_change_action="UPPER"),
                       helper.make_node("Identity", ["s"], ["s_bytes"])],
                      [("s", TensorProto.STRING, ["batch"])],
                      [("up", TensorProto.STRING, ["batch"]), ("s_bytes", TensorProto.STRING, ["batch"])])


def run_in_own_network(server_cmd, client_cmd, env=None, timeout=180):
    """Runs `server_cmd` in the background and then `client_cmd` in a network namespace of their
    own (loopback only), so servers on fixed ports (8500/8501, 8080/8081) never meet another
    process's; the server gets SIGTERM when the client ends. The CompletedProcess of the whole
    (the client's exit code, and the server's if the client succeeded; text output). Python
    clients can import this module (``wait_http_ok``)."""
    import shlex
    import subprocess
    env = dict(os.environ if env is None else env)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    script = ("ip link set lo up && { \"$@\" & } && server=$! && "
              f"{shlex.join(client_cmd)}; rc=$?; kill -TERM $server; wait $server; src=$?; "
              "[ $rc -ne 0 ] && exit $rc; exit $src")
    return subprocess.run(["unshare", "--net", "--fork", "sh", "-c", script, "sh", *server_cmd],
                          capture_output=True, text=True, timeout=timeout, env=env)


def wait_http_ok(url, timeout=60.0):
    """Waits until GET `url` answers 200, as a readiness probe does; AssertionError past `timeout`."""
    import time
    import urllib.request
    deadline = time.monotonic() + timeout
    while True:
        try:
            if urllib.request.urlopen(url, timeout=5).status == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered 200"
        time.sleep(0.1)


def free_port():
    """A TCP port on 127.0.0.1 free now."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
