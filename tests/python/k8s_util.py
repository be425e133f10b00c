"""Kubernetes manifests in the tests: KServe's CRD schemas read strictly, as kubeconform does, and
a container's environment and arguments as the kubelet expands them."""
import copy
import os
import pathlib
import re

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRDS = pathlib.Path(os.environ.get("MSERVE_KSERVE_CRDS", ROOT.parent / "shared" / "kserve-crds"))


def strict(schema):
    """The CRD schema as kubeconform's strict mode reads it: unknown fields are errors wherever
    properties are listed, x-kubernetes-int-or-string is integer or string."""
    s = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, list):
            for n in node:
                walk(n)
            return
        if not isinstance(node, dict):
            return
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if "properties" in node and "additionalProperties" not in node and \
                not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for v in node.values():
            walk(v)

    walk(s)
    return s


def crd_validators():
    """(apiVersion, kind) -> a strict validator, for every CRD in CRDS."""
    assert CRDS.is_dir(), f"KServe CRD schemas not found at {CRDS} (set MSERVE_KSERVE_CRDS)"
    out = {}
    for f in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(f.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            out[(f"{group}/{v['name']}", kind)] = jsonschema.Draft7Validator(strict(v["schema"]["openAPIV3Schema"]))
    return out


def errors(validators, doc):
    """What is wrong with `doc` against its CRD, and its name if it is not a DNS-1123 label."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    assert key in validators, f"no CRD for {key}"
    found = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validators[key].iter_errors(doc)]
    name = doc.get("metadata", {}).get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name):
        found.append(f"metadata.name {name!r} is not a DNS-1123 label")
    return found


def container_env(container):
    """The container's environment as the kubelet sets it: plain values, and resourceFieldRef
    limits/requests rounded up to whole units (divisor 1)."""
    values = {}
    for e in container.get("env", []):
        if "value" in e:
            values[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["resourceFieldRef"]
            kind, res = ref["resource"].split(".")
            q = str(container["resources"][kind][res])
            values[e["name"]] = str(-(-int(q[:-1]) // 1000)) if q.endswith("m") else str(int(float(q) + 0.999))
    return values


def expand(words, env):
    """$(VAR) in command and args, expanded from the container's env as the kubelet does."""
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], w) for w in words]
