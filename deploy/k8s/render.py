#!/usr/bin/env python3
"""Renders a Kustomize directory of deploy/k8s without kubectl.

    deploy/k8s/render.py deploy/k8s/overlays/inbound-mx > rendered.yaml

Debian 12 ships no kubectl or kustomize, so the tests (and an operator on
a Debian host) use this small renderer. It understands only the subset of
Kustomize that deploy/k8s uses and refuses anything else (exit 1, one line
saying what), so it cannot silently render something different:

- `resources`: YAML files (several documents each) and directories with a
  kustomization.yaml (built first, recursively);
- `namespace`: set on every namespaced object;
- `configMapGenerator` / `secretGenerator`: `files` (`KEY=PATH` or `PATH`),
  `literals`, `type` (Secrets), `behavior` create / merge / replace against
  a generator of a base; names get Kustomize's content hash suffix
  (unless `generatorOptions.disableNameSuffixHash`), and the references to
  them in pod templates (volumes, projected sources, env, envFrom) are
  renamed to match;
- `patches` with `path` to a JSON 6902 operation list (add, replace,
  remove, with RFC 6901 paths and `-` for appending) and a `target` of
  `kind` and/or `name`.

The output is the same objects as `kubectl kustomize` (test_deploy.py
compares the two when kubectl is installed); the order is by kind, then
namespace and name, and the YAML layout may differ.
"""

import base64
import copy
import hashlib
import json
import pathlib
import sys

import yaml

KNOWN_KEYS = {
    "apiVersion", "kind", "resources", "namespace", "configMapGenerator",
    "secretGenerator", "generatorOptions", "patches",
}
GENERATOR_KEYS = {"name", "files", "literals", "type", "behavior"}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
    "StorageClass", "CustomResourceDefinition", "PriorityClass",
}
KIND_ORDER = [
    "Namespace", "ServiceAccount", "ConfigMap", "Secret", "Service",
    "StatefulSet", "Deployment", "PodDisruptionBudget",
]


