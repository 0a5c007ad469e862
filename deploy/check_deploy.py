#!/usr/bin/env python3
# deploy/check_deploy.py: validates everything under deploy/ offline (run through deploy/check.sh, which
# provides the Python dependencies): Kubernetes schemas, the CRD objects, the pod's wiring against
# hookgate.toml, PromQL in the alerts and the dashboard against the metrics hookgate exports (a live
# scrape of the real binary), the dashboard JSON, `hookgate check` on the ConfigMap's config, and the
# Dockerfile. Prints one line per section; exits 1 on any failure.
"""Deployment checks for hookgate. See README.md, "Run as a Kubernetes sidecar" > "What CI checks"."""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import yaml

try:
    import kubernetes_validate
    from kubernetes_validate import utils as kv_utils
except ImportError:  # check.sh installs it; a clear message beats a traceback
    kubernetes_validate = None

try:
    import promql_parser
except ImportError:  # optional: without it the PromQL is scanned, not parsed
    promql_parser = None

# ---------------------------------------------------------------------------------------------------
# What hookgate exports (DESIGN §5) and what the deploy files may therefore reference.

HOOKGATE_METRICS = {
    "hookgate_requests_total": ("counter", {"route", "outcome"}),
    "hookgate_rejections_total": ("counter", {"route", "reason"}),
    "hookgate_request_duration_seconds": ("histogram", {"route"}),
    "hookgate_upstream_duration_seconds": ("histogram", {"route"}),
    "hookgate_upstream_responses_total": ("counter", {"route", "class"}),
    "hookgate_inflight_requests": ("gauge", set()),
    "hookgate_replay_entries": ("gauge", set()),
    "hookgate_secret_matches_total": ("counter", {"route", "secret"}),
    "hookgate_config_reloads_total": ("counter", {"result"}),
    "hookgate_tls_handshake_errors_total": ("counter", set()),
}
# The standard process collector's metrics (Prometheus client library conventions).
PROCESS_METRICS = {
    "process_cpu_seconds_total": ("counter", set()),
    "process_open_fds": ("gauge", set()),
    "process_max_fds": ("gauge", set()),
    "process_virtual_memory_bytes": ("gauge", set()),
    "process_virtual_memory_max_bytes": ("gauge", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_heap_bytes": ("gauge", set()),
    "process_start_time_seconds": ("gauge", set()),
    "process_threads": ("gauge", set()),
}
KNOWN_METRICS = {**HOOKGATE_METRICS, **PROCESS_METRICS}
# Labels Prometheus attaches to every series scraped through the PodMonitor.
TARGET_LABELS = {"namespace", "pod", "container", "job", "instance", "endpoint", "service"}
# Closed label value sets (DESIGN §4 and §5).
LABEL_VALUES = {
    "outcome": {"forwarded", "rejected", "duplicate", "upstream_error"},
    "class": {"2xx", "3xx", "4xx", "5xx"},
    "result": {"success", "failure"},
    "reason": {"no_route", "method_not_allowed", "body_too_large", "timeout", "bad_request", "missing_signature",
               "invalid_signature", "stale_timestamp", "in_flight", "upstream_unavailable",
               "upstream_timeout", "replay_store_unavailable", "overloaded", "not_implemented"},
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

K8S_VERSIONS_DEFAULT = "1.30.0,latest"   # oldest supported by the manifests (preStop sleep), newest shipped
OVERLAYS = ["deploy/kubernetes/sidecar", "deploy/kubernetes/native-sidecar"]
KUSTOMIZATIONS = OVERLAYS + ["deploy/prometheus", "deploy/grafana"]
YAML_DIRS = ["deploy/kubernetes", "deploy/prometheus", "deploy/grafana"]
DASHBOARD = "deploy/grafana/hookgate-dashboard.json"
RULES = "deploy/prometheus/prometheusrule.yaml"
DOCKERFILE = "deploy/Dockerfile"


class Report:
    """Collects failures per section; prints one line per section."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.failures: list[tuple[str, str]] = []
        self.sections: list[tuple[str, int, str]] = []
        self._section = "?"
        self._count = 0

    def start(self, name: str) -> None:
        self._section = name
        self._count = 0

    def fail(self, msg: str) -> None:
        self.failures.append((self._section, msg))
        self._count += 1

    def note(self, msg: str) -> None:
        if self.verbose:
            print(f"  note [{self._section}]: {msg}")

    def done(self, summary: str) -> None:
        self.sections.append((self._section, self._count, summary))
        mark = "ok  " if self._count == 0 else "FAIL"
        print(f"{mark} {self._section}: {summary}" + ("" if self._count == 0 else f" ({self._count} problem(s))"))
        for sec, msg in self.failures:
            if sec == self._section and self._count:
                print(f"     - {msg}")
        self._count = 0


# ---------------------------------------------------------------------------------------------------
# Kustomize: `kubectl kustomize` when present, else a small renderer for the subset deploy/ uses.

MINI_KEYS = {"apiVersion", "kind", "resources", "components", "configMapGenerator", "secretGenerator",
             "generatorOptions", "images", "namespace"}


def load_yaml_docs(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def manifest_files(d: Path) -> list[Path]:
    """YAML files under d that are Kubernetes objects or kustomizations (promtool tests are not)."""
    return [p for p in sorted(d.rglob("*.y*ml")) if not p.name.endswith((".test.yaml", ".test.yml"))]


def find_kustomization(d: Path) -> Path:
    for n in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (d / n).is_file():
            return d / n
    raise FileNotFoundError(f"no kustomization.yaml in {d}")


def _hash_suffix(obj: dict) -> str:
    blob = json.dumps({"kind": obj["kind"], "name": obj["metadata"]["name"], "data": obj.get("data", {}),
                       "type": obj.get("type", "")}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def _generate(gen: dict, kind: str, base: Path, global_opts: dict) -> tuple[dict, bool]:
    unknown = set(gen) - {"name", "files", "literals", "options", "type", "behavior"}
    if unknown:
        raise ValueError(f"generator keys not supported by the fallback renderer: {sorted(unknown)}")
    data: dict[str, str] = {}
    for entry in gen.get("files", []):
        key, _, rel = entry.partition("=") if "=" in entry else (Path(entry).name, "", entry)
        p = (base / rel).resolve()
        if base.resolve() not in p.parents:
            raise ValueError(f"{entry}: outside the kustomization root (kustomize refuses this)")
        raw = p.read_bytes()
        data[key] = base64.b64encode(raw).decode() if kind == "Secret" else raw.decode()
    for lit in gen.get("literals", []):
        k, _, v = lit.partition("=")
        data[k] = base64.b64encode(v.encode()).decode() if kind == "Secret" else v
    opts = {**global_opts, **gen.get("options", {})}
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}, "data": data}
    if kind == "Secret":
        obj["type"] = gen.get("type", "Opaque")
    if opts.get("labels"):
        obj["metadata"]["labels"] = dict(opts["labels"])
    if opts.get("annotations"):
        obj["metadata"]["annotations"] = dict(opts["annotations"])
    return obj, not opts.get("disableNameSuffixHash", False)


def _pod_specs(obj: dict) -> list[dict]:
    spec = obj.get("spec", {})
    if obj.get("kind") == "Pod":
        return [spec]
    tmpl = spec.get("template", {}).get("spec")
    if obj.get("kind") == "CronJob":
        tmpl = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    return [tmpl] if tmpl else []


def _containers(pod: dict) -> list[dict]:
    return list(pod.get("initContainers", [])) + list(pod.get("containers", []))


def _rename_refs(objs: list[dict], renames: dict[tuple[str, str], str]) -> None:
    for obj in objs:
        for pod in _pod_specs(obj):
            for vol in pod.get("volumes", []):
                if "configMap" in vol:
                    vol["configMap"]["name"] = renames.get(("ConfigMap", vol["configMap"]["name"]), vol["configMap"]["name"])
                if "secret" in vol:
                    n = vol["secret"].get("secretName")
                    vol["secret"]["secretName"] = renames.get(("Secret", n), n)
                for src in vol.get("projected", {}).get("sources", []):
                    for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                        if key in src:
                            src[key]["name"] = renames.get((kind, src[key]["name"]), src[key]["name"])
            for c in _containers(pod):
                for e in c.get("env", []):
                    vf = e.get("valueFrom", {})
                    for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                        if key in vf:
                            vf[key]["name"] = renames.get((kind, vf[key]["name"]), vf[key]["name"])
                for e in c.get("envFrom", []):
                    for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                        if key in e:
                            e[key]["name"] = renames.get((kind, e[key]["name"]), e[key]["name"])


def _apply_images(objs: list[dict], images: list[dict]) -> None:
    for obj in objs:
        for pod in _pod_specs(obj):
            for c in _containers(pod):
                ref = c.get("image", "")
                name = re.split(r"[:@]", ref.rsplit("/", 1)[-1])[0]
                repo = ref.split("@")[0]
                repo = repo if ":" not in repo.rsplit("/", 1)[-1] else repo.rsplit(":", 1)[0]
                for img in images:
                    if img["name"] in (repo, name):
                        new = img.get("newName", repo)
                        tag = img.get("newTag")
                        digest = img.get("digest")
                        c["image"] = new + (f"@{digest}" if digest else f":{tag}" if tag else
                                            ref[len(repo):])


def mini_kustomize(d: Path, _renames: dict | None = None) -> list[dict]:
    """Renders the kustomize subset deploy/ uses; anything else is an error, never silently ignored."""
    k = yaml.safe_load(find_kustomization(d).read_text(encoding="utf-8")) or {}
    unknown = set(k) - MINI_KEYS
    if unknown:
        raise ValueError(f"{d}: keys not supported by the fallback renderer: {sorted(unknown)} (install kubectl)")
    objs: list[dict] = []
    # Generated names (with their hash) are referenced from anywhere above the generator, too.
    renames: dict[tuple[str, str], str] = {} if _renames is None else _renames
    for res in k.get("resources", []):
        p = d / res
        objs += mini_kustomize(p, renames) if p.is_dir() else load_yaml_docs(p)
    gopts = k.get("generatorOptions", {})
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for gen in k.get(key, []):
            obj, hashed = _generate(gen, kind, d, gopts)
            if hashed:
                new = f"{obj['metadata']['name']}-{_hash_suffix(obj)}"
                renames[(kind, obj["metadata"]["name"])] = new
                obj["metadata"]["name"] = new
            objs.append(obj)
    for comp in k.get("components", []):
        ck = yaml.safe_load(find_kustomization(d / comp).read_text(encoding="utf-8"))
        if ck.get("kind") != "Component":
            raise ValueError(f"{d / comp}: listed under components but is not a kind: Component")
        objs += mini_kustomize(d / comp, renames)
    _rename_refs(objs, renames)
    if k.get("images"):
        _apply_images(objs, k["images"])
    if k.get("namespace"):
        for o in objs:
            o.setdefault("metadata", {})["namespace"] = k["namespace"]
    return objs


def kubectl_kustomize(d: Path) -> list[dict] | None:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return None
    r = subprocess.run([kubectl, "kustomize", str(d)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise ValueError(f"kubectl kustomize {d}: {r.stderr.strip()}")
    return [o for o in yaml.safe_load_all(r.stdout) if o]


def _normalize_generated(objs: list[dict]) -> list[dict]:
    """Strips generator hash suffixes so two renderers' outputs compare."""
    out = json.dumps(objs, sort_keys=True)
    out = re.sub(r'"(hookgate-[a-z-]+?)-[a-z0-9]{10}"', r'"\1"', out)
    return sorted(json.loads(out), key=lambda o: (o["kind"], o["metadata"]["name"]))


# ---------------------------------------------------------------------------------------------------
# Helpers over rendered objects

def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind]


def parse_duration(s: str) -> float:
    """humantime subset: '250ms', '5m', '1h 30m', '20s'."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total, pos = 0.0, 0
    for m in re.finditer(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*", s):
        if m.start() != pos:
            raise ValueError(s)
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"not a duration: {s!r}")
    return total


def parse_size(s: str | int) -> int:
    if isinstance(s, int):
        return s
    m = re.fullmatch(r"\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*", s)
    if not m:
        raise ValueError(f"not a size: {s!r}")
    mult = {"B": 1, None: 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3}
    return int(m.group(1)) * mult[m.group(2)]


def parse_quantity(q: str | int) -> float:
    if isinstance(q, (int, float)):
        return float(q)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?", str(q))
    if not m:
        raise ValueError(f"not a quantity: {q!r}")
    mult = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "k": 1e3, "M": 1e6,
            "G": 1e9, "T": 1e12, "m": 1e-3}
    return float(m.group(1)) * mult[m.group(2)]


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


# ---------------------------------------------------------------------------------------------------
# Sections

def check_render(root: Path, rep: Report) -> dict[str, list[dict]]:
    rep.start("kustomize")
    rendered: dict[str, list[dict]] = {}
    how = "kubectl kustomize" if shutil.which("kubectl") else "fallback renderer (no kubectl)"
    for rel in KUSTOMIZATIONS:
        d = root / rel
        try:
            mini = mini_kustomize(d)
        except Exception as e:  # report, keep checking the rest
            rep.fail(f"{rel}: {e}")
            mini = None
        try:
            real = kubectl_kustomize(d)
        except Exception as e:
            rep.fail(str(e))
            real = None
        if real is not None and mini is not None and _normalize_generated(real) != _normalize_generated(mini):
            rep.fail(f"{rel}: the fallback renderer disagrees with kubectl kustomize (fix check_deploy.py)")
        objs = real if real is not None else mini
        if objs is not None:
            rendered[rel] = objs
    # Every YAML file under deploy/ belongs to some kustomization, so nothing escapes the checks.
    listed: set[Path] = set()

    def collect(d: Path) -> None:
        kf = find_kustomization(d)
        listed.add(kf.resolve())
        k = yaml.safe_load(kf.read_text(encoding="utf-8")) or {}
        for res in k.get("resources", []) + k.get("components", []):
            p = (d / res).resolve()
            if p.is_dir():
                collect(p)
            else:
                listed.add(p)
    for rel in KUSTOMIZATIONS:
        try:
            collect(root / rel)
        except Exception as e:
            rep.fail(f"{rel}: {e}")
    for yd in YAML_DIRS:
        for p in manifest_files(root / yd):
            if p.resolve() not in listed:
                rep.fail(f"{p.relative_to(root)}: not listed in any kustomization, so never applied or checked")
            else:
                try:
                    load_yaml_docs(p)
                except yaml.YAMLError as e:
                    rep.fail(f"{p.relative_to(root)}: {e}")
    n = sum(len(v) for v in rendered.values())
    rep.done(f"{len(rendered)} kustomizations rendered with {how}, {n} objects")
    return rendered


def check_schemas(root: Path, rendered: dict[str, list[dict]], versions: list[str], rep: Report) -> None:
    rep.start("kubernetes schemas")
    if kubernetes_validate is None:
        rep.fail("the kubernetes-validate package is missing (run through deploy/check.sh)")
        rep.done("not run")
        return
    latest = kv_utils.latest_version()
    versions = [latest if v == "latest" else v for v in versions]
    items: list[tuple[str, dict]] = []
    for rel, objs in rendered.items():
        items += [(f"{rel} (rendered)", o) for o in objs]
    for yd in YAML_DIRS:
        for p in manifest_files(root / yd):
            if p.name.startswith("kustomization"):
                continue
            try:
                items += [(str(p.relative_to(root)), o) for o in load_yaml_docs(p)]
            except yaml.YAMLError:
                pass  # reported by the kustomize section
    core, crd = 0, 0
    for where, obj in items:
        if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
            rep.fail(f"{where}: not a Kubernetes object (apiVersion/kind missing)")
            continue
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group in CRD_GROUPS:
            crd += 1
            continue
        core += 1
        for v in versions:
            try:
                kv_utils.validate(obj, v, strict=True)
            except kv_utils.ValidationError as e:
                path = ".".join(str(x) for x in e.path)
                rep.fail(f"{where}: {obj['kind']}/{obj.get('metadata', {}).get('name')} against {v}: {path}: {e.message}")
            except kv_utils.SchemaNotFoundError:
                rep.fail(f"{where}: no Kubernetes {v} schema for {obj['apiVersion']} {obj['kind']}")
    rep.done(f"{core} objects valid (strict) against Kubernetes {', '.join(versions)}; {crd} CRD objects left to the next section")


# CRD objects: their API groups, the kinds allowed, and the fields each must have.
CRD_GROUPS = {"monitoring.coreos.com": {"monitoring.coreos.com/v1": {"PodMonitor", "ServiceMonitor", "PrometheusRule"}},
              "cert-manager.io": {"cert-manager.io/v1": {"Certificate", "Issuer", "ClusterIssuer"}}}


def _need(rep: Report, obj: dict, path: str, where: str, typ: type | tuple = object) -> object:
    cur: object = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            rep.fail(f"{where}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}: missing {path}")
            return None
        cur = cur[part]
    if not isinstance(cur, typ) or cur in ("", [], {}):
        rep.fail(f"{where}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {path} must be a non-empty {typ}")
        return None
    return cur


def check_crds(rendered: dict[str, list[dict]], rep: Report) -> None:
    rep.start("CRD objects")
    n = 0
    pods = [(o, p) for rel in OVERLAYS for o in rendered.get(rel, []) for p in _pod_specs(o)]
    for rel, objs in rendered.items():
        for o in objs:
            group = o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else ""
            if group not in CRD_GROUPS:
                continue
            n += 1
            kinds = CRD_GROUPS[group].get(o["apiVersion"])
            if kinds is None or o["kind"] not in kinds:
                rep.fail(f"{rel}: unexpected {o['apiVersion']} {o['kind']}")
                continue
            _need(rep, o, "metadata.name", rel, str)
            extra = set(o) - {"apiVersion", "kind", "metadata", "spec"}
            if extra:
                rep.fail(f"{rel}: {o['kind']}: unexpected top-level fields {sorted(extra)}")
            kind = o["kind"]
            if kind == "PodMonitor":
                sel = _need(rep, o, "spec.selector.matchLabels", rel, dict)
                eps = _need(rep, o, "spec.podMetricsEndpoints", rel, list) or []
                for ep in eps:
                    if not isinstance(ep, dict) or not ep.get("port"):
                        rep.fail(f"{rel}: PodMonitor endpoint without a named port: {ep}")
                        continue
                    for key in ep:
                        if key not in {"port", "portNumber", "path", "interval", "scrapeTimeout", "scheme",
                                       "relabelings", "metricRelabelings", "honorLabels", "tlsConfig"}:
                            rep.fail(f"{rel}: PodMonitor endpoint field {key!r} unknown")
                    for f in ("interval", "scrapeTimeout"):
                        if f in ep and not re.fullmatch(r"(\d+(ms|s|m|h))+", ep[f]):
                            rep.fail(f"{rel}: PodMonitor {f} {ep[f]!r} is not a Prometheus duration")
                    # The selected pods must exist and expose the named port on hookgate.
                    matched = [p for d, p in pods if sel and all(
                        d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
                    if not matched:
                        rep.fail(f"{rel}: PodMonitor selector {sel} matches no pod of {OVERLAYS}")
                    for p in matched:
                        names = {pt.get("name") for c in _containers(p) for pt in c.get("ports", [])}
                        if ep["port"] not in names:
                            rep.fail(f"{rel}: PodMonitor port {ep['port']!r} is not a named container port of the pod")
            elif kind == "ServiceMonitor":
                _need(rep, o, "spec.selector", rel, dict)
                _need(rep, o, "spec.endpoints", rel, list)
            elif kind == "PrometheusRule":
                groups = _need(rep, o, "spec.groups", rel, list) or []
                seen = set()
                for g in groups:
                    if not g.get("name") or not isinstance(g.get("rules"), list) or not g["rules"]:
                        rep.fail(f"{rel}: rule group needs a name and rules: {g.get('name')}")
                        continue
                    for r in g["rules"]:
                        if ("alert" in r) == ("record" in r):
                            rep.fail(f"{rel}: rule needs exactly one of alert/record: {r}")
                        if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                            rep.fail(f"{rel}: rule {r.get('alert') or r.get('record')}: expr missing")
                        unknown = set(r) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
                        if unknown:
                            rep.fail(f"{rel}: rule {r.get('alert')}: unknown fields {sorted(unknown)}")
                        if "for" in r and not re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", str(r["for"])):
                            rep.fail(f"{rel}: rule {r.get('alert')}: 'for' {r['for']!r} is not a Prometheus duration")
                        if "alert" in r:
                            if r["alert"] in seen:
                                rep.fail(f"{rel}: alert {r['alert']} defined twice")
                            seen.add(r["alert"])
                            if r.get("labels", {}).get("severity") not in {"critical", "warning", "info"}:
                                rep.fail(f"{rel}: alert {r['alert']}: labels.severity must be critical|warning|info")
                            for a in ("summary", "description"):
                                if not r.get("annotations", {}).get(a):
                                    rep.fail(f"{rel}: alert {r['alert']}: annotations.{a} missing")
            elif kind == "Certificate":
                secret = _need(rep, o, "spec.secretName", rel, str)
                _need(rep, o, "spec.issuerRef.name", rel, str)
                if not o.get("spec", {}).get("dnsNames") and not o.get("spec", {}).get("commonName"):
                    rep.fail(f"{rel}: Certificate needs dnsNames or commonName")
                issuer = o.get("spec", {}).get("issuerRef", {})
                if issuer.get("kind", "Issuer") == "Issuer" and not any(
                        x["kind"] == "Issuer" and x["metadata"]["name"] == issuer.get("name") for x in objs):
                    rep.fail(f"{rel}: Certificate's Issuer {issuer.get('name')!r} is not in the same kustomization")
                used = {s for d, p in pods for s in _secret_names(p)}
                if secret and secret not in used:
                    rep.fail(f"{rel}: Certificate writes Secret {secret!r}, which no pod mounts")
            elif kind in ("Issuer", "ClusterIssuer"):
                spec = o.get("spec", {})
                if len(set(spec) & {"selfSigned", "ca", "acme", "vault", "venafi"}) != 1:
                    rep.fail(f"{rel}: {kind} needs exactly one of selfSigned/ca/acme/vault/venafi")
    rep.done(f"{n} CRD objects (PodMonitor, PrometheusRule, Certificate, Issuer) well-formed")


def _secret_names(pod: dict) -> set[str]:
    out = set()
    for v in pod.get("volumes", []):
        if "secret" in v:
            out.add(v["secret"]["secretName"])
        for s in v.get("projected", {}).get("sources", []):
            if "secret" in s:
                out.add(s["secret"]["name"])
    return out


def hookgate_container(pod: dict) -> tuple[dict | None, bool]:
    """The hookgate container and whether it is a native sidecar."""
    for c in pod.get("initContainers", []):
        if "hookgate" in c.get("image", "") or c.get("name") == "hookgate":
            return c, c.get("restartPolicy") == "Always"
    for c in pod.get("containers", []):
        if "hookgate" in c.get("image", "") or c.get("name") == "hookgate":
            return c, False
    return None, False


def _files_in_mounts(pod: dict, c: dict, objs: list[dict]) -> dict[str, tuple[str, str, str]]:
    """Maps each file path visible in container c to (kind, object name, key)."""
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    out: dict[str, tuple[str, str, str]] = {}

    def keys(kind: str, name: str) -> list[str]:
        for o in objs:
            if o["kind"] == kind and o["metadata"]["name"] == name:
                return list(o.get("data", {})) + list(o.get("stringData", {}))
        for o in objs:  # a Secret cert-manager will write
            if kind == "Secret" and o["kind"] == "Certificate" and o["spec"].get("secretName") == name:
                return ["tls.crt", "tls.key", "ca.crt"]
        return []

    for m in c.get("volumeMounts", []):
        v = vols.get(m["name"])
        if v is None or m.get("subPath"):
            continue
        srcs = []
        if "configMap" in v:
            srcs.append(("ConfigMap", v["configMap"]["name"], v["configMap"].get("items")))
        if "secret" in v:
            srcs.append(("Secret", v["secret"]["secretName"], v["secret"].get("items")))
        for s in v.get("projected", {}).get("sources", []):
            if "configMap" in s:
                srcs.append(("ConfigMap", s["configMap"]["name"], s["configMap"].get("items")))
            if "secret" in s:
                srcs.append(("Secret", s["secret"]["name"], s["secret"].get("items")))
        for kind, name, items in srcs:
            have = keys(kind, name)
            mapping = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in have]
            for key, rel in mapping:
                if key in have:
                    out[f"{m['mountPath'].rstrip('/')}/{rel}"] = (kind, name, key)
    return out


def check_pods(root: Path, rendered: dict[str, list[dict]], rep: Report) -> str | None:
    """The pod wiring agrees with hookgate.toml; returns the ConfigMap's hookgate.toml text."""
    rep.start("sidecar wiring")
    toml_text = None
    src = (root / "deploy/kubernetes/base/hookgate.toml").read_text(encoding="utf-8")
    forms = []
    for rel in OVERLAYS:
        objs = rendered.get(rel)
        if not objs:
            rep.fail(f"{rel}: not rendered")
            continue
        deps = by_kind(objs, "Deployment")
        if len(deps) != 1:
            rep.fail(f"{rel}: expected one Deployment, found {len(deps)}")
            continue
        dep = deps[0]
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"]["metadata"].get("labels", {})
        hg, native = hookgate_container(pod)
        if hg is None:
            rep.fail(f"{rel}: no hookgate container")
            continue
        forms.append("native" if native else "classic")
        if hg in pod.get("initContainers", []) and not native:
            rep.fail(f"{rel}: hookgate is an init container without restartPolicy: Always")
        # The config: from the --config argument to a mounted ConfigMap key.
        args = hg.get("args", [])
        cfg_path = args[args.index("--config") + 1] if "--config" in args else "/etc/hookgate/hookgate.toml"
        files = _files_in_mounts(pod, hg, objs)
        if cfg_path not in files or files[cfg_path][0] != "ConfigMap":
            rep.fail(f"{rel}: {cfg_path} (hookgate --config) is not a mounted ConfigMap key")
            continue
        _, cm_name, cm_key = files[cfg_path]
        cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == cm_name)
        text = cm["data"][cm_key]
        if text != src:
            rep.fail(f"{rel}: the ConfigMap's {cm_key} differs from deploy/kubernetes/base/hookgate.toml")
        toml_text = text
        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            rep.fail(f"hookgate.toml: {e}")
            continue
        # Files the config names exist in the container.
        needed = [cfg.get("listen", {}).get("tls_cert"), cfg.get("listen", {}).get("tls_key")]
        for r in cfg.get("routes", []):
            needed += [s[5:] for s in r.get("secrets", []) if s.startswith("file:")]
            if any(s.startswith("env:") for s in r.get("secrets", [])):
                envs = {e["name"] for e in hg.get("env", [])}
                for s in r["secrets"]:
                    if s.startswith("env:") and s[4:] not in envs:
                        rep.fail(f"{rel}: route {r.get('name')}: {s} is not set in the container's env")
        for f in filter(None, needed):
            if f not in files:
                rep.fail(f"{rel}: hookgate.toml names {f}, which no volume mount of the hookgate container provides")
        for f, (kind, name, key) in files.items():
            if kind == "Secret" and f.startswith("/var/run/secrets/hookgate/") and f not in needed:
                rep.fail(f"{rel}: {f} is mounted but no route uses it")
        # Ports: listen behind the Service, admin behind the probes and the PodMonitor.
        listen_port = port_of(cfg["listen"]["addr"])
        admin_addr = cfg["admin"]["addr"]
        admin_port = port_of(admin_addr)
        if not admin_addr.startswith(("0.0.0.0:", "[::]:")):
            rep.fail(f"hookgate.toml: admin.addr {admin_addr} is not reachable by kubelet probes and Prometheus (use 0.0.0.0)")
        ports = {p.get("name"): p["containerPort"] for p in hg.get("ports", [])}
        if listen_port not in ports.values() or admin_port not in ports.values():
            rep.fail(f"{rel}: hookgate containerPorts {ports} lack listen {listen_port} or admin {admin_port}")

        def resolve(port: object) -> object:
            return ports.get(port, port) if isinstance(port, str) else port
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            pr = hg.get(probe, {}).get("httpGet")
            if not pr or pr.get("path") != path or resolve(pr.get("port")) != admin_port:
                rep.fail(f"{rel}: hookgate {probe} must be httpGet {path} on the admin port {admin_port}")
        if native and hg.get("startupProbe", {}).get("httpGet", {}).get("path") not in ("/healthz", "/readyz"):
            rep.fail(f"{rel}: the native sidecar needs a startupProbe so the app starts after hookgate")
        # Only hookgate's listener behind the Service.
        for svc in by_kind(objs, "Service"):
            if all(labels.get(k) == v for k, v in svc["spec"].get("selector", {}).items()):
                targets = [resolve(p.get("targetPort", p["port"])) for p in svc["spec"]["ports"]]
                if targets != [listen_port]:
                    rep.fail(f"{rel}: Service {svc['metadata']['name']} targets {targets}, must be only hookgate's {listen_port}")
        # NetworkPolicy: hookgate's ports only; the upstream port never.
        up = cfg["upstream"]["url"]
        up_port = int(re.search(r":(\d+)", up.split("//", 1)[-1]).group(1)) if re.search(r":(\d+)", up.split("//", 1)[-1]) else None
        nps = [n for n in by_kind(objs, "NetworkPolicy")
               if all(labels.get(k) == v for k, v in n["spec"]["podSelector"].get("matchLabels", {}).items())]
        if not nps:
            rep.fail(f"{rel}: no NetworkPolicy selects the pod")
        opened = {resolve(p.get("port")) for n in nps for rule in n["spec"].get("ingress", [])
                  for p in rule.get("ports", [])}
        if nps and listen_port not in opened:
            rep.fail(f"{rel}: the NetworkPolicy does not let webhooks reach hookgate's port {listen_port}")
        for n in nps:
            if "Ingress" not in n["spec"].get("policyTypes", ["Ingress"]):
                rep.fail(f"{rel}: NetworkPolicy {n['metadata']['name']} does not restrict Ingress")
            for rule in n["spec"].get("ingress", []):
                rports = [resolve(p.get("port")) for p in rule.get("ports", [])]
                if not rports:
                    rep.fail(f"{rel}: NetworkPolicy ingress rule without ports opens every port, the app's too")
                for p in rports:
                    if p not in (listen_port, admin_port):
                        rep.fail(f"{rel}: NetworkPolicy opens port {p}, not one of hookgate's")
                if admin_port in rports and not rule.get("from"):
                    rep.fail(f"{rel}: NetworkPolicy opens the admin port {admin_port} to everyone")
        if up_port is not None:
            if not re.match(r"https?://(127\.0\.0\.1|localhost|\[::1\])[:/]", up):
                rep.fail(f"hookgate.toml: upstream {up} is not on the pod's loopback")
            for c in _containers(pod):
                if c is hg:
                    continue
                if any(p["containerPort"] == up_port for p in c.get("ports", [])):
                    rep.fail(f"{rel}: container {c['name']} declares the upstream port {up_port}; keep it private")
        # Security context.
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            rep.fail(f"{rel}: pod securityContext.runAsNonRoot must be true")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            rep.fail(f"{rel}: pod securityContext.seccompProfile must be RuntimeDefault")
        for c in _containers(pod):
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True \
                    or "ALL" not in sc.get("capabilities", {}).get("drop", []) or sc.get("privileged"):
                rep.fail(f"{rel}: container {c['name']}: needs allowPrivilegeEscalation false, "
                         "readOnlyRootFilesystem true, capabilities.drop [ALL]")
            res = c.get("resources", {})
            if not res.get("requests", {}).get("memory") or not res.get("limits", {}).get("memory"):
                rep.fail(f"{rel}: container {c['name']}: set memory requests and limits")
        mem = hg.get("resources", {}).get("limits", {}).get("memory")
        try:
            if mem and parse_size(cfg["limits"]["max_buffered"]) >= parse_quantity(mem):
                rep.fail(f"{rel}: limits.max_buffered {cfg['limits']['max_buffered']} is not below the memory limit {mem}")
            grace = parse_duration(cfg["limits"]["shutdown_grace"])
            pre = hg.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            tgps = pod.get("terminationGracePeriodSeconds", 30)
            if not tgps > grace + pre:
                rep.fail(f"{rel}: terminationGracePeriodSeconds {tgps} must exceed shutdown_grace {grace:g}s + preStop {pre}s")
            if not native:
                for c in pod.get("containers", []):
                    if c is hg:
                        continue
                    apre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
                    if apre < pre + grace - 1e-9 and apre:
                        rep.note(f"{rel}: {c['name']} stops before hookgate has drained")
        except (KeyError, ValueError) as e:
            rep.fail(f"hookgate.toml: {e}")
        if pod.get("automountServiceAccountToken") is not False:
            rep.note(f"{rel}: the service account token is mounted")
        # PodDisruptionBudget, if any, selects this pod.
        for pdb in by_kind(objs, "PodDisruptionBudget"):
            if not all(labels.get(k) == v for k, v in pdb["spec"]["selector"].get("matchLabels", {}).items()):
                rep.fail(f"{rel}: PodDisruptionBudget {pdb['metadata']['name']} selects no pod")
    if sorted(forms) != ["classic", "native"]:
        rep.fail(f"expected one classic and one native sidecar form, found {forms}")
    rep.done(f"{len(forms)} pod forms ({', '.join(forms)}): config, secrets, TLS, ports, probes, "
             "NetworkPolicy, securityContext, resources and shutdown timing agree")
    return toml_text


