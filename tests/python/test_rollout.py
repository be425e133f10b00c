"""Rollouts on loopback with real servers and real clients (requests; gRPC through the KServe v2
stubs of tritonclient): the weighted split and the version each answer names, stickiness by
header and by identity, weights changed at run time without a failed request (config file poll
and HandleReloadConfigRequest), shadow traffic the client never sees (differing, slow, failing),
and the guard's rollback of a failing canary. The split's arithmetic is tested in
tests/cpp/server/test_rollout.cc."""
import json
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from onnx import helper

import mserve
from op_harness import make_model
from serve_util import scale_model, write_version

grpc = pytest.importorskip("grpc")
pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402

X = [[1.0, 2.0, 3.0, 4.0]]
BODY = json.dumps({"instances": X})


def repo(tmp_path, candidate=None, canary=None):
    """Model 'm': version 1 answers x*1 (stable), 2 x*2 (canary), 3 the candidate (x*3)."""
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    write_version(base, 2, canary or scale_model(2.0))
    write_version(base, 3, candidate or scale_model(3.0))
    return str(base)


def model(base, rollout):
    return {"m": {"base_path": base, "version_policy": "all",
                  "labels": {"stable": 1, "canary": 2, "candidate": 3}, "rollout": rollout}}


def rest(session, url, headers=None, body=BODY, path="/v1/models/m:predict"):
    """(status, version that answered, arm, first output value) of one REST predict."""
    r = session.post(url + path, data=body, headers=headers or {})
    value = r.json()["predictions"][0][0] if r.status_code == 200 else None
    return r.status_code, int(r.headers.get("X-Model-Version", 0)), r.headers.get("X-Model-Arm"), value


def v2_request(x=X):
    req = service_pb2.ModelInferRequest(model_name="m")
    t = req.inputs.add(name="x", datatype="FP32", shape=list(np.shape(x)))
    req.raw_input_contents.append(np.asarray(x, np.float32).tobytes())
    del t
    return req


def infer(stub, metadata=(), req=None):
    """(status code, version from the trailing metadata, arm, first output value) of one gRPC infer."""
    try:
        resp, call = stub.ModelInfer.with_call(req or v2_request(), metadata=list(metadata))
    except grpc.RpcError as e:
        trailing = dict(e.trailing_metadata() or ())
        return e.code(), int(trailing.get("x-model-version", 0)), trailing.get("x-model-arm"), None
    trailing = dict(call.trailing_metadata())
    value = float(np.frombuffer(resp.raw_output_contents[0], np.float32).reshape(-1)[0])
    assert int(resp.model_version) == int(trailing["x-model-version"])
    return grpc.StatusCode.OK, int(trailing["x-model-version"]), trailing.get("x-model-arm"), value


def status(server):
    return requests.get(f"{server.url}/v1/models/m").json()["rollout"]


def metric(server, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in requests.get(f"{server.url}/metrics").text.splitlines():
        m = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if m and m.group(1) == name and all(p in m.group(2).split(",") for p in want.split(",")):
            return float(m.group(3))
    raise AssertionError(f"no {name}{{{want}}} in the metrics")


def many(n, call, threads=4):
    """n calls of call(i) over a few client threads, results in order."""
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(call, range(n)))


@pytest.fixture
def split(tmp_path):
    rollout = {"arms": {"stable": 90, "canary": 10}, "sticky_header": "x-user-id"}
    with mserve.start(model(repo(tmp_path), rollout), port=0, grpc_port=0, quiet=True) as s:
        s.wait_ready()
        yield s


def test_ten_thousand_requests_split_90_10_over_rest_and_grpc(split):
    local = threading.local()

    def over_rest(i):
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return rest(local.s, split.url)

    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(split.grpc_target))
    for results in (many(10000, over_rest), many(10000, lambda i: infer(stub))):
        assert all(r[0] in (200, grpc.StatusCode.OK) for r in results)
        # Each answer is the version it names, and the arm is the label of that version.
        assert all(value == version and arm == {1: "stable", 2: "canary"}[version]
                   for _, version, arm, value in results)
        share = Counter(r[1] for r in results)[2] / len(results)
        assert 0.08 <= share <= 0.12, share
    s = status(split)
    assert [a["weight"] for a in s["arms"]] == [90, 10]
    assert sum(a["requests"] for a in s["arms"]) == 20000
    assert metric(split, "mserve_rollout_weight_percent", model="m", arm="canary") == 10


