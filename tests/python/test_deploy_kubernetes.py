"""deploy/kubernetes/mserve.yaml: the Deployment's pod spec validates strictly against the PodSpec
schema KServe's InferenceService CRD carries (its predictor is a PodSpec), the Deployment and
Service hold together (selectors, named ports, probes, $(VAR)s), and the container run as the
kubelet would run the image (its entrypoint, env and args, the volume at /models/mlp) answers on the
Service's ports once its readiness probe passes."""
import copy
import os
import pathlib
import sys
import textwrap

import pytest
import yaml

from k8s_util import ROOT, container_env, crd_validators, errors, expand
from mserve import examples
from serve_util import run_in_own_network

MANIFEST = ROOT / "deploy" / "kubernetes" / "mserve.yaml"
ENTRYPOINT = str(ROOT / "deploy" / "docker" / "entrypoint.sh")


@pytest.fixture(scope="module")
def manifest():
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    return {d["kind"]: d for d in docs}


def as_predictor(pod_spec):
    """The pod spec inside an InferenceService, so the CRD's strict PodSpec schema checks it."""
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "check"},
            "spec": {"predictor": copy.deepcopy(pod_spec)}}


def test_pod_spec_is_valid(manifest):
    validators = crd_validators()
    pod = manifest["Deployment"]["spec"]["template"]["spec"]
    assert errors(validators, as_predictor(pod)) == []
    bad = copy.deepcopy(pod)
    bad["containers"][0]["volumeMount"] = bad["containers"][0].pop("volumeMounts")
    assert errors(validators, as_predictor(bad))


def test_deployment_and_service_hold_together(manifest):
    dep, svc = manifest["Deployment"], manifest["Service"]
    assert dep["apiVersion"] == "apps/v1" and svc["apiVersion"] == "v1"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    container = dep["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}  # the image's
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= set(ports)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    expand(container["args"], container_env(container))  # every $(VAR) is defined
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["models"] == f"/models/{container_env(container)['MODEL_NAME']}"
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(ports["http"])


CLIENT = textwrap.dedent("""
    import sys, urllib.request
    from serve_util import wait_http_ok
    ready, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    wait_http_ok(f"http://127.0.0.1:{port}{ready}")  # the readiness probe
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/{name}:predict",
                                 data=b'{"instances": [1.0, 2.0, 5.0]}', method="POST")
    print(urllib.request.urlopen(req, timeout=10).read().decode())
""")


def test_container_answers_on_the_service_port(manifest, tmp_path):
    container = manifest["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = container_env(container)
    volume = tmp_path / "models" / env["MODEL_NAME"] / "1"  # the volume, mounted at /models/<name>
    volume.mkdir(parents=True)
    (volume / "model.onnx").write_bytes(examples.half_plus_two().SerializeToString())
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["readinessProbe"]["httpGet"]
    run_env = dict(os.environ, **env, MODEL_BASE_PATH=str(tmp_path / "models"),
                   PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}")
    run_env.pop("MSERVE_REST_PORT", None)
    r = run_in_own_network([ENTRYPOINT, *expand(container["args"], env)],
                           [sys.executable, "-c", CLIENT, probe["path"], str(ports[probe["port"]]), env["MODEL_NAME"]],
                           env=run_env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert '{"predictions":[2.5,3,4.5]}' in r.stdout
