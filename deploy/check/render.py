"""Rendering: every kustomization under deploy/ through the real kustomize (`kubectl kustomize`), and
every YAML file under deploy/ listed by some kustomization, so nothing escapes the other checks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from common import KUSTOMIZATIONS, YAML_DIRS, Report, find_kustomization, load_yaml_docs, manifest_files

def kustomize(kubectl: str, d: Path) -> list[dict]:
    r = subprocess.run([kubectl, "kustomize", str(d)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise ValueError(f"kubectl kustomize {d}: {r.stderr.strip()}")
    return [o for o in yaml.safe_load_all(r.stdout) if o]


def kubectl_version(kubectl: str) -> str:
    r = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=60)
    kust = [line.split(":", 1)[1].strip() for line in r.stdout.splitlines() if line.startswith("Kustomize Version")]
    return f"kustomize {kust[0]}" if kust else "kubectl kustomize"


def check_render(root: Path, kubectl: str, rep: Report) -> dict[str, list[dict]]:
    rep.start("kustomize")
    rendered: dict[str, list[dict]] = {}
    how = kubectl_version(kubectl)
    for rel in KUSTOMIZATIONS:
        try:
            rendered[rel] = kustomize(kubectl, root / rel)
        except (ValueError, OSError, subprocess.TimeoutExpired) as e:  # report, keep checking the rest
            rep.fail(str(e))
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