def test_a_named_version_or_label_bypasses_the_split(split):
    sess = requests.Session()
    for path, want in (("/v1/models/m/versions/2:predict", 2), ("/v1/models/m/labels/stable:predict", 1),
                       ("/v1/models/m/labels/candidate:predict", 3)):
        results = [rest(sess, split.url, path=path) for _ in range(100)]
        assert {(r[1], r[2], r[3]) for r in results} == {(want, None, want)}
    # KServe v2 REST: split unless a version is named.
    v2 = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": X[0]}]}
    arms = {sess.post(f"{split.url}/v2/models/m/infer", json=v2).headers["X-Model-Arm"] for _ in range(200)}
    assert arms == {"stable", "canary"}
    r = sess.post(f"{split.url}/v2/models/m/versions/2/infer", json=v2)
    assert r.headers["X-Model-Version"] == "2" and "X-Model-Arm" not in r.headers
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(split.grpc_target))
    req = v2_request()
    req.model_version = "3"
    assert {infer(stub, req=req)[1:] for _ in range(50)} == {(3, None, 3.0)}


def test_the_same_key_always_lands_on_one_version(split):
    sess = requests.Session()
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(split.grpc_target))
    on = {}
    for u in range(400):
        key = f"user-{u}"
        seen = {rest(sess, split.url, {"X-User-Id": key})[1] for _ in range(3)}
        seen |= {infer(stub, [("x-user-id", key)])[1] for _ in range(2)}
        assert len(seen) == 1, (key, seen)  # one arm per user, on both protocols
        on[key] = seen.pop()
    share = Counter(on.values())[2] / len(on)
    assert 0.05 <= share <= 0.15, share  # Binomial(400, 0.1): 3.3 sd either way