# ---------------------------------------------------------------------------------------------------
# hookgate itself: `hookgate check` on the ConfigMap's config, and a live scrape

def make_fixture(tmp: Path, toml_text: str) -> tuple[Path, dict[str, bytes]]:
    """A copy of the config whose secret and TLS paths point at throwaway files under tmp."""
    secrets_dir, tls_dir = tmp / "secrets", tmp / "tls"
    secrets_dir.mkdir(exist_ok=True)
    tls_dir.mkdir(exist_ok=True)
    cfg = tomllib.loads(toml_text)
    keys: dict[str, bytes] = {}
    text = toml_text
    for r in cfg.get("routes", []):
        for s in r.get("secrets", []):
            if not s.startswith("file:"):
                continue
            path = s[5:]
            local = secrets_dir / Path(path).name
            raw = os.urandom(24)
            value = ("whsec_" + base64.b64encode(raw).decode()) if r["provider"] in ("svix", "standard-webhooks") \
                else raw.hex()
            local.write_text(value + "\n", encoding="utf-8")
            keys[r.get("name") or r["path"]] = raw if r["provider"] in ("svix", "standard-webhooks") else value.encode()
            text = text.replace(f'"file:{path}"', f'"file:{local}"')
    listen = cfg.get("listen", {})
    if listen.get("tls_cert"):
        crt, key = tls_dir / "tls.crt", tls_dir / "tls.key"
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"openssl could not make a test certificate: {r.stderr.strip()}")
        text = text.replace(f'"{listen["tls_cert"]}"', f'"{crt}"').replace(f'"{listen["tls_key"]}"', f'"{key}"')
    out = tmp / "hookgate.toml"
    out.write_text(text, encoding="utf-8")
    return out, keys


