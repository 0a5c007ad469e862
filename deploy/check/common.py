"""What every section shares: the report that prints one line per section, where things are in deploy/,
and small readers over rendered Kubernetes objects (YAML files, pod specs, ports, quantities)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

K8S_VERSIONS_DEFAULT = "1.30.0,latest"   # oldest supported by the manifests (preStop sleep), newest shipped
OVERLAYS = ["deploy/kubernetes/sidecar", "deploy/kubernetes/native-sidecar"]
KUSTOMIZATIONS = OVERLAYS + ["deploy/prometheus", "deploy/grafana"]
YAML_DIRS = ["deploy/kubernetes", "deploy/prometheus", "deploy/grafana"]
SHIPPED_CONFIG = "deploy/kubernetes/base/hookgate.toml"
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


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind]


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