def test_sticky_by_identity(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("".join(f"token-{u:04d}-abcdefgh user{u}\n" for u in range(200)))
    rollout = {"arms": {"stable": 50, "canary": 50}, "sticky_header": "identity"}
    with mserve.start(model(repo(tmp_path), rollout), port=0, quiet=True, auth_tokens_file=str(tokens)) as s:
        s.wait_ready()
        sess = requests.Session()
        versions = Counter()
        for u in range(200):
            auth = {"Authorization": f"Bearer token-{u:04d}-abcdefgh"}
            seen = {rest(sess, s.url, auth)[1] for _ in range(3)}
            assert len(seen) == 1
            versions[seen.pop()] += 1
        assert 70 <= versions[2] <= 130, versions


def test_weights_change_through_the_config_file_without_a_failed_request(tmp_path):
    base = repo(tmp_path)
    cfg = tmp_path / "models.config"

    def write(stable, canary):
        text = f"""model_config_list {{ config {{ name: 'm' base_path: '{base}' model_platform: 'onnx'
  model_version_policy {{ all {{}} }}
  version_labels {{ key: 'stable' value: 1 }} version_labels {{ key: 'canary' value: 2 }}
  rollout {{ arm {{ label: 'stable' weight: {stable} }} arm {{ label: 'canary' weight: {canary} }} }} }} }}"""
        cfg.write_text(text)

    write(100, 0)
    with mserve.start(str(cfg), port=0, quiet=True, model_config_file_poll_wait_seconds=1,
                      file_system_poll_wait_seconds=0) as s:
        s.wait_ready()
        stop = threading.Event()
        results = []

        def client():
            sess = requests.Session()
            while not stop.is_set():
                results.append(rest(sess, s.url))

        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            write(0, 100)
            deadline = time.time() + 20
            while time.time() < deadline and not (results and results[-1][1] == 2 and len(results) > 50):
                time.sleep(0.1)
            n = len(results)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert all(r[0] == 200 for r in results), Counter(r[0] for r in results)
        assert results[0][1] == 1 and all(r[1] == 2 for r in results[n:]), "the new weights did not apply"
        assert [a["weight"] for a in status(s)["arms"]] == [0, 100]


def test_weights_change_through_handle_reload_config_request(split, tmp_path):
    import sys

    from test_grpc import TFS_PROTOS, protoc
    out = tmp_path / "stubs"
    out.mkdir()
    protoc(out, TFS_PROTOS, f"--python_out={out}", f"--grpc_python_out={out}")
    sys.path.append(str(out))
    from mserve_apis import config_service_pb2, config_service_pb2_grpc
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
    ch = grpc.insecure_channel(split.grpc_target)
    cfg = config_service_pb2_grpc.ConfigServiceStub(ch).GetModelServerConfig(
        config_service_pb2.GetModelServerConfigRequest()).config
    (m,) = cfg.model_config_list.config
    assert [(a.label, a.weight) for a in m.rollout.arm] == [("stable", 90), ("canary", 10)]
    assert m.rollout.sticky_header == "x-user-id"
    req = model_management_pb2.ReloadConfigRequest()
    req.config.CopyFrom(cfg)
    req.config.model_config_list.config[0].rollout.arm[0].weight = 50
    req.config.model_config_list.config[0].rollout.arm[1].weight = 50
    assert model_service_pb2_grpc.ModelServiceStub(ch).HandleReloadConfigRequest(req).status.error_code == 0
    assert [a["weight"] for a in status(split)["arms"]] == [50, 50]
    sess = requests.Session()
    share = Counter(rest(sess, split.url)[1] for _ in range(2000))[2] / 2000
    assert 0.45 <= share <= 0.55, share
    # A rollout naming a label the model lacks is refused with the reason; the split stays.
    bad = model_management_pb2.ReloadConfigRequest()
    bad.config.CopyFrom(req.config)
    bad.config.model_config_list.config[0].rollout.arm[1].label = "nope"
    with pytest.raises(grpc.RpcError) as e:
        model_service_pb2_grpc.ModelServiceStub(ch).HandleReloadConfigRequest(bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'nope'" in e.value.details()
    assert [a["weight"] for a in status(split)["arms"]] == [50, 50]
    ch.close()


def wait_for_shadow(server, total):
    deadline = time.time() + 60
    while time.time() < deadline:
        sh = status(server)["shadow"]
        if sh["queued"] == 0 and sum(sh[k] for k in ("compared", "dropped", "failed", "unavailable",
                                                      "mismatched")) == total:
            return sh
        time.sleep(0.05)
    raise AssertionError(f"the shadow did not finish: {status(server)['shadow']}")


def test_a_differing_shadow_is_counted_and_never_seen(tmp_path):
    rollout = {"arms": {"stable": 90, "canary": 10}, "shadow": {"label": "candidate", "percent": 100, "queue": 10000}}
    with mserve.start(model(repo(tmp_path), rollout), port=0, grpc_port=0, quiet=True) as s:
        s.wait_ready()
        sess = requests.Session()
        stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(s.grpc_target))
        results = [rest(sess, s.url) for _ in range(200)] + [infer(stub) for _ in range(200)]
        # Clients see the primary's answers only: x*1 or x*2, never the candidate's x*3.
        assert all(r[0] in (200, grpc.StatusCode.OK) and r[3] == r[1] in (1, 2) for r in results)
        sh = wait_for_shadow(s, 400)
        assert sh["compared"] + sh["dropped"] == 400 and sh["compared"] > 300, sh
        assert sh["failed"] == sh["unavailable"] == sh["mismatched"] == 0
        # |3x - x| = 8 or |3x - 2x| = 4 at x = 4: every compared request is over 1, none over 10.
        labels = {"model": "m", "label": "candidate"}
        assert metric(s, "mserve_shadow_max_abs_diff_bucket", le="1", **labels) == 0
        assert metric(s, "mserve_shadow_max_abs_diff_bucket", le="10", **labels) == sh["compared"]
        assert metric(s, "mserve_shadow_requests_total", outcome="compared", **labels) == sh["compared"]
        # The candidate answers nothing by itself: every split request went to stable or canary.
        assert metric(s, "mserve_rollout_requests_total", model="m", arm="stable", outcome="ok") + metric(
            s, "mserve_rollout_requests_total", model="m", arm="canary", outcome="ok") == 400


def slow_scale_model(factor, rounds=12, n=384):
    """y = x * factor, after `rounds` products of a [n, n] matrix scaled by x[0, 0] (so nothing
    folds at load): slow on purpose, the answer unchanged (the product enters as 0 * sum)."""
    rng = np.random.default_rng(0)
    c = (rng.standard_normal((n, n)) / n).astype(np.float32)
    nodes = [helper.make_node("Slice", ["x", "s0", "s1"], ["x00"]),
             helper.make_node("Reshape", ["x00", "one"], ["x0"]),
             helper.make_node("Mul", ["c", "x0"], ["h0"])]
    for i in range(rounds):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "c"], [f"h{i + 1}"]))
    nodes += [helper.make_node("ReduceSum", [f"h{rounds}"], ["total"], keepdims=0),
              helper.make_node("Mul", ["total", "zero"], ["nothing"]),
              helper.make_node("Mul", ["x", "k"], ["y0"]),
              helper.make_node("Add", ["y0", "nothing"], ["y"])]
    return make_model(nodes, [("x", np.float32, ["batch", 4])], [("y", np.float32, ["batch", 4])],
                      {"c": c, "s0": np.array([0, 0], np.int64), "s1": np.array([1, 1], np.int64),
                       "one": np.array([1], np.int64), "zero": np.array(0, np.float32),
                       "k": np.array(factor, np.float32)})