class RenderError(Exception):
    pass


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def kustomize_hash(obj):
    """Kustomize's name suffix: sha256 of the Go JSON encoding of kind,
    name, data (and type for Secrets), its first 10 hex digits with the
    vowels and some digits swapped for consonants (api/hasher)."""
    m = {"kind": obj["kind"], "name": obj["metadata"]["name"],
         "data": obj.get("data", {})}
    if obj["kind"] == "Secret":
        m["type"] = obj.get("type", "Opaque")
    elif obj.get("binaryData"):
        m["binaryData"] = obj["binaryData"]
    text = json.dumps(m, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    # Go's encoding/json escapes these; the hash is of Go's bytes.
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def generate(gen, kind, base_dir):
    unknown = set(gen) - GENERATOR_KEYS
    if unknown:
        raise RenderError(f"{base_dir}: generator keys not supported: "
                          f"{sorted(unknown)}")
    data = {}
    for item in gen.get("files", []):
        key, _, rel = item.partition("=")
        if not rel:
            key, rel = pathlib.Path(item).name, item
        path = base_dir / rel
        if not path.is_file():
            raise RenderError(f"{path}: no such file (generator {gen['name']})")
        content = path.read_bytes()
        if kind == "Secret":
            data[key] = base64.b64encode(content).decode()
        else:
            data[key] = content.decode("utf-8")
    for item in gen.get("literals", []):
        key, _, value = item.partition("=")
        data[key] = (base64.b64encode(value.encode()).decode()
                     if kind == "Secret" else value)
    obj = {"apiVersion": "v1", "kind": kind,
           "metadata": {"name": gen["name"]}, "data": data}
    if kind == "Secret":
        obj["type"] = gen.get("type", "Opaque")
    return obj


def json_pointer(path):
    if not path.startswith("/"):
        raise RenderError(f"patch path '{path}' does not start with '/'")
    return [p.replace("~1", "/").replace("~0", "~")
            for p in path[1:].split("/")]


def apply_op(doc, op):
    kind = op.get("op")
    parts = json_pointer(op["path"])
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    last = parts[-1]
    if kind in ("add", "replace"):
        value = copy.deepcopy(op["value"])
        if isinstance(parent, list):
            if last == "-":
                if kind != "add":
                    raise RenderError("replace of '-'")
                parent.append(value)
            elif kind == "add":
                parent.insert(int(last), value)
            else:
                parent[int(last)] = value
        else:
            if kind == "replace" and last not in parent:
                raise RenderError(f"replace of missing {op['path']}")
            parent[last] = value
    elif kind == "remove":
        if isinstance(parent, list):
            del parent[int(last)]
        else:
            del parent[last]
    else:
        raise RenderError(f"JSON patch op '{kind}' not supported")


def matches(obj, target):
    unknown = set(target) - {"kind", "name"}
    if unknown:
        raise RenderError(f"patch target keys not supported: {sorted(unknown)}")
    return (target.get("kind", obj["kind"]) == obj["kind"] and
            target.get("name", obj["metadata"]["name"]) ==
            obj["metadata"]["name"])


def build(directory):
    """Returns (objects, generated) where generated maps id(obj) of the
    generated ConfigMaps/Secrets that still need their hash suffix."""
    directory = pathlib.Path(directory)
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    (k,) = load_yaml_docs(kfile)
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise RenderError(f"{kfile}: keys not supported: {sorted(unknown)}")
    objects, hashed = [], []
    for res in k.get("resources", []):
        path = directory / res
        if path.is_dir():
            sub_objects, sub_hashed = build(path)
            objects += sub_objects
            hashed += sub_hashed
        else:
            objects += load_yaml_docs(path)
    options = k.get("generatorOptions", {})
    if set(options) - {"disableNameSuffixHash"}:
        raise RenderError(f"{kfile}: generatorOptions not supported")
    for key, kind in (("configMapGenerator", "ConfigMap"),
                      ("secretGenerator", "Secret")):
        for gen in k.get(key, []):
            new = generate(gen, kind, directory)
            behavior = gen.get("behavior", "create")
            existing = [o for o in objects if o["kind"] == kind and
                        o["metadata"]["name"] == gen["name"]]
            if behavior == "create":
                if existing:
                    raise RenderError(f"{kfile}: {kind} {gen['name']} exists")
                objects.append(new)
                if not options.get("disableNameSuffixHash"):
                    hashed.append(new)
            elif behavior in ("merge", "replace"):
                if len(existing) != 1:
                    raise RenderError(f"{kfile}: no {kind} {gen['name']} "
                                      f"to {behavior}")
                old = existing[0]
                if behavior == "merge":
                    old.setdefault("data", {}).update(new["data"])
                else:
                    old["data"] = new["data"]
            else:
                raise RenderError(f"{kfile}: behavior '{behavior}'")
    for patch in k.get("patches", []):
        if set(patch) - {"path", "target"}:
            raise RenderError(f"{kfile}: only path+target patches")
        ops = load_yaml_docs(directory / patch["path"])
        if len(ops) != 1 or not isinstance(ops[0], list):
            raise RenderError(f"{patch['path']}: not a JSON 6902 op list "
                              "(strategic merge patches are not supported)")
        hits = [o for o in objects if matches(o, patch.get("target", {}))]
        if not hits:
            raise RenderError(f"{patch['path']}: target matches nothing")
        for obj in hits:
            for op in ops[0]:
                apply_op(obj, op)
    if "namespace" in k:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = k["namespace"]
    return objects, hashed


def rename_references(obj, renames):
    """Renames ConfigMap/Secret references in a workload's pod template."""
    spec = obj.get("spec", {}).get("template", {}).get("spec")
    if spec is None:
        return

    def fix(holder, field, kind):
        if holder and holder.get(field) in renames.get(kind, {}):
            holder[field] = renames[kind][holder[field]]

    for vol in spec.get("volumes", []):
        fix(vol.get("configMap"), "name", "ConfigMap")
        fix(vol.get("secret"), "secretName", "Secret")
        for src in vol.get("projected", {}).get("sources", []):
            fix(src.get("configMap"), "name", "ConfigMap")
            fix(src.get("secret"), "name", "Secret")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {})
            fix(ref.get("configMapKeyRef"), "name", "ConfigMap")
            fix(ref.get("secretKeyRef"), "name", "Secret")
        for src in c.get("envFrom", []):
            fix(src.get("configMapRef"), "name", "ConfigMap")
            fix(src.get("secretRef"), "name", "Secret")


def render(directory):
    objects, hashed = build(directory)
    renames = {}
    for obj in hashed:
        old = obj["metadata"]["name"]
        new = f"{old}-{kustomize_hash(obj)}"
        obj["metadata"]["name"] = new
        renames.setdefault(obj["kind"], {})[old] = new
    for obj in objects:
        rename_references(obj, renames)

    def order(o):
        kind = o["kind"]
        rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        return (rank, kind, o["metadata"].get("namespace", ""),
                o["metadata"]["name"])

    return sorted(objects, key=order)


def main(argv):
    if len(argv) != 2:
        print("usage: render.py KUSTOMIZATION_DIR", file=sys.stderr)
        return 64
    try:
        objects = render(argv[1])
    except (RenderError, OSError, KeyError, ValueError, IndexError) as e:
        print(f"render.py: {e}", file=sys.stderr)
        return 1
    yaml.safe_dump_all(objects, sys.stdout, sort_keys=False,
                       default_flow_style=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