def check_hookgate_config(hookgate: Path | None, toml_text: str | None, tmp: Path, rep: Report):
    rep.start("hookgate check")
    if toml_text is None:
        rep.fail("no hookgate.toml found in the rendered ConfigMap")
        rep.done("not run")
        return None
    if hookgate is None or not os.access(hookgate, os.X_OK):
        rep.fail(f"hookgate binary not found ({hookgate or 'HOOKGATE_BIN unset'}): build it first "
                 "(cargo build --release) or set HOOKGATE_BIN")
        rep.done("not run")
        return None
    try:
        cfg_path, keys = make_fixture(tmp, toml_text)
    except RuntimeError as e:
        rep.fail(str(e))
        rep.done("not run")
        return None
    r = subprocess.run([str(hookgate), "check", "--config", str(cfg_path)], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        rep.fail(f"`hookgate check` exited {r.returncode}: {(r.stderr or r.stdout).strip()[-2000:]}")
    # The check must really check: an unknown key is exit 2.
    bad = tmp / "typo.toml"
    bad.write_text(cfg_path.read_text(encoding="utf-8").replace("[upstream]\n", "[upstream]\ntimout = \"1s\"\n", 1),
                   encoding="utf-8")
    r2 = subprocess.run([str(hookgate), "check", "--config", str(bad)], capture_output=True, text=True,
                        timeout=60, stdin=subprocess.DEVNULL)
    if r2.returncode != 2:
        rep.fail(f"`hookgate check` on a config with an unknown key exited {r2.returncode}, expected 2")
    rep.done(f"the ConfigMap's hookgate.toml passes `{hookgate.name} check` (secrets and TLS from throwaway files)")
    return cfg_path, keys


class _Upstream(http.server.BaseHTTPRequestHandler):
    """The stand-in application for the live scrape: 200, or 500 / a dropped connection on request."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if b"please-fail" in body:
            self.send_response(500)
        elif b"please-drop" in body:
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        else:
            self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


def sample_sum(scrape: str, name: str, labels: dict[str, str]) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}(?:\{{(.*)\}})?\s+(\S+)", scrape, re.M):
        pairs = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
        if all(pairs.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sign(provider: str, key: bytes, body: bytes, msg_id: str) -> dict[str, str]:
    if provider in ("svix", "standard-webhooks"):
        ts = str(int(time.time()))
        sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
        p = "svix" if provider == "svix" else "webhook"
        return {f"{p}-id": msg_id, f"{p}-timestamp": ts, f"{p}-signature": f"v1,{sig}"}
    if provider == "levanta":
        return {"x-levanta-hmac-sha256": hmac.new(key, body, hashlib.sha256).hexdigest()}
    if provider == "leaflink":
        return {"LL-Signature": base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()}
    raise ValueError(provider)


def live_scrape(hookgate: Path, cfg_path: Path, keys: dict[str, bytes], tmp: Path, rep: Report) -> str | None:
    """Runs the real gateway on loopback, sends genuine, forged, failing and plain-HTTP requests, reloads,
    and returns /metrics, so every metric the alerts and the dashboard name has had a reason to appear."""
    rep.start("live scrape")
    up_port, listen_port, admin_port = _free_port(), _free_port(), _free_port()
    text = cfg_path.read_text(encoding="utf-8")
    cfg = tomllib.loads(text)
    text = text.replace(f'addr = "{cfg["listen"]["addr"]}"', f'addr = "127.0.0.1:{listen_port}"', 1)
    text = text.replace(f'addr = "{cfg["admin"]["addr"]}"', f'addr = "127.0.0.1:{admin_port}"', 1)
    text = text.replace(f'url = "{cfg["upstream"]["url"]}"', f'url = "http://127.0.0.1:{up_port}"', 1)
    text = re.sub(r'shutdown_grace = "[^"]*"', 'shutdown_grace = "3s"', text)
    live = tmp / "live.toml"
    live.write_text(text, encoding="utf-8")
    tls = bool(cfg["listen"].get("tls_cert"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", up_port), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log = open(tmp / "hookgate.log", "w+", encoding="utf-8")
    env = {**os.environ, "HOOKGATE_LOG": os.environ.get("HOOKGATE_LOG", "info")}
    proc = subprocess.Popen([str(hookgate), "--log-format", "json", "run", "--config", str(live)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    scrape = None
    statuses: list[tuple[str, str, int, int]] = []
    try:
        def get(path: str) -> tuple[int, str]:
            c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
            try:
                c.request("GET", path)
                r = c.getresponse()
                return r.status, r.read().decode("utf-8", "replace")
            finally:
                c.close()

        deadline = time.monotonic() + 20
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if get("/readyz")[0] == 200:
                    ready = True
                    break
            except OSError:
                pass
            time.sleep(0.1)
        if not ready:
            rep.fail(f"hookgate did not become ready on /readyz within 20 s (exit {proc.poll()}); log: "
                     + (tmp / "hookgate.log").read_text(encoding="utf-8")[-1500:])
            rep.done("not run")
            return None
        if get("/healthz")[0] != 200:
            rep.fail("/healthz did not answer 200")

        def post(path: str, body: bytes, headers: dict[str, str]) -> int:
            if tls:
                ctx = ssl.create_default_context(cafile=str(cfg_path.parent / "tls" / "tls.crt"))
                c = http.client.HTTPSConnection("127.0.0.1", listen_port, timeout=30, context=ctx)
            else:
                c = http.client.HTTPConnection("127.0.0.1", listen_port, timeout=30)
            try:
                c.request("POST", path, body=body, headers={"content-type": "application/json", **headers})
                r = c.getresponse()
                r.read()
                return r.status
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"POST {path} over {'TLS' if tls else 'plain HTTP'}: {e}")
                return -1
            finally:
                c.close()

        errors: list[str] = []
        for i, r in enumerate(cfg["routes"]):
            name = r.get("name") or r["path"]
            key = keys.get(name)
            if key is None:
                continue
            path = r["path"].replace("*", "live")
            body = json.dumps({"n": i, "event": "check"}).encode()
            h = _sign(r["provider"], key, body, f"msg_live_{i}")
            statuses.append((name, "genuine", post(path, body, h), 200))
            statuses.append((name, "redelivered", post(path, body, h), 200))
            forged = _sign(r["provider"], os.urandom(24), body, f"msg_forged_{i}")
            statuses.append((name, "forged", post(path, body, forged), 401))
            for word, want in ((b"please-fail", 500), (b"please-drop", 502)):
                b2 = json.dumps({"n": i, "x": word.decode()}).encode()
                statuses.append((name, word.decode(), post(path, b2, _sign(r["provider"], key, b2, f"msg_{word.decode()}_{i}")), want))
        statuses.append(("unmatched", "no route", post("/no/such/route", b"{}", {}), 404))
        for e in sorted(set(errors))[:5]:
            rep.fail(e)
        for name, what, got, want in statuses:
            if got != want and got != -1:
                rep.fail(f"{name}: {what} webhook answered {got}, expected {want}")
        if tls:  # plain HTTP to the TLS port: a handshake error
            with socket.create_connection(("127.0.0.1", listen_port), timeout=5) as s:
                s.sendall(b"POST / HTTP/1.1\r\nhost: x\r\n\r\n")
                try:
                    s.recv(100)
                except OSError:
                    pass
        status, scrape = get("/metrics")
        if status != 200:
            rep.fail(f"/metrics answered {status}")
            scrape = None
        # A good reload, then a bad one (the old config keeps serving), so the reload counter has both.
        for bad in (False, True):
            if bad:
                live.write_text(text.replace("[upstream]\n", "[upstream]\ntimout = \"1s\"\n", 1), encoding="utf-8")
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            if proc.poll() is not None:
                how = f"was killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited {proc.returncode}"
                rep.fail(f"hookgate {how} on SIGHUP instead of reloading ({'bad' if bad else 'unchanged'} config)")
                break
        live.write_text(text, encoding="utf-8")
        if proc.poll() is None:
            status, after = get("/metrics")
            if status == 200:
                scrape = after
            else:
                rep.fail(f"/metrics answered {status} after the reloads")
        (tmp / "metrics.txt").write_text(scrape or "", encoding="utf-8")
        # The series the alerts key on really move when their situation happens.
        if scrape and not errors:
            expect = [("hookgate_requests_total", {"outcome": "forwarded"}),
                      ("hookgate_requests_total", {"outcome": "duplicate"}),
                      ("hookgate_requests_total", {"outcome": "rejected"}),
                      ("hookgate_requests_total", {"outcome": "upstream_error"}),
                      ("hookgate_rejections_total", {"reason": "invalid_signature"}),
                      ("hookgate_rejections_total", {"reason": "no_route", "route": "unmatched"}),
                      ("hookgate_upstream_responses_total", {"class": "2xx"}),
                      ("hookgate_upstream_responses_total", {"class": "5xx"}),
                      ("hookgate_secret_matches_total", {"secret": "0"}),
                      ("hookgate_request_duration_seconds_count", {}),
                      ("hookgate_upstream_duration_seconds_count", {})]
            if tls:
                expect.append(("hookgate_tls_handshake_errors_total", {}))
            if proc.poll() is None:
                expect += [("hookgate_config_reloads_total", {"result": "success"}),
                           ("hookgate_config_reloads_total", {"result": "failure"})]
            for name, labels in expect:
                if sample_sum(scrape, name, labels) <= 0:
                    sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
                    rep.fail(f"{name}{{{sel}}} did not count what the live traffic did")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
            if code != 0:
                rep.note(f"hookgate exited {code} after SIGTERM")
        except subprocess.TimeoutExpired:
            rep.fail("hookgate did not exit within shutdown_grace (3 s here) + 12 s after SIGTERM")
    except Exception as e:  # a harness failure is a failed check, never a traceback
        rep.fail(f"live scrape aborted: {type(e).__name__}: {e}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.shutdown()
        server.server_close()
        log.close()
    n = len(set(re.findall(r"^# TYPE (\S+)", scrape or "", re.M)))
    rep.done(f"real gateway on loopback{' with TLS' if tls else ''}: {len(statuses)} webhooks"
             f"{', a plain-HTTP handshake' if tls else ''}, two reloads, SIGTERM; /metrics has {n} metric families")
    return scrape


# ---------------------------------------------------------------------------------------------------
# PromQL

def parse_scrape(text: str) -> tuple[dict[str, str], dict[str, set[str]], dict[str, set[tuple[str, str]]]]:
    """TYPE per family; label names and (label, value) pairs seen per family."""
    types: dict[str, str] = {}
    for m in re.finditer(r"^# TYPE (\S+) (\S+)", text, re.M):
        types[m.group(1)] = m.group(2)
    labels: dict[str, set[str]] = {}
    values: dict[str, set[tuple[str, str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
        if not m:
            continue
        fam = family_of(m.group(1), types)
        pairs = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or "")
        labels.setdefault(fam, set()).update(k for k, _ in pairs)
        values.setdefault(fam, set()).update(pairs)
    return types, labels, values


def family_of(name: str, types: dict[str, str]) -> str:
    if name in types:
        return name
    for suf in HISTOGRAM_SUFFIXES + ("_total", "_created"):
        if name.endswith(suf) and name[: -len(suf)] in types:
            return name[: -len(suf)]
    return name


def grafana_to_promql(expr: str) -> str:
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "5m", expr)
    return re.sub(r"\$\{?\w+(:\w+)?\}?|\[\[\w+\]\]", ".*", expr)


def selectors(expr: str, rep: Report, where: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(metric name, [(label, op, value)]) for every selector in expr."""
    out: list[tuple[str, list[tuple[str, str, str]]]] = []
    if promql_parser is not None:
        try:
            ast = promql_parser.parse(expr)
        except Exception as e:  # the parser's own error type varies
            rep.fail(f"{where}: PromQL does not parse: {e}")
            return out
        ops = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}

        def visit(node) -> bool:
            if isinstance(node, promql_parser.VectorSelector):
                ms = [(m.name, ops[str(m.op).split(".")[-1]], m.value) for m in node.matchers.matchers]
                name = node.name or next((v for n, o, v in ms if n == "__name__" and o == "="), None)
                if node.matchers.or_matchers:
                    rep.fail(f"{where}: 'or' inside a selector is not supported by older Prometheus")
                out.append((name or "", [m for m in ms if m[0] != "__name__"]))
            return True
        promql_parser.walk(ast, pre_visit=visit)
        return out
    # Fallback without the parser: scan for metric-looking identifiers and their braces.
    for m in re.finditer(r"\b((?:hookgate|process)_[a-zA-Z0-9_]*)\s*(\{([^}]*)\})?", expr):
        ms = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(3) or "")
        out.append((m.group(1), ms))
    return out


