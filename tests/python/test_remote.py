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
        # The registry names the store as the source and the mirrored file, with its digest.
        reg = requests.get(f"{s.url}/v1/registry/m").json()
        (v2,) = reg["versions"]
        body = s3.get_object(Bucket="zoo", Key="models/m/2/model.onnx")["Body"].read()
        import hashlib
        assert reg["source"] == uri and v2["digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
        assert v2["path"].startswith(str(tmp_path / "cache"))


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


def send_body(handler, data, cut):
    """Sends a 200 answer's body whole, or (cut) half of it and closes the connection."""
    if not cut:
        handler.wfile.write(data)
        return
    handler.wfile.write(data[: len(data) // 2])
    handler.wfile.flush()
    handler.close_connection = True
    handler.connection.shutdown(2)


class WebHdfs:
    """A small WebHDFS server over a local folder: LISTSTATUS and GETFILESTATUS-like listings from
    the namenode, OPEN answered with a 307 to a separate datanode that sends the bytes. Faults:
    `cut` (the datanode closes after half of a file, that many times), `busy` (the namenode answers
    503, that many times)."""

    def __init__(self, root):
        import http.server
        import json
        import os
        import threading
        from urllib.parse import parse_qs, unquote, urlparse
        self.root, self.cut, self.busy, self.opens = root, 0, 0, 0
        fs = self

        def local(path):
            return os.path.join(root, unquote(path[len("/webhdfs/v1"):]).lstrip("/"))

        class DataNode(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with open(local(urlparse(self.path).path), "rb") as f:
                    data = f.read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                cut, fs.cut = fs.cut > 0, max(0, fs.cut - 1)
                send_body(self, data, cut)

            def log_message(self, *a):
                pass

        class NameNode(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def send(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                u = urlparse(self.path)
                q = parse_qs(u.query)
                if fs.busy > 0:
                    fs.busy -= 1
                    return self.send(503, b'{"RemoteException":{"message":"busy"}}')
                path = local(u.path)
                if q["op"][0] == "LISTSTATUS":
                    if not os.path.isdir(path):
                        missing = {"RemoteException": {"message": f"{u.path} not found"}}
                        return self.send(404, json.dumps(missing).encode())
                    entries = []
                    for n in sorted(os.listdir(path)):
                        p = os.path.join(path, n)
                        entries.append({"pathSuffix": n, "type": "DIRECTORY" if os.path.isdir(p) else "FILE",
                                        "length": os.path.getsize(p),
                                        "modificationTime": int(os.path.getmtime(p) * 1000)})
                    return self.send(200, json.dumps({"FileStatuses": {"FileStatus": entries}}).encode())
                if q["op"][0] == "OPEN":
                    fs.opens += 1
                    return self.send(307, headers=[("Location", f"{fs.datanode_url}{u.path}?op=OPEN")])
                self.send(400)

            def log_message(self, *a):
                pass

        self.dn = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DataNode)
        self.nn = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NameNode)
        self.datanode_url = f"http://127.0.0.1:{self.dn.server_address[1]}"
        self.authority = f"127.0.0.1:{self.nn.server_address[1]}"
        for srv in (self.dn, self.nn):
            threading.Thread(target=srv.serve_forever, daemon=True).start()

    def close(self):
        self.nn.shutdown()
        self.dn.shutdown()


def test_webhdfs_versions_with_redirects_and_faults(tmp_path):
    from serve_util import write_version
    root = tmp_path / "hdfs"
    write_version(root / "models" / "m", 1, scale_model(1.0))
    hdfs = WebHdfs(str(root))
    hdfs.cut = 1  # the first download is cut mid-file
    try:
        with mserve.start(f"webhdfs://{hdfs.authority}/models/m", model_name="m", port=0, quiet=True,
                          file_system_poll_wait_seconds=1, remote_cache_dir=str(tmp_path / "cache")) as s:
            wait(lambda: s.ready, "version 1 after the cut download was retried")
            assert predict(s.url) == (200, 1.0)
            assert status(s.url)["source"]["failures"] >= 1 and hdfs.opens >= 2
            hdfs.busy = 2  # the namenode is busy for a while: serving goes on
            write_version(root / "models" / "m", 2, scale_model(2.0))
            wait(lambda: predict(s.url) == (200, 2.0), "version 2 to answer")
            assert status(s.url)["source"]["ok"]
    finally:
        hdfs.close()


class FaultyProxy:
    """Forwards requests to an S3 server unchanged (signatures stay valid: the Host header is the
    proxy's, as the client signed it), except: `slow` answers 503 SlowDown that many times, `cut`
    sends half of that many object bodies and closes."""

    def __init__(self, upstream):
        import http.client
        import http.server
        import threading
        self.slow, self.cut, self.seen = 0, 0, []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                proxy.seen.append(self.path)
                if proxy.slow > 0:
                    proxy.slow -= 1
                    body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                conn = http.client.HTTPConnection(*upstream.split(":"))
                conn.request("GET", self.path, headers=dict(self.headers))
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                cut = proxy.cut > 0 and "list-type" not in self.path and r.status == 200
                proxy.cut -= cut
                send_body(self, data, cut)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_s3_throttling_and_cut_downloads_recover(store, tmp_path):
    endpoint, s3, _ = store
    upload(s3, "m/1/model.onnx", scale_model(4.0))
    proxy = FaultyProxy(endpoint)
    proxy.slow = 2  # within one listing's retries (backoff 0.2 s, 0.4 s)
    proxy.cut = 1   # the first download is cut mid-file
    try:
        with mserve.start(f"s3://{proxy.endpoint}/zoo/m", model_name="m", port=0, quiet=True,
                          file_system_poll_wait_seconds=1, remote_cache_dir=str(tmp_path / "cache")) as s:
            wait(lambda: s.ready, "version 1 after the faults")
            assert predict(s.url) == (200, 4.0)
            src = status(s.url)["source"]
            assert src["ok"] and src["failures"] == 0  # the 503s waited out, the cut download fetched again
            objects = [p for p in proxy.seen if "list-type" not in p]
            assert len(objects) == 2 and proxy.slow == proxy.cut == 0
    finally:
        proxy.close()


def test_listings_over_a_thousand_keys_are_paged(store, tmp_path):
    endpoint, s3, _ = store
    for i in range(1005):
        s3.put_object(Bucket="zoo", Key=f"m/0-notes/{i:05d}", Body=b"")
    upload(s3, "m/1/model.onnx", scale_model(6.0))  # listed after the first page
    with mserve.start(f"s3://{endpoint}/zoo/m", model_name="m", port=0, quiet=True,
                      remote_cache_dir=str(tmp_path / "cache")) as s:
        s.wait_ready()
        assert predict(s.url) == (200, 6.0)