def test_a_slow_shadow_never_holds_up_a_client(tmp_path):
    rollout = {"arms": {"stable": 100}, "shadow": {"label": "candidate", "percent": 100, "queue": 2}}
    with mserve.start(model(repo(tmp_path, candidate=slow_scale_model(3.0)), rollout), port=0, grpc_port=0,
                      quiet=True) as s:
        s.wait_ready()
        sess = requests.Session()
        stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(s.grpc_target))
        results = [rest(sess, s.url) for _ in range(100)] + [infer(stub) for _ in range(100)]
        assert all(r[1:] == (1, "stable", 1.0) and r[0] in (200, grpc.StatusCode.OK) for r in results)
        # The queue of 2 overflowed: the clients went on while the shadow was still running, and
        # no answer waited for it.
        sh = wait_for_shadow(s, 200)
        assert sh["dropped"] > 0 and sh["compared"] > 0, sh
        assert sh["dropped"] + sh["compared"] == 200


def test_a_failing_shadow_never_fails_a_client(tmp_path):
    # The candidate reshapes 4 values into rows of 3: every run of it fails.
    failing = make_model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
                         [("x", np.float32, ["batch", 4])], [("y", np.float32, None)],
                         {"shape": np.array([-1, 3], np.int64)})
    rollout = {"arms": {"stable": 90, "canary": 10}, "shadow": {"label": "candidate", "percent": 100, "queue": 10000}}
    with mserve.start(model(repo(tmp_path, candidate=failing), rollout), port=0, grpc_port=0, quiet=True) as s:
        s.wait_ready()
        sess = requests.Session()
        stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(s.grpc_target))
        results = [rest(sess, s.url) for _ in range(150)] + [infer(stub) for _ in range(150)]
        assert all(r[0] in (200, grpc.StatusCode.OK) and r[3] == r[1] for r in results)
        sh = wait_for_shadow(s, 300)
        assert sh["failed"] + sh["dropped"] == 300 and sh["failed"] > 200 and sh["compared"] == 0, sh


