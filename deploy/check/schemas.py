"""Kubernetes schemas (kubernetes-validate, for each version asked) of every rendered object and YAML
file, and the CRD objects (PodMonitor, PrometheusRule, cert-manager) whose schemas it does not ship."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from common import OVERLAYS, YAML_DIRS, Report, _containers, _pod_specs, load_yaml_docs, manifest_files

try:
    import kubernetes_validate
    from kubernetes_validate import utils as kv_utils
except ImportError:  # check.sh installs it; a clear message beats a traceback
    kubernetes_validate = None

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