def collect_exprs(root: Path, rep: Report) -> list[tuple[str, str]]:
    exprs: list[tuple[str, str]] = []
    for doc in load_yaml_docs(root / RULES):
        for g in doc.get("spec", {}).get("groups", []):
            for r in g.get("rules", []):
                exprs.append((f"alert {r.get('alert') or r.get('record')}", r.get("expr", "")))
    try:
        dash = json.loads((root / DASHBOARD).read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return exprs  # the dashboard section reports it

    def panels(ps: list) -> list:
        out = []
        for p in ps:
            out.append(p)
            out += panels(p.get("panels", []))
        return out
    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                exprs.append((f"panel {p.get('title')!r}", grafana_to_promql(t["expr"])))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and isinstance(q, str):
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q) or re.fullmatch(r"\s*query_result\((.*)\)\s*", q)
            if m:
                exprs.append((f"variable ${v['name']}", grafana_to_promql(m.group(1))))
            elif not re.fullmatch(r"\s*label_values\(\s*\w+\s*\)\s*", q):
                rep.fail(f"variable ${v['name']}: query {q!r} not understood by the checker")
    return exprs


def check_promql(root: Path, scrape: str | None, scrape_src: str, rep: Report) -> None:
    rep.start("PromQL")
    exprs = collect_exprs(root, rep)
    types, scrape_labels, scrape_values = parse_scrape(scrape) if scrape else ({}, {}, {})
    used: set[str] = set()
    n_sel = 0
    for where, expr in exprs:
        for name, matchers in selectors(expr, rep, where):
            n_sel += 1
            if not name:
                rep.fail(f"{where}: a selector without a metric name")
                continue
            base = name
            for suf in HISTOGRAM_SUFFIXES:
                if name.endswith(suf) and name[: -len(suf)] in KNOWN_METRICS \
                        and KNOWN_METRICS[name[: -len(suf)]][0] == "histogram":
                    base = name[: -len(suf)]
            if base not in KNOWN_METRICS:
                rep.fail(f"{where}: {name} is not a metric hookgate exports (DESIGN §5)")
                continue
            kind, allowed = KNOWN_METRICS[base]
            if kind == "histogram" and base == name:
                rep.fail(f"{where}: {name} is a histogram: use {name}_bucket/_sum/_count")
            used.add(base)
            if scrape is not None:
                fam = family_of(base, types)
                if fam not in types:
                    rep.fail(f"{where}: {base} is not in the {scrape_src} (no '# TYPE {base}' line)")
                elif types[fam] not in (kind, "untyped", "unknown") and not (kind == "counter" and types[fam] == "counter"):
                    rep.fail(f"{where}: {base} is a {types[fam]} in the {scrape_src}, the checker expects a {kind}")
            for label, op, value in matchers:
                extra = {"le"} if name.endswith("_bucket") else set()
                if label not in allowed | TARGET_LABELS | extra:
                    rep.fail(f"{where}: {name} has no label {label!r} (it has {sorted(allowed) or 'none'})")
                    continue
                if scrape is not None and label in allowed and fam in scrape_labels \
                        and label not in scrape_labels[fam]:
                    rep.fail(f"{where}: {name}{{{label}}}: no such label on {base} in the {scrape_src}")
                if label in LABEL_VALUES:
                    alts = value.split("|") if op in ("=~", "!~") else [value]
                    for a in alts:
                        if re.fullmatch(r"[a-z0-9_]+", a) and a not in LABEL_VALUES[label]:
                            rep.fail(f"{where}: {label}=\"{a}\" is not a value hookgate uses ({sorted(LABEL_VALUES[label])})")
    # The OldSecretStillUsed alert assumes positions ("0" = the first secret) in the secret label.
    if scrape is not None:
        secrets_seen = {v for k, v in scrape_values.get("hookgate_secret_matches_total", set()) if k == "secret"}
        if secrets_seen and not all(s.isdigit() for s in secrets_seen):
            rep.fail(f"hookgate_secret_matches_total's secret label holds {sorted(secrets_seen)}, "
                     "not positions: fix the HookgateOldSecretStillUsed alert (secret!=\"0\")")
        for lab, allowed_values in LABEL_VALUES.items():
            for fam, pairs in scrape_values.items():
                for k, v in pairs:
                    # DESIGN §5's families only: the extras (shadow mode, the replay
                    # store, buffers) keep their own documented value sets.
                    if fam in HOOKGATE_METRICS and k == lab and v not in allowed_values:
                        rep.fail(f"the {scrape_src} has {fam}{{{k}=\"{v}\"}}, not in DESIGN's list; update the checker")
    missing = sorted(set(HOOKGATE_METRICS) - used)
    if missing:
        rep.fail(f"the alerts and the dashboard never use {missing}")
    parsed = "parsed" if promql_parser is not None else "scanned (promql-parser not installed)"
    against = f"DESIGN §5 and the {scrape_src}" if scrape is not None else "DESIGN §5 (no scrape given)"
    rep.done(f"{len(exprs)} expressions {parsed}, {n_sel} selectors checked against {against}")


