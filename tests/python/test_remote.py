"""Models on an S3-compatible store (moto's server on loopback, boto3 as the uploader): versions
uploaded while the server polls are mirrored and hot-swapped, an upload in progress waits, a
deleted version is unloaded by the version policy, and a store that goes away leaves the serving
version serving with the error in the status and metrics, until it comes back. The signing and
the mirror's rules are tested in tests/cpp/server/test_remote.cc."""
import io
import re
import time

import numpy as np
import onnx
import pytest
import requests

import mserve
from serve_util import scale_model

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

X = {"instances": [[1.0, 2.0, 3.0, 4.0]]}


@pytest.fixture
def store(monkeypatch, tmp_path):
    """A running S3 server with a bucket 'zoo'; (endpoint, boto3 client)."""
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")
    s3.create_bucket(Bucket="zoo")
    yield endpoint, s3, server
    server.stop()


def upload(s3, key, model):
    buf = io.BytesIO()
    onnx.save(model, buf)
    s3.put_object(Bucket="zoo", Key=key, Body=buf.getvalue())


def predict(url):
    r = requests.post(f"{url}/v1/models/m:predict", json=X)
    return r.status_code, (r.json()["predictions"][0][0] if r.ok else r.text)


def status(url):
    return requests.get(f"{url}/v1/models/m").json()


def wait(cond, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def metric(url, name):
    for line in requests.get(f"{url}/metrics").text.splitlines():
        m = re.match(rf'^{name}\{{model="m"\}} (\S+)$', line)
        if m:
            return float(m.group(1))
    raise AssertionError(f"no {name} in the metrics")


def test_versions_from_s3_are_mirrored_swapped_and_removed(store, tmp_path):
    endpoint, s3, _ = store
    upload(s3, "models/m/1/model.onnx", scale_model(1.0))
    s3.put_object(Bucket="zoo", Key="models/m/README", Body=b"not a version")
    uri = f"s3://{endpoint}/zoo/models/m"
    with mserve.start({"m": {"base_path": uri, "version_policy": "all"}}, port=0, quiet=True,
                      file_system_poll_wait_seconds=1, remote_cache_dir=str(tmp_path / "cache")) as s:
        s.wait_ready()
        assert predict(s.url) == (200, 1.0)
        src = status(s.url)["source"]
        assert src["uri"] == uri and src["ok"] and src["downloaded_bytes"] > 0
        # Version 2 uploaded while serving: one pass sees it arrive (it waits), the next brings it.
        upload(s3, "models/m/2/model.onnx", scale_model(2.0))
        wait(lambda: "2" in status(s.url)["source"]["waiting"], "version 2 to be seen arriving")
        wait(lambda: predict(s.url) == (200, 2.0), "version 2 to answer")
        versions = {v["version"]: v["state"] for v in status(s.url)["model_version_status"]}
        assert versions == {"2": "AVAILABLE", "1": "AVAILABLE"}
        # Deleted from the store: unloaded (the policy serves what the store holds).
        s3.delete_object(Bucket="zoo", Key="models/m/1/model.onnx")
        wait(lambda: [v["version"] for v in status(s.url)["model_version_status"]] == ["2"], "version 1 to go")
        mirrored = sorted(p.name for p in (tmp_path / "cache" / "models").iterdir())
        assert len(mirrored) == 1 and mirrored[0].startswith("m-")
        assert sorted(p.name for p in (tmp_path / "cache" / "models" / mirrored[0]).iterdir()) == [".source-2", "2"]
        assert metric(s.url, "mserve_model_source_up") == 1


def test_a_store_that_goes_away_leaves_the_version_serving(store, tmp_path):
    endpoint, s3, server = store
    upload(s3, "m/1/model.onnx", scale_model(3.0))
    with mserve.start(f"s3://{endpoint}/zoo/m", model_name="m", port=0, quiet=True, file_system_poll_wait_seconds=1,
                      remote_cache_dir=str(tmp_path / "cache")) as s:
        s.wait_ready()
        assert predict(s.url) == (200, 3.0)
        server.stop()
        src = wait(lambda: (lambda x: x if not x["ok"] else None)(status(s.url)["source"]), "the failure to show")
        assert "cannot reach" in src["error"] and src["failures"] >= 1
        assert metric(s.url, "mserve_model_source_up") == 0
        assert predict(s.url) == (200, 3.0)  # still serving what was mirrored
        host, port = endpoint.split(":")
        again = moto_server.ThreadedMotoServer(ip_address=host, port=int(port), verbose=False)
        again.start()
        try:
            wait(lambda: status(s.url)["source"]["ok"], "recovery")
            assert metric(s.url, "mserve_model_source_up") == 1
        finally:
            again.stop()


def test_bad_s3_uris_are_refused(store):
    with pytest.raises(mserve.InvalidArgument, match="no bucket"):
        mserve.start("s3://", model_name="m", port=0, quiet=True)
    with pytest.raises(mserve.InvalidArgument, match="port that is not a number"):
        mserve.start("s3://host:port/zoo/m", model_name="m", port=0, quiet=True)


def test_a_missing_bucket_is_reported(store, tmp_path):
    endpoint, _, _ = store
    with mserve.start(f"s3://{endpoint}/nope/m", model_name="m", port=0, quiet=True, file_system_poll_wait_seconds=1,
                      remote_cache_dir=str(tmp_path / "cache")) as s:
        src = wait(lambda: (lambda x: x if x.get("source", {}).get("syncs") else None)(status(s.url)), "a sync")
        assert not src["source"]["ok"] and "NoSuchBucket" in src["source"]["error"]
        assert not s.ready
        assert np.isfinite(metric(s.url, "mserve_model_source_failures_total"))
