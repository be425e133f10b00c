"""mserve.integrations.ray on a real Ray cluster of two nodes on this machine (Ray's own
multi-node-on-one-host setup, ray.cluster_utils.Cluster): replicas on both nodes, TF Serving and
KServe v2 requests (JSON, and the binary extension through tritonclient) checked against
onnxruntime, concurrent requests merged into batches, a model swap through user_config under load
with no failed request and no replica restarted, bad requests answered 4xx, and a bounded
shutdown. Everything listens on 127.0.0.1."""
import concurrent.futures as cf
import os
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest
import requests

from serve_util import free_port, scale_model, two_io_model

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Every Ray process on 127.0.0.1 (Ray's rule for single-host clusters on macOS and Windows), not on
# the address of the machine's network interface.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = pytest.mark.slow
APP = "scale"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import onnx
    d = tmp_path_factory.mktemp("ray_models")
    paths = {}
    for name, model in (("x2", scale_model(2.0)), ("x3", scale_model(3.0)), ("two_io", two_io_model())):
        paths[name] = str(d / f"{name}.onnx")
        onnx.save(model, paths[name])
    return paths


def serve_config(models, port, user_config):
    """A Serve config as `serve deploy` and KubeRay's RayService send it: the scale app (two
    replicas, one per node) and the two-input app (autoscaled from one replica to two)."""
    return {"http_options": {"host": "127.0.0.1", "port": port},
            "applications": [
                {"name": APP, "route_prefix": "/", "import_path": "mserve.integrations.ray:app",
                 "args": {"model": models["x2"], "name": APP, "threads": "1", "max_batch_size": 64,
                          "batch_wait_timeout_s": 0.01},
                 "deployments": [{"name": "ModelDeployment", "num_replicas": 2, "ray_actor_options": {"num_cpus": 1},
                                  "user_config": user_config}]},
                {"name": "two_io", "route_prefix": "/two", "import_path": "mserve.integrations.ray:app",
                 "args": {"model": models["two_io"], "name": "two_io", "threads": 1},
                 "deployments": [{"name": "ModelDeployment", "ray_actor_options": {"num_cpus": 0},
                                  "autoscaling_config": {"min_replicas": 1, "max_replicas": 2,
                                                         "target_ongoing_requests": 1, "upscale_delay_s": 0,
                                                         "downscale_delay_s": 600, "look_back_period_s": 1}}]}]}


def deploy(cluster, user_config, want="RUNNING", timeout=120):
    """PUTs the config to the dashboard's Serve REST API and waits for the apps' status."""
    api = f"{cluster['dashboard']}/api/serve/applications/"
    r = requests.put(api, json=serve_config(cluster["models"], cluster["port"], user_config), timeout=60)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        apps = requests.get(api, timeout=30).json()["applications"]
        status = {name: a["status"] for name, a in apps.items()}
        if status.get(APP) == want and status.get("two_io") == "RUNNING":
            return apps
        time.sleep(0.25)
    raise AssertionError(f"apps not {want} within {timeout} s: {status}")


@pytest.fixture(scope="module")
def cluster(models):
    started = time.monotonic()
    dashboard = free_port()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": True,
                                                       "dashboard_host": "127.0.0.1", "dashboard_port": dashboard})
    c.add_node(num_cpus=1)
    ray.init(address=c.address, logging_level="warning", log_to_driver=False)
    port = free_port()
    info = {"cluster": c, "url": f"http://127.0.0.1:{port}", "port": port, "models": models,
            "dashboard": f"http://127.0.0.1:{dashboard}"}
    deploy(info, {})
    assert time.monotonic() - started < 180, "the cluster took over 3 minutes to start"
    yield info
    if ray.is_initialized():  # test_shutdown_is_bounded did not get to it
        serve.shutdown()
        ray.shutdown()
        c.shutdown()


def oracle(path, x):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def replica_stats(n_replicas=2, timeout=30):
    """Each replica's counters, asked through the handle until every replica has answered (a
    replica being reconfigured is out of the routing table for a moment)."""
    handle = serve.get_app_handle(APP)
    seen = {}
    deadline = time.monotonic() + timeout
    while len(seen) < n_replicas and time.monotonic() < deadline:
        s = handle.stats.remote().result(timeout_s=30)
        seen[s["replica"]] = s
        time.sleep(0.02)
    assert len(seen) == n_replicas, f"only {len(seen)} replica(s) answered"
    return seen