def check_promtool(root: Path, tmp: Path, required: bool, rep: Report) -> None:
    """Prometheus' own tool: the rules and the dashboard's queries parse and template as Prometheus
    sees them, and the alert unit tests under deploy/prometheus/tests pass."""
    rep.start("alert rules (promtool)")
    promtool = shutil.which("promtool")
    if not promtool:
        if required:
            rep.fail("promtool not found: apt-get install prometheus (Debian), or pass --no-promtool")
        rep.done("not run (no promtool)")
        return
    d = tmp / "promtool"
    d.mkdir(exist_ok=True)
    groups = [g for doc in load_yaml_docs(root / RULES) for g in doc.get("spec", {}).get("groups", [])]
    full = d / "full.rules.yaml"
    full.write_text(yaml.safe_dump({"groups": groups}, width=10000), encoding="utf-8")
    # The dashboard's queries as recording rules, so Prometheus' parser sees them too.
    dash_rules = [{"record": f"hookgate:dashboard_query:{i}", "expr": e}
                  for i, (where, e) in enumerate(collect_exprs(root, rep)) if not where.startswith("alert ")]
    dash = d / "dashboard.rules.yaml"
    dash.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": dash_rules}]}, width=10000),
                    encoding="utf-8")
    r = subprocess.run([promtool, "check", "rules", str(full), str(dash)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        rep.fail(f"promtool check rules: {(r.stdout + r.stderr).strip()[-2000:]}")
    # Unit tests compare labels only: annotations are prose, checked by `check rules` above.
    bare = copy.deepcopy(groups)
    for g in bare:
        for rule in g.get("rules", []):
            rule.pop("annotations", None)
    (d / "hookgate.rules.yaml").write_text(yaml.safe_dump({"groups": bare}, width=10000), encoding="utf-8")
    tests = sorted((root / "deploy/prometheus/tests").glob("*.test.yaml"))
    for t in tests:
        shutil.copy(t, d / t.name)
    if not tests:
        rep.fail("no alert unit tests in deploy/prometheus/tests")
    else:
        r = subprocess.run([promtool, "test", "rules", *[t.name for t in tests]], cwd=d, capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            rep.fail(f"promtool test rules: {(r.stdout + r.stderr).strip()[-3000:]}")
    alerts = sum(1 for g in groups for rule in g.get("rules", []) if "alert" in rule)
    tested = set()
    for t in tests:
        for case in (yaml.safe_load(t.read_text(encoding="utf-8")) or {}).get("tests", []):
            for a in case.get("alert_rule_test", []):
                if a.get("exp_alerts"):
                    tested.add(a["alertname"])
    untested = sorted({rule["alert"] for g in groups for rule in g.get("rules", []) if "alert" in rule} - tested)
    if untested:
        rep.fail(f"alerts never shown firing in deploy/prometheus/tests: {untested}")
    rep.done(f"{alerts} alerts and {len(dash_rules)} dashboard queries pass `promtool check rules`; "
             f"unit tests make every alert fire in its situation and stay quiet when healthy")


# ---------------------------------------------------------------------------------------------------
# Dashboard and Dockerfile

def check_dashboard(root: Path, rep: Report) -> None:
    rep.start("dashboard")
    try:
        dash = json.loads((root / DASHBOARD).read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        rep.fail(f"{DASHBOARD}: not valid JSON: {e}")
        rep.done("invalid")
        return
    for k in ("title", "uid", "description", "panels", "schemaVersion"):
        if not dash.get(k):
            rep.fail(f"{DASHBOARD}: missing {k}")
    ids: set[int] = set()
    n = 0

    def walk(ps: list) -> None:
        nonlocal n
        for p in ps:
            n += 1
            if p.get("id") in ids:
                rep.fail(f"panel id {p.get('id')} used twice")
            ids.add(p.get("id"))
            if p.get("type") != "row":
                if not p.get("targets"):
                    rep.fail(f"panel {p.get('title')!r} has no queries")
                if not p.get("description"):
                    rep.fail(f"panel {p.get('title')!r} has no description")
                gp = p.get("gridPos", {})
                if not all(isinstance(gp.get(k), int) for k in ("x", "y", "w", "h")) or gp["x"] + gp["w"] > 24:
                    rep.fail(f"panel {p.get('title')!r}: bad gridPos {gp}")
                ds = p.get("datasource", {})
                if not isinstance(ds, dict) or ds.get("type") != "prometheus":
                    rep.fail(f"panel {p.get('title')!r}: datasource must be a Prometheus one")
            walk(p.get("panels", []))
    walk(dash.get("panels", []))
    names = [v.get("name") for v in dash.get("templating", {}).get("list", [])]
    if "datasource" not in names:
        rep.fail("no $datasource variable: the dashboard would be tied to one Grafana")
    rep.done(f"{DASHBOARD}: valid JSON, {n} panels")


def dockerignore_patterns(root: Path) -> list[str]:
    p = root / ".dockerignore"
    if not p.is_file():
        return []
    return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    result = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        pat = pat.strip("/")
        pats = [pat, pat.replace("**/", "", 1)] if pat.startswith("**/") else [pat]
        parts = rel.split("/")
        hit = any(fnmatch.fnmatch("/".join(parts[:i]), p) for p in pats for i in range(1, len(parts) + 1))
        if hit:
            result = not neg
    return result


def check_dockerfile(root: Path, rep: Report) -> None:
    rep.start("Dockerfile")
    df = root / DOCKERFILE
    try:
        lines = df.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        rep.fail(str(e))
        rep.done("missing")
        return
    if not lines or not lines[0].startswith("#"):
        rep.fail("the Dockerfile should open with a comment saying what it owns")
    instrs: list[tuple[str, str]] = []
    buf = ""
    for ln in lines:
        if not buf and (not ln.strip() or ln.lstrip().startswith("#")):
            continue
        if ln.lstrip().startswith("#"):
            continue
        if ln.rstrip().endswith("\\"):
            buf += ln.rstrip()[:-1] + " "
            continue
        buf += ln
        op, _, rest = buf.strip().partition(" ")
        instrs.append((op.upper(), rest.strip()))
        buf = ""
    patterns = dockerignore_patterns(root)
    if not patterns:
        rep.fail(".dockerignore missing or empty")
    for must in ("target", ".git"):
        if not ignored(must, patterns):
            rep.fail(f".dockerignore does not exclude {must}/")
    stages: list[dict] = []
    for op, rest in instrs:
        if op == "FROM":
            m = re.fullmatch(r"(--platform=\S+\s+)?(\S+)(\s+AS\s+(\S+))?", rest, re.I)
            if not m:
                rep.fail(f"FROM {rest}: not understood")
                continue
            image, alias = m.group(2), m.group(4)
            stages.append({"image": image, "alias": alias, "user": None, "entrypoint": None})
            if image.lower() in {s["alias"].lower() for s in stages[:-1] if s["alias"]}:
                continue
            last = image.rsplit("/", 1)[-1]
            if "@sha256:" not in image and (":" not in last or last.endswith(":latest")):
                rep.fail(f"FROM {image}: pin the base image by tag (not latest) or digest")
        elif not stages:
            if op != "ARG":
                rep.fail(f"{op} before FROM")
        elif op in ("COPY", "ADD"):
            toks = rest.split()
            if "--from" in rest:
                continue
            toks = [t for t in toks if not t.startswith("--")]
            if toks and toks[0].startswith("["):
                toks = json.loads(" ".join(toks))
            for src in toks[:-1]:
                if src in (".", "./"):
                    continue
                if not (root / src).exists() and not any(root.glob(src)):
                    rep.fail(f"{op} {src}: does not exist relative to the repository root")
                elif ignored(src.rstrip("/"), patterns):
                    rep.fail(f"{op} {src}: excluded by .dockerignore")
        elif op == "USER":
            stages[-1]["user"] = rest
        elif op == "ENTRYPOINT":
            stages[-1]["entrypoint"] = rest
        elif op == "RUN" and "--locked" in rest and not (root / "Cargo.lock").is_file():
            rep.fail("the build uses --locked but Cargo.lock is not in the repository")
    if not stages:
        rep.fail("no FROM")
    else:
        final = stages[-1]
        user = (final["user"] or "").split(":")[0]
        if not user and not final["image"].endswith(":nonroot"):
            rep.fail("the final stage sets no USER")
        if user in ("root", "0"):
            rep.fail("the final stage runs as root")
        if user and not user.isdigit():
            rep.fail(f"USER {user}: use a numeric UID so Kubernetes can verify runAsNonRoot")
        if not final["entrypoint"] or "hookgate" not in final["entrypoint"]:
            rep.fail("the final stage's ENTRYPOINT does not run hookgate")
    if len(stages) < 2:
        rep.fail("expected a multi-stage build (compile, then a minimal runtime)")
    # What the build needs from the context is not excluded.
    needed = ["Cargo.toml", "Cargo.lock", "src"]
    cargo = root / "Cargo.toml"
    if cargo.is_file():
        try:
            manifest = tomllib.loads(cargo.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            manifest = {}
            rep.fail(f"Cargo.toml: {e}")
        # Declared targets must be in the context, or cargo refuses the manifest.
        for section, d in (("bench", "benches"), ("example", "examples"), ("test", "tests"), ("bin", "src/bin")):
            for t in manifest.get(section, []):
                if t.get("path"):
                    needed.append(t["path"])
                elif t.get("name"):
                    needed.append(f"{d}/{t['name']}.rs" if (root / d / f"{t['name']}.rs").exists()
                                  else f"{d}/{t['name']}/main.rs")
        for member in manifest.get("workspace", {}).get("members", []):
            needed.append(member)
    else:
        rep.fail("Cargo.toml not found at the repository root")
    for n in needed:
        if not (root / n).exists() and not any(root.glob(n)):
            rep.fail(f"the build needs {n}, which is not in the repository")
        elif ignored(n, patterns):
            rep.fail(f"the build needs {n}, which .dockerignore excludes")
    # The build context as Docker would send it (tracked files minus .dockerignore): cargo accepts the
    # manifest there and the lock file is current, as `cargo build --locked` in the image needs.
    ctx_note = ""
    cargo_bin = shutil.which("cargo")
    git = shutil.which("git")
    if cargo_bin and git and (root / "Cargo.toml").is_file():
        ls = subprocess.run([git, "-C", str(root), "ls-files", "-z"], capture_output=True, timeout=60)
        if ls.returncode == 0:
            ctx = Path(tempfile.mkdtemp(prefix="hookgate-docker-context."))
            try:
                for rel in filter(None, ls.stdout.decode().split("\0")):
                    if ignored(rel, patterns) or not (root / rel).is_file():
                        continue
                    (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(root / rel, ctx / rel)
                r = subprocess.run([cargo_bin, "metadata", "--format-version", "1", "--locked", "--offline"],
                                   cwd=ctx, capture_output=True, text=True, timeout=300,
                                   env={**os.environ, "CARGO_TARGET_DIR": str(ctx / "target")})
                if r.returncode == 0:
                    ctx_note = "; cargo accepts the build context with --locked"
                elif re.search(r"lock file|can't find|failed to parse manifest|no targets", r.stderr):
                    rep.fail(f"cargo in the build context: {r.stderr.strip()[-1500:]}")
                else:  # most likely the offline registry cache lacks a crate: not the image's problem
                    rep.note(f"cargo metadata in the build context: {r.stderr.strip()[-300:]}")
            finally:
                shutil.rmtree(ctx, ignore_errors=True)
    rep.done(f"{len(stages)} stages, base images pinned, COPY sources present, non-root USER, "
             f".dockerignore keeps what cargo needs{ctx_note}")


# ---------------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--metrics", type=Path, help="a /metrics scrape of hookgate to check metric names against "
                                                  "(default: scrape the real binary on loopback)")
    ap.add_argument("--no-live", action="store_true", help="do not run the gateway for a live scrape")
    ap.add_argument("--hookgate", type=Path, help="the hookgate binary")
    ap.add_argument("--k8s-versions", default=os.environ.get("HOOKGATE_K8S_VERSIONS", K8S_VERSIONS_DEFAULT))
    ap.add_argument("--no-promtool", action="store_true", help="do not fail when promtool is missing")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (printed)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    root = a.root.resolve()
    rep = Report(a.verbose)
    tmp = Path(tempfile.mkdtemp(prefix="hookgate-deploy-check."))
    started = time.monotonic()
    try:
        rendered = check_render(root, rep)
        check_schemas(root, rendered, [v.strip() for v in a.k8s_versions.split(",") if v.strip()], rep)
        check_crds(rendered, rep)
        toml_text = check_pods(root, rendered, rep)
        fixture = check_hookgate_config(a.hookgate, toml_text, tmp, rep)
        scrape, src = None, "scrape"
        if a.metrics:
            try:
                scrape, src = a.metrics.read_text(encoding="utf-8"), f"scrape {a.metrics}"
            except OSError as e:
                rep.start("scrape")
                rep.fail(f"--metrics {a.metrics}: {e}")
                rep.done("unreadable")
        elif not a.no_live and fixture is not None:
            scrape, src = live_scrape(a.hookgate, fixture[0], fixture[1], tmp, rep), "live scrape"
        check_promql(root, scrape, src, rep)
        check_promtool(root, tmp, not a.no_promtool, rep)
        check_dashboard(root, rep)
        check_dockerfile(root, rep)
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    took = time.monotonic() - started
    if rep.failures:
        print(f"deploy check: {len(rep.failures)} problem(s) in {len({s for s, _ in rep.failures})} section(s) ({took:.0f}s)")
        return 1
    print(f"deploy check: all {len(rep.sections)} sections passed ({took:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
