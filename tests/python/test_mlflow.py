"""An MLflow registry as a base path (models:/name@alias): a registry on SQLite with a local
artifact store, versions registered from runs, aliases moved while serving. The alias in the
base path answers unlabelled requests; every alias is a version label; a moved alias is a hot
swap and the version no alias names is unloaded; a pinned version; bad URIs and aliases refused."""
import time

import onnx
import pytest
import requests

import mserve
from serve_util import scale_model

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")


@pytest.fixture
def registry(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("serving", artifact_location=(tmp_path / "artifacts").as_uri())
    client = MlflowClient()
    client.create_registered_model("fraud")

    def register(factor):
        path = tmp_path / f"scale-{factor}.onnx"
        onnx.save(scale_model(factor), str(path))
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_artifact(str(path), artifact_path="model")
        return int(client.create_model_version("fraud", f"runs:/{run.info.run_id}/model", run.info.run_id).version)

    yield client, register
    mlflow.set_tracking_uri(None)


def predict(url, path="/v1/models/fraud:predict"):
    r = requests.post(url + path, json={"instances": [[1.0, 2.0, 3.0, 4.0]]})
    return r.json()["predictions"][0][0] if r.ok else r.status_code


def wait(cond, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_alias_is_served_and_a_moved_alias_swaps(registry, tmp_path):
    client, register = registry
    v1, v2 = register(1.0), register(2.0)
    client.set_registered_model_alias("fraud", "champion", v1)
    client.set_registered_model_alias("fraud", "challenger", v2)
    with mserve.start({"fraud": "models:/fraud@champion"}, port=0, quiet=True, file_system_poll_wait_seconds=1,
                      remote_cache_dir=str(tmp_path / "cache")) as s:
        s.wait_ready()
        assert predict(s.url) == 1.0  # the alias the base path names, though version 2 is newer
        assert predict(s.url, "/v1/models/fraud/labels/challenger:predict") == 2.0
        assert predict(s.url, "/v1/models/fraud/labels/champion:predict") == 1.0
        reg = requests.get(f"{s.url}/v1/registry/fraud").json()
        assert reg["labels"] == {"champion": str(v1), "challenger": str(v2)}
        assert reg["source"] == "models:/fraud@champion"
        src = requests.get(f"{s.url}/v1/models/fraud").json()["source"]
        assert src["uri"] == "models:/fraud@champion" and src["ok"]
        # Promotion: the champion alias moves to version 2.
        v3 = register(3.0)
        client.set_registered_model_alias("fraud", "champion", v2)
        client.set_registered_model_alias("fraud", "challenger", v3)
        wait(lambda: predict(s.url) == 2.0, "the moved alias to answer")
        wait(lambda: predict(s.url, "/v1/models/fraud/labels/challenger:predict") == 3.0, "the new challenger")
        wait(lambda: [v["version"] for v in requests.get(f"{s.url}/v1/models/fraud").json()["model_version_status"]]
             == [str(v3), str(v2)], "version 1 to be unloaded")


def test_a_pinned_version_and_bad_uris(registry, tmp_path):
    _, register = registry
    register(5.0)
    v = register(6.0)
    with mserve.start(f"models:/fraud/{v - 1}", model_name="fraud", port=0, quiet=True,
                      remote_cache_dir=str(tmp_path / "cache")) as s:
        s.wait_ready()
        assert predict(s.url) == 5.0
    with pytest.raises(mserve.InvalidArgument, match="models:/<name>@<alias>"):
        mserve.start("models:/fraud", model_name="fraud", port=0, quiet=True)
    with pytest.raises(mserve.Unavailable, match="no alias 'gold'"):
        mserve.start("models:/fraud@gold", model_name="fraud", port=0, quiet=True,
                     remote_cache_dir=str(tmp_path / "cache"))


def test_a_rollout_between_aliases(registry, tmp_path):
    client, register = registry
    v1, v2 = register(1.0), register(2.0)
    client.set_registered_model_alias("fraud", "champion", v1)
    client.set_registered_model_alias("fraud", "challenger", v2)
    models = {"fraud": {"base_path": "models:/fraud@champion",
                        "rollout": {"arms": {"champion": 50, "challenger": 50}}}}
    with mserve.start(models, port=0, quiet=True, remote_cache_dir=str(tmp_path / "cache")) as s:
        s.wait_ready()
        answers = {predict(s.url) for _ in range(200)}
        assert answers == {1.0, 2.0}


def test_a_registry_that_fails_keeps_what_is_served():
    from mserve.mlflow_source import Bridge

    class Flaky:
        name, uri, error = "fraud", "models:/fraud@champion", ""
        fail = True

        def sync(self):
            if self.fail:
                raise ConnectionError("registry unreachable")
            return {"name": "fraud", "base_path": "/cache", "versions": [2], "labels": {"champion": 2}}

    entries = [{"name": "fraud", "base_path": "/cache", "versions": [1], "labels": {"champion": 1}}]
    reloads, lines, reports = [], [], []
    src = Flaky()
    bridge = Bridge([src], entries, 0, lambda e: reloads.append([dict(x) for x in e]), lines.append,
                    lambda *a: reports.append(a))
    bridge.sync_once()
    bridge.sync_once()  # the same error is logged once
    assert reloads == [] and entries[0]["versions"] == [1]
    assert reports == [("fraud", "models:/fraud@champion", "registry unreachable")] * 2
    assert lines == ["model 'fraud': cannot read models:/fraud@champion: registry unreachable "
                     "(serving what was mirrored)"]
    src.fail = False
    bridge.sync_once()
    assert reloads == [[{"name": "fraud", "base_path": "/cache", "versions": [2], "labels": {"champion": 2}}]]
    assert lines[-1] == "model 'fraud': models:/fraud@champion is readable again"
    assert reports[-1] == ("fraud", "models:/fraud@champion", "")