def test_replicas_run_on_both_nodes(cluster):
    assert len(ray.nodes()) == 2
    stats = replica_stats()
    assert len({s["node"] for s in stats.values()}) == 2
    assert {s["node"] for s in stats.values()} == {n["NodeID"] for n in ray.nodes()}


def test_tf_serving_and_v2_json_match_onnxruntime(cluster, models):
    url = cluster["url"]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    want = oracle(models["x2"], x)
    r = requests.post(f"{url}/v1/models/{APP}:predict", json={"instances": x.tolist()}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["X-Model-Version"] == "1"
    np.testing.assert_allclose(np.array(r.json()["predictions"], np.float32), want, rtol=1e-6)
    r = requests.post(f"{url}/v1/models/{APP}/versions/1:predict", json={"inputs": {"x": x.tolist()}}, timeout=30)
    np.testing.assert_allclose(np.array(r.json()["outputs"], np.float32), want, rtol=1e-6)
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
    r = requests.post(f"{url}/v2/models/{APP}/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "r1" and out["model_name"] == APP and out["model_version"] == "1"
    assert out["outputs"][0]["shape"] == [3, 4] and out["outputs"][0]["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(out["outputs"][0]["data"], np.float32).reshape(3, 4), want, rtol=1e-6)
    # a POST to the prefix itself takes either style
    r = requests.post(f"{url}/", json={"instances": x.tolist()}, timeout=30)
    np.testing.assert_allclose(np.array(r.json()["predictions"], np.float32), want, rtol=1e-6)
    r = requests.post(f"{url}/", json=body, timeout=30)
    np.testing.assert_allclose(np.array(r.json()["outputs"][0]["data"], np.float32).reshape(3, 4), want, rtol=1e-6)
    meta = requests.get(f"{url}/v2/models/{APP}", timeout=30).json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert requests.get(f"{url}/v2/health/ready", timeout=30).status_code == 200
    assert requests.get(f"{url}/v1/models/{APP}", timeout=30).json()["model_version_status"][0]["state"] == \
        "AVAILABLE"


def test_tritonclient_binary_tensors(cluster, models):
    import tritonclient.http as httpclient
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{cluster['port']}")
    assert client.is_model_ready(APP)
    inp = httpclient.InferInput("x", [5, 4], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    res = client.infer(APP, [inp], outputs=[httpclient.InferRequestedOutput("y", binary_data=True)])
    np.testing.assert_allclose(res.as_numpy("y"), oracle(models["x2"], x), rtol=1e-6)
    client.close()


def test_bad_requests_get_clear_4xx(cluster):
    url = cluster["url"]
    cases = [
        (f"{url}/v1/models/{APP}:predict", b"{not json", 400, "malformed JSON"),
        (f"{url}/v1/models/{APP}:predict", b'{"instances": [[1, 2, 3, 4], [1, 2]]}', 400, "input 'x'"),
        (f"{url}/v1/models/{APP}:predict", b'{"instances": [["a", "b", "c", "d"]]}', 400, "expected float32"),
        (f"{url}/v1/models/{APP}:predict", b'{"instances": [[1, 2, 3]]}', 400, "x"),
        (f"{url}/v1/models/other:predict", b'{"instances": [[1, 2, 3, 4]]}', 404, "not served here"),
        (f"{url}/v1/models/{APP}/versions/7:predict", b'{"instances": [[1, 2, 3, 4]]}', 404, "version 7"),
        (f"{url}/v2/models/{APP}/infer",
         b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}]}', 400, "FP32"),
        (f"{url}/v2/models/{APP}/infer",
         b'{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}', 400,
         "4 values for shape"),
    ]
    for where, body, status, text in cases:
        r = requests.post(where, data=body, timeout=30)
        assert r.status_code == status, (body, r.text)
        assert text in r.json()["error"], (body, r.text)


def test_concurrent_requests_are_merged_into_batches(cluster, models):
    url = cluster["url"]
    before = replica_stats()
    xs = [np.full((2, 4), i, np.float32) for i in range(48)]

    def one(x):
        r = requests.post(f"{url}/v1/models/{APP}:predict", json={"instances": x.tolist()}, timeout=60)
        assert r.status_code == 200, r.text
        return np.array(r.json()["predictions"], np.float32)

    with cf.ThreadPoolExecutor(24) as pool:
        got = list(pool.map(one, xs))
    for x, y in zip(xs, got):
        np.testing.assert_allclose(y, oracle(models["x2"], x), rtol=1e-6)  # each request got its own rows
    after = replica_stats()
    requests_run = sum(after[r]["requests"] - before[r]["requests"] for r in after)
    batches = sum(after[r]["batches"] - before[r]["batches"] for r in after)
    assert requests_run == 48
    assert batches < requests_run, f"{batches} batches for {requests_run} requests: nothing was merged"
    assert max(s["largest_batch"] for s in after.values()) >= 4  # rows: at least two requests stacked


def test_handle_predict(cluster, models):
    handle = serve.get_app_handle(APP)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(handle.predict.remote(x).result(timeout_s=30), oracle(models["x2"], x))


def test_model_swap_under_load_fails_no_request(cluster, models):
    url = cluster["url"]
    before = replica_stats()
    stop = threading.Event()
    failures, answers = [], {"1": 0, "2": 0}
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    want = {"1": oracle(models["x2"], x), "2": oracle(models["x3"], x)}
    lock = threading.Lock()

    def client():
        s = requests.Session()
        while not stop.is_set():
            try:
                r = s.post(f"{url}/v1/models/{APP}:predict", json={"instances": x.tolist()}, timeout=60)
                v = r.headers.get("X-Model-Version")
                if r.status_code != 200 or v not in want or \
                        not np.allclose(np.array(r.json()["predictions"], np.float32), want[v]):
                    failures.append((r.status_code, v, r.text[:200]))
                with lock:
                    answers[v] = answers.get(v, 0) + 1
            except Exception as e:  # a failed request is what this test is about
                failures.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    deploy(cluster, {"model": models["x3"], "version": 2})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and {s["version"] for s in replica_stats().values()} != {2}:
        time.sleep(0.2)
    with lock:
        v2_seen = answers["2"]
    while time.monotonic() < deadline and answers["2"] < v2_seen + 20:
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(60)
    after = replica_stats()
    assert not failures, failures[:5]
    assert answers["1"] > 0 and answers["2"] >= 20, answers
    assert set(after) == set(before), "a replica was replaced"
    assert {s["pid"] for s in after.values()} == {s["pid"] for s in before.values()}, "a replica restarted"
    assert all(s["version"] == 2 and s["swaps"] >= 1 for s in after.values())


def test_bad_user_config_keeps_the_model_serving(cluster, models):
    deploy(cluster, {"model": models["x3"], "version": 3, "max_batch_size": 0}, want="DEPLOY_FAILED")
    x = np.ones((1, 4), np.float32)
    r = requests.post(f"{cluster['url']}/v1/models/{APP}:predict", json={"instances": x.tolist()}, timeout=30)
    assert r.status_code == 200 and r.headers["X-Model-Version"] == "2"
    deploy(cluster, {"model": models["x3"], "version": 2})


def test_two_input_model_rows_and_columns(cluster, models):
    url = cluster["url"]
    a = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    b = np.array([[3, 2, 1], [0, 9, 0]], np.float32)
    r = requests.post(f"{url}/two/v1/models/two_io:predict",
                      json={"instances": [{"a": a[i].tolist(), "b": b[i].tolist()} for i in range(2)]}, timeout=30)
    assert r.status_code == 200, r.text
    rows = r.json()["predictions"]
    np.testing.assert_allclose([row["sum"] for row in rows], a + b)
    assert [row["flag"] for row in rows] == (a > b).tolist()
    r = requests.post(f"{url}/two/v1/models/two_io:predict", json={"inputs": {"a": a.tolist(), "b": b.tolist()}},
                      timeout=30)
    assert r.json()["outputs"]["flag"] == (a > b).tolist()


def test_autoscaling_adds_a_replica_under_load(cluster):
    url = cluster["url"]

    def replicas():
        states = serve.status().applications["two_io"].deployments["ModelDeployment"].replica_states
        return sum(n for state, n in states.items() if str(getattr(state, "value", state)) == "RUNNING")

    assert replicas() == 1
    stop = threading.Event()
    failures = []
    body = {"inputs": {"a": [[1, 2, 3]] * 64, "b": [[3, 2, 1]] * 64}}

    def client():
        s = requests.Session()
        while not stop.is_set():
            r = s.post(f"{url}/two/v1/models/two_io:predict", json=body, timeout=60)
            if r.status_code != 200:
                failures.append(r.text[:200])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    try:
        while replicas() < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert replicas() == 2
    assert not failures, failures[:3]


def test_shutdown_is_bounded(cluster):
    started = time.monotonic()
    serve.shutdown()
    ray.shutdown()
    cluster["cluster"].shutdown()
    assert time.monotonic() - started < 60
