"""The container image's entrypoint (deploy/docker/entrypoint.sh) on this host, with the image's
environment: TensorFlow Serving's tutorial request against MODEL_NAME under MODEL_BASE_PATH on
8501 (and gRPC on 8500), extra arguments appended, a model config file instead of MODEL_NAME, and
the health check. Each run has a network namespace of its own (the ports are the image's fixed
ones). tests/deploy/test_image.py runs the same in the built image."""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from mserve import examples
from serve_util import run_in_own_network

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENTRYPOINT = str(ROOT / "deploy" / "docker" / "entrypoint.sh")

# Waits for the image's health check to pass, then sends TF Serving's tutorial request to `model`
# (argv[1]) and checks gRPC's readiness on 8500.
CLIENT = textwrap.dedent("""
    import json, subprocess, sys, time, urllib.request
    model = sys.argv[1]
    deadline = time.monotonic() + 60
    while subprocess.run([sys.argv[2], "--healthcheck"]).returncode != 0:
        assert time.monotonic() < deadline, "the health check never passed"
        time.sleep(0.1)
    req = urllib.request.Request(f"http://127.0.0.1:8501/v1/models/{model}:predict",
                                 data=b'{"instances": [1.0, 2.0, 5.0]}', method="POST")
    print(urllib.request.urlopen(req, timeout=10).read().decode())
    import tritonclient.grpc as grpcclient
    assert grpcclient.InferenceServerClient("127.0.0.1:8500").is_model_ready(model)
""")


@pytest.fixture
def models_dir(tmp_path):
    base = tmp_path / "models"
    d = base / "half_plus_two" / "1"
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes(examples.half_plus_two().SerializeToString())
    return base


def image_env(models_dir, **extra):
    """The image's environment (its PATH has the venv with mserve first)."""
    env = dict(os.environ, MODEL_BASE_PATH=str(models_dir), MODEL_NAME="half_plus_two",
               PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("MSERVE_REST_PORT", None)
    env.update(extra)
    return env


def run(models_dir, args=(), served="half_plus_two", **env):
    return run_in_own_network([ENTRYPOINT, *args], [sys.executable, "-c", CLIENT, served, ENTRYPOINT],
                              env=image_env(models_dir, **env))


def test_tf_serving_tutorial_request(models_dir):
    r = run(models_dir)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert '{"predictions":[2.5,3,4.5]}' in r.stdout


def test_extra_arguments_are_appended(models_dir):
    r = run(models_dir, ["--model_name=renamed", "--enable_batching"], served="renamed")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert '{"predictions":[2.5,3,4.5]}' in r.stdout


def test_model_config_file_replaces_model_name(models_dir, tmp_path):
    cfg = tmp_path / "models.config"
    cfg.write_text(f'model_config_list {{ config {{ name: "hpt" base_path: "{models_dir / "half_plus_two"}" '
                   'model_platform: "onnx" } }')
    r = run(models_dir, [f"--model_config_file={cfg}"], served="hpt", MODEL_NAME="absent")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert '{"predictions":[2.5,3,4.5]}' in r.stdout


def test_health_check_fails_with_no_server_and_bad_model_path_is_reported(models_dir):
    r = run_in_own_network(["true"], [ENTRYPOINT, "--healthcheck"], env=image_env(models_dir))
    assert r.returncode == 1
    r = subprocess.run([ENTRYPOINT], env=image_env(models_dir, MODEL_NAME="missing"), capture_output=True,
                       text=True, timeout=60)  # refused before it listens
    assert r.returncode != 0 and "does not exist" in r.stderr
