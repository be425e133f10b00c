"""MLflow registry base paths: ``models:/name@alias`` and ``models:/name/3`` in ``serve()`` /
``start()`` / ``--model_base_path`` (needs the optional ``mlflow`` client, e.g. ``mlflow-skinny``;
the registry is MLflow's tracking / registry URI, ``MLFLOW_TRACKING_URI``).

The registry is read in Python (the MLflow client), on a thread of the serving process; the
server itself serves a local folder: each version some alias of the model points to (or the one
pinned version) is downloaded through a temporary folder and renamed into the model's cache folder,
and the model's config is replaced with those versions, the aliases as TF Serving version labels
(``labels/champion``), and a one-arm rollout on the alias the base path names, so requests that
name no version or label go to it (a model's own ``rollout`` block, over its aliases, replaces
it). A moved alias becomes a hot swap through the server's usual version machinery; a registry
that cannot be read leaves what is served serving.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from .errors import InvalidArgument, Unavailable

PREFIX = "models:/"


def parse(uri: str) -> tuple[str, str | None, int | None]:
    """(model name, alias, version) of models:/name@alias or models:/name/version."""
    rest = uri[len(PREFIX):].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        if name and alias and "/" not in alias:
            return name, alias, None
    elif "/" in rest:
        name, version = rest.rsplit("/", 1)
        if name and version.isdigit():
            return name, None, int(version)
    raise InvalidArgument(f"{uri!r}: give models:/<name>@<alias> or models:/<name>/<version>")


class MlflowSource:
    """One served model whose base path is a models:/ URI: sync() brings what the registry says
    into `dir` and returns the server's model entry for it."""

    def __init__(self, name: str, uri: str, cache_dir: str, rollout: str | None = None):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise Unavailable(f"model {name!r}: {uri} needs the mlflow client (pip install mlflow-skinny)") from None
        self.name, self.uri, self.rollout = name, uri, rollout  # rollout: the user's block, if any
        self.registered, self.alias, self.version = parse(uri)
        self.client = MlflowClient()
        from . import _server
        self.dir = _server.mirror_dir(cache_dir, name, uri)  # as the server's own mirrors ("": the default)
        os.makedirs(self.dir, exist_ok=True)
        for entry in os.listdir(self.dir):
            if entry.startswith(".tmp-"):
                shutil.rmtree(os.path.join(self.dir, entry), ignore_errors=True)
        self.error = ""

    def _bring(self, version: int) -> None:
        target = os.path.join(self.dir, str(version))
        if os.path.isdir(target):
            return
        from mlflow.artifacts import download_artifacts
        uri = self.client.get_model_version_download_uri(self.registered, str(version))
        tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=self.dir)
        try:
            got = download_artifacts(artifact_uri=uri, dst_path=tmp)
            onnx = [os.path.join(d, f) for d, _, files in os.walk(got) for f in files if f.endswith(".onnx")]
            if len(onnx) != 1:
                raise Unavailable(f"{self.uri}: version {version} holds {len(onnx)} .onnx files; one is served")
            folder = os.path.dirname(onnx[0])  # the model's folder, with any external data beside it
            staged = os.path.join(tmp, ".version")
            shutil.move(folder, staged)
            if os.path.basename(onnx[0]) != "model.onnx":
                os.rename(os.path.join(staged, os.path.basename(onnx[0])), os.path.join(staged, "model.onnx"))
            os.rename(staged, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def sync(self) -> dict[str, Any]:
        """The model entry (start()'s dict) after bringing in what the registry names now."""
        if self.alias is not None:
            aliases = {a: int(v) for a, v in self.client.get_registered_model(self.registered).aliases.items()}
            if self.alias not in aliases:
                raise Unavailable(f"{self.uri}: the registry has no alias {self.alias!r} for {self.registered!r}")
        else:
            self.client.get_model_version(self.registered, str(self.version))  # exists
            aliases = {}
        versions = sorted(set(aliases.values()) | ({self.version} if self.version is not None else set()))
        for v in versions:
            self._bring(v)
        for folder in os.listdir(self.dir):
            if folder.isdigit() and int(folder) not in versions:
                shutil.rmtree(os.path.join(self.dir, folder), ignore_errors=True)
        entry: dict[str, Any] = {"name": self.name, "base_path": self.dir, "policy": "specific", "versions": versions,
                                 "labels": aliases}
        if self.rollout is not None:
            entry["rollout"] = self.rollout
        elif self.alias is not None:
            entry["rollout"] = f'arm {{ label: "{self.alias}" weight: 100 }}'
        return entry


class Bridge:
    """Keeps a running server's models:/ models in step with the registry, every `seconds`."""

    def __init__(self, sources: list[MlflowSource], entries: list[dict[str, Any]], seconds: float,
                 reload: Callable[[list[dict[str, Any]]], None], log: Callable[[str], None] | None = None,
                 report: Callable[[str, str, str], None] | None = None):
        self.sources, self.entries, self.seconds, self.reload = sources, entries, seconds, reload
        self.log, self.report = log, report  # report(model, uri, error): the server's status of the source
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mserve-mlflow", daemon=True)

    def start(self) -> None:
        if self.sources and self.seconds > 0:
            self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()

    def sync_once(self) -> None:
        changed = False
        for src in self.sources:
            try:
                entry = src.sync()
                if src.error and self.log:
                    self.log(f"model '{src.name}': {src.uri} is readable again")
                src.error = ""
            except Exception as e:  # the registry or the store: keep serving what is mirrored
                if str(e) != src.error and self.log:
                    self.log(f"model '{src.name}': cannot read {src.uri}: {e} (serving what was mirrored)")
                src.error = str(e)
                continue
            finally:
                if self.report:
                    self.report(src.name, src.uri, src.error)
            for i, old in enumerate(self.entries):
                if old["name"] == src.name and old != entry:
                    self.entries[i] = entry
                    changed = True
        if changed:
            self.reload(self.entries)

    def _run(self) -> None:
        while not self.stopping.wait(self.seconds):
            self.sync_once()
