"""deploy/kserve: every manifest validates against KServe's CRD schemas (../shared/kserve-crds, or
$MSERVE_KSERVE_CRDS), strictly as kubeconform does (unknown fields are errors; int-or-string is
integer or string); and the runtime's container command, run on this host as the manifest says
(its env expanded, /mnt/models holding a model), answers a v2 client over REST and gRPC on the
ports the manifest declares, once its readiness probe passes (in a network namespace of its own:
serve_util.run_in_own_network)."""
import copy
import pathlib
import sys
import textwrap

import onnx
import pytest
import yaml

from k8s_util import ROOT, container_env, crd_validators, errors, expand
from serve_util import run_in_own_network, scale_model

MANIFESTS = sorted((ROOT / "deploy" / "kserve").glob("*.yaml"))


@pytest.fixture(scope="module")
def validators():
    return crd_validators()


def docs():
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def test_there_are_manifests():
    kinds = {doc["kind"] for _, doc in docs()}
    assert {"ClusterServingRuntime", "InferenceService"} <= kinds


@pytest.mark.parametrize("name,doc", list(docs()), ids=lambda v: v if isinstance(v, str) else "")
def test_manifest_is_valid_against_the_crd(validators, name, doc):
    assert errors(validators, doc) == []


def test_validation_is_strict(validators):
    """Misspelt fields, wrong types and int-or-string are caught, so the check above can fail."""
    runtime = next(doc for _, doc in docs() if doc["kind"] == "ClusterServingRuntime")
    bad = copy.deepcopy(runtime)
    bad["spec"]["containers"][0]["readinessProbe"]["httpGet"]["prot"] = 8080
    assert any("prot" in e for e in errors(validators, bad))
    bad = copy.deepcopy(runtime)
    bad["spec"]["supportedModelFormats"][0]["autoSelect"] = "yes"
    assert errors(validators, bad)
    ok = copy.deepcopy(runtime)
    ok["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = "http1"  # int-or-string
    assert errors(validators, ok) == []
    isvc = next(doc for _, doc in docs() if doc.get("spec", {}).get("predictor", {}).get("canaryTrafficPercent"))
    bad = copy.deepcopy(isvc)
    bad["spec"]["predictor"]["model"]["storageURI"] = "s3://x"
    assert errors(validators, bad)


def test_canary_example_splits_traffic_and_uses_the_runtime():
    runtime = next(doc for _, doc in docs() if doc["kind"] == "ClusterServingRuntime")
    isvcs = [doc for _, doc in docs() if doc["kind"] == "InferenceService"]
    assert any(0 < d["spec"]["predictor"].get("canaryTrafficPercent", 0) < 100 for d in isvcs)
    for d in isvcs:
        model = d["spec"]["predictor"]["model"]
        assert model["runtime"] == runtime["metadata"]["name"]
        assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
        assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]


def container_command(container, model_dir, name):
    """The container's command line as the kubelet runs it, KServe's {{.Name}} and /mnt/models
    replaced."""
    words = expand(container["command"] + container["args"], container_env(container))
    return [w.replace("{{.Name}}", name).replace("/mnt/models", str(model_dir)) for w in words]


CLIENT = textwrap.dedent("""
    import sys, urllib.request
    import numpy as np
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from serve_util import wait_http_ok
    ready, http_port, grpc_port, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    wait_http_ok(f"http://127.0.0.1:{http_port}{ready}")  # the manifest's readiness probe
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    h = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}")
    i = httpclient.InferInput("x", [2, 4], "FP32"); i.set_data_from_numpy(x)
    np.testing.assert_allclose(h.infer(name, [i]).as_numpy("y"), x * 2.5)
    g = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    assert g.is_server_ready() and g.is_model_ready(name)
    i = grpcclient.InferInput("x", [2, 4], "FP32"); i.set_data_from_numpy(x)
    np.testing.assert_allclose(g.infer(name, [i]).as_numpy("y"), x * 2.5)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}{sys.argv[5]}", timeout=5).read().decode()
    assert "mserve_" in metrics
    print("answered")
""")


@pytest.mark.slow
def test_runtime_container_answers_a_v2_client_on_the_declared_ports(tmp_path):
    runtime = next(doc for _, doc in docs() if doc["kind"] == "ClusterServingRuntime")
    container = runtime["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["readinessProbe"]["httpGet"]
    assert probe["port"] == ports["http1"]
    model_dir = tmp_path / "mnt-models"  # what the storage initializer leaves: the version's files
    model_dir.mkdir()
    onnx.save(scale_model(2.5), str(model_dir / "model.onnx"))
    bindir = pathlib.Path(sys.executable).parent  # the `mserve` console script of this environment
    cmd = container_command(container, model_dir, "mlp")
    assert cmd[0] == "mserve" and (bindir / "mserve").exists()
    cmd[0] = str(bindir / "mserve")
    annotations = runtime["spec"]["annotations"]
    assert int(annotations["prometheus.kserve.io/port"]) == ports["http1"]
    client = [sys.executable, "-c", CLIENT, probe["path"], str(ports["http1"]), str(ports["grpc"]), "mlp",
              annotations["prometheus.kserve.io/path"]]
    r = run_in_own_network(cmd, client)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "answered" in r.stdout
    assert "tensorflow_intra_op_parallelism=2" in " ".join(cmd)  # limits.cpu "2"
