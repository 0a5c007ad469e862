"""The Grafana dashboard JSON: well formed, its required keys, every panel with queries, a description,
a sane grid position and a Prometheus datasource, and a $datasource variable (its PromQL is checked in
prometheus.py)."""

from __future__ import annotations

import json
from pathlib import Path

from common import DASHBOARD, Report

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