def test_split_and_shadow_with_batching(tmp_path):
    rollout = {"arms": {"stable": 50, "canary": 50}, "shadow": {"label": "candidate", "percent": 100, "queue": 10000}}
    models = model(repo(tmp_path), rollout)
    models["m"]["batching"] = {"max_batch_size": 8, "batch_timeout_micros": 2000}
    with mserve.start(models, port=0, quiet=True) as s:
        s.wait_ready()
        local = threading.local()

        def call(i):
            if not hasattr(local, "s"):
                local.s = requests.Session()
            x = [[float(i), 1.0, 2.0, 3.0]]
            st, version, arm, value = rest(local.s, s.url, body=json.dumps({"instances": x}))
            return st, version, arm, value == i * version

        results = many(400, call, threads=8)
        assert all(r[0] == 200 and r[3] for r in results)
        assert 140 <= Counter(r[1] for r in results)[2] <= 260
        sh = wait_for_shadow(s, 400)
        assert sh["compared"] == 400, sh


def table_model(rows):
    """y = table[idx] with table = 0, 1, ..., rows - 1; an index past the table fails the request."""
    return make_model([helper.make_node("Gather", ["table", "idx"], ["y"])],
                      [("idx", np.int64, ["batch"])], [("y", np.float32, ["batch"])],
                      {"table": np.arange(rows, dtype=np.float32)})


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_a_canary_failing_5_percent_is_rolled_back_within_a_window(tmp_path, protocol):
    base = tmp_path / "m"
    write_version(base, 1, table_model(100))
    write_version(base, 2, table_model(95))  # indices 95..99, one request in 20, fail on the canary
    window = 5
    rollout = {"arms": {"stable": 80, "canary": 20},
               "guard": {"window_seconds": window, "min_requests": 60, "max_error_rate_increase": 0.02}}
    audit = tmp_path / "audit.log"
    with mserve.start({"m": {"base_path": str(base), "version_policy": "all",
                             "labels": {"stable": 1, "canary": 2}, "rollout": rollout}},
                      port=0, grpc_port=0, quiet=True, audit_log=str(audit)) as s:
        s.wait_ready()
        sess = requests.Session()
        stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(s.grpc_target))

        def call(i):
            if protocol == "rest":
                r = sess.post(f"{s.url}/v1/models/m:predict", json={"instances": [i % 100]})
                return r.status_code == 200, int(r.headers["X-Model-Version"])
            req = service_pb2.ModelInferRequest(model_name="m")
            req.inputs.add(name="idx", datatype="INT64", shape=[1])
            req.raw_input_contents.append(np.array([i % 100], np.int64).tobytes())
            code, version, _, _ = infer(stub, req=req)
            return code == grpc.StatusCode.OK, version

        results, first_failure, rolled_back = [], None, None
        for i in range(20000):
            ok, version = call(i)
            results.append((ok, version))
            if not ok and first_failure is None:
                first_failure = time.monotonic()
            if i % 20 == 0 and status(s)["arms"][1]["rolled_back"]:
                rolled_back = time.monotonic()
                break
        assert rolled_back is not None, status(s)
        assert rolled_back - first_failure < window
        # Every failure was the canary's; the stable arm failed nothing.
        assert all(version == 2 for ok, version in results if not ok)
        assert any(not ok for ok, _ in results)
        arms = status(s)["arms"]
        assert arms[0]["errors"] == 0 and arms[0]["weight"] == 100 and arms[1]["weight"] == 0
        assert "error rate" in arms[1]["reason"]
        # From now on stable answers everything, the canary's version stays loaded.
        after = [call(i) for i in range(400)]
        assert all(ok and version == 1 for ok, version in after)
        assert metric(s, "mserve_rollout_rolled_back", model="m", arm="canary") == 1
        assert metric(s, "mserve_rollout_rollbacks_total", model="m", arm="canary") == 1
        assert requests.get(f"{s.url}/v1/models/m/versions/2").json()["model_version_status"][0]["state"] == "AVAILABLE"
    events = [json.loads(line) for line in audit.read_text().splitlines() if '"event"' in line]
    assert [(e["event"], e["model"], e["version"]) for e in events] == [("rollout_rollback", "m", 2)]
    assert events[0]["detail"].startswith("canary: weight 20% -> 0: error rate")
