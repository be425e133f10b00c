"""The container image (deploy/docker/Dockerfile) built and run for real with podman, from a
Debian root filesystem made here with debootstrap (no base image can be pulled) and the wheel
`make wheel` left in dist/: TensorFlow Serving's tutorial request on 8501, gRPC on 8500, the
image's health check, a non-root user on a read-only root filesystem, extra arguments appended,
the KServe runtime's command (deploy/kserve) in the image, and a clean exit on `podman stop`; and
the image as `docker build` makes it by default, with the wheel built inside from the checkout
(a few minutes the first time; podman caches its layers).
Run by `make test-image` (part of `make test`).

On these machines crun refuses to start containers (cgroups v1 in hybrid mode), and the default
1048576 open files exceeds the hard limit: containers run with --runtime runc and explicit
ulimits."""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import numpy as np
import pytest

from mserve import examples

ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE = "localhost/mserve-base:bookworm"
IMAGE = "localhost/mserve:test"
RUN = ["podman", "run", "-d", "--runtime", "runc", "--ulimit", "nofile=1024:20000", "--ulimit", "nproc=4096:4096",
       "--read-only"]


def sh(*cmd, timeout=600, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_image():
    """Debian bookworm's minimal root filesystem as the image's base (what debian:bookworm-slim is),
    made once per machine."""
    if sh("podman", "image", "exists", BASE, check=False).returncode == 0:
        return BASE
    with tempfile.TemporaryDirectory() as d:
        root = os.path.join(d, "rootfs")
        sh("debootstrap", "--variant=minbase", "bookworm", root, "http://deb.debian.org/debian", timeout=900)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for f in pathlib.Path(root, cache).glob("*"):
                if f.is_file():
                    f.unlink()
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        sh_in = subprocess.run(["podman", "import", "-", BASE], stdin=tar.stdout, capture_output=True, timeout=600)
        tar.wait()
        assert sh_in.returncode == 0, sh_in.stderr
    return BASE


def build(tag, *args):
    for tool in ("podman", "runc", "debootstrap"):
        assert shutil.which(tool), f"{tool} is missing (make test-image installs it)"
    cmd = ["podman", "build", "--isolation=chroot", "--network=host", "--format", "docker",
           "--build-arg", f"BASE={base_image()}", *args, "-f", str(ROOT / "deploy/docker/Dockerfile"), "-t", tag]
    ca = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    if os.path.isfile(ca):  # this machine's CA bundle, for pip behind a TLS-inspecting proxy
        cmd += ["--secret", f"id=ca,src={ca}"]
    sh(*cmd, str(ROOT), timeout=1800)
    return tag


@pytest.fixture(scope="module")
def image():
    """The image from the wheel `make wheel` built (what the other tests run)."""
    assert sorted(ROOT.glob("dist/mserve-*-cp311-*.whl")), "no cp311 wheel in dist/ (make wheel)"
    return build(IMAGE, "--build-arg", "WHEEL_FROM=dist")


@pytest.fixture
def models(tmp_path):
    d = tmp_path / "half_plus_two" / "1"
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes(examples.half_plus_two().SerializeToString())
    for p in [tmp_path, *tmp_path.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # readable by the image's user
    return tmp_path


class Container:
    def __init__(self, args, ports):
        self.ports = {inside: free_port() for inside in ports}
        publish = [a for inside, host in self.ports.items() for a in ("-p", f"127.0.0.1:{host}:{inside}")]
        self.id = sh(*RUN, *publish, *args).stdout.strip()

    def wait_healthy(self, timeout=60):
        deadline = time.monotonic() + timeout
        while sh("podman", "healthcheck", "run", self.id, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError("unhealthy: " + sh("podman", "logs", self.id, check=False).stderr[-3000:])
            time.sleep(0.2)

    def stop(self):
        sh("podman", "stop", "-t", "30", self.id)
        code = sh("podman", "inspect", self.id, "--format", "{{.State.ExitCode}}").stdout.strip()
        logs = sh("podman", "logs", self.id, check=False)
        sh("podman", "rm", "-f", self.id, check=False)
        return int(code), logs.stdout + logs.stderr


def predict(port, model, body=b'{"instances": [1.0, 2.0, 5.0]}'):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/{model}:predict", data=body, method="POST")
    return urllib.request.urlopen(req, timeout=10).read().decode()


def test_tf_serving_tutorial_in_the_image(image, models):
    c = Container(["-v", f"{models / 'half_plus_two'}:/models/half_plus_two:ro", "-e", "MODEL_NAME=half_plus_two",
                   image], [8500, 8501])
    try:
        c.wait_healthy()
        assert predict(c.ports[8501], "half_plus_two") == '{"predictions":[2.5,3,4.5]}'
        import tritonclient.grpc as grpcclient
        assert grpcclient.InferenceServerClient(f"127.0.0.1:{c.ports[8500]}").is_model_ready("half_plus_two")
        assert sh("podman", "exec", c.id, "id", "-u").stdout.strip() == "1000"
        assert sh("podman", "exec", c.id, "touch", "/opt/mserve/x", check=False).returncode != 0  # read-only
    finally:
        code, logs = c.stop()
    assert code == 0, logs  # SIGTERM: drained and exited cleanly


def test_image_builds_the_wheel_from_source(models):
    """`docker build` as a user runs it: the wheel built in the image from the checkout (buildah
    picks stages before reading WHEEL_FROM, hence --skip-unused-stages=false)."""
    tag = build("localhost/mserve:test-source", "--skip-unused-stages=false")
    try:
        c = Container(["-v", f"{models / 'half_plus_two'}:/models/half_plus_two:ro", "-e",
                       "MODEL_NAME=half_plus_two", tag], [8501])
        try:
            c.wait_healthy()
            assert predict(c.ports[8501], "half_plus_two") == '{"predictions":[2.5,3,4.5]}'
        finally:
            code, logs = c.stop()
        assert code == 0, logs
    finally:
        # The build stage's images (compilers, the build tree: over 1 GB) go with the tag, so
        # repeated runs do not fill the disk.
        sh("podman", "rmi", tag, check=False)
        sh("podman", "image", "prune", "-f", check=False)


def test_extra_arguments_reach_the_server(image, models):
    c = Container(["-v", f"{models / 'half_plus_two'}:/models/half_plus_two:ro", "-e", "MODEL_NAME=half_plus_two",
                   image, "--model_name=renamed", "--enable_batching"], [8501])
    try:
        c.wait_healthy()
        assert predict(c.ports[8501], "renamed") == '{"predictions":[2.5,3,4.5]}'
    finally:
        c.stop()


def test_kserve_runtime_command_in_the_image(image, models, tmp_path):
    import yaml
    runtime = yaml.safe_load((ROOT / "deploy/kserve/cluster-serving-runtime.yaml").read_text())
    container = runtime["spec"]["containers"][0]
    args = [a.replace("{{.Name}}", "mlp").replace("$(CPU_LIMIT)", "1") for a in container["args"]]
    ports = [p["containerPort"] for p in container["ports"]]
    c = Container(["-v", f"{models / 'half_plus_two' / '1'}:/mnt/models:ro", "--entrypoint", container["command"][0],
                   image, *args], ports)
    try:
        import tritonclient.http as httpclient
        client = httpclient.InferenceServerClient(f"127.0.0.1:{c.ports[ports[0]]}")
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.is_model_ready("mlp"):
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.2)
        x = np.array([1.0, 2.0, 5.0], np.float32)
        inp = httpclient.InferInput("x", [3], "FP32")
        inp.set_data_from_numpy(x)
        np.testing.assert_allclose(client.infer("mlp", [inp]).as_numpy("y"), x / 2 + 2)
        meta = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{c.ports[ports[0]]}/v2/models/mlp").read())
        assert meta["versions"] == ["1"]
    finally:
        c.stop()
