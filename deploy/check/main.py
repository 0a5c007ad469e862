#!/usr/bin/env python3
"""deploy/check/main.py: validates everything under deploy/ offline (run through deploy/check.sh, which
provides the Python dependencies and kubectl), one section per file here, and prints one line per
section; exits 1 on any failure. See README.md, "Run as a Kubernetes sidecar" > "What CI checks"."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import K8S_VERSIONS_DEFAULT, SHIPPED_CONFIG, Report
from dashboard import check_dashboard
from dockerfile import check_dockerfile
from hookgate import check_hookgate_config
from live import live_scrape
from pods import check_pods
from prometheus import check_promql, check_promtool
from render import check_render
from schemas import check_crds, check_schemas

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
    ap.add_argument("--kubectl", default=shutil.which("kubectl") or "kubectl",
                    help="the kubectl whose kustomize renders the overlays")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    root = a.root.resolve()
    rep = Report(a.verbose)
    tmp = Path(tempfile.mkdtemp(prefix="hookgate-deploy-check."))
    started = time.monotonic()
    try:
        rendered = check_render(root, a.kubectl, rep)
        check_schemas(root, rendered, [v.strip() for v in a.k8s_versions.split(",") if v.strip()], rep)
        check_crds(rendered, rep)
        shipped = (root / SHIPPED_CONFIG).read_text(encoding="utf-8")
        fixture = check_hookgate_config(a.hookgate, shipped, tmp, rep)
        check_pods(root, rendered, fixture.resolved if fixture else None, rep)
        scrape, src = None, "scrape"
        if a.metrics:
            try:
                scrape, src = a.metrics.read_text(encoding="utf-8"), f"scrape {a.metrics}"
            except OSError as e:
                rep.start("scrape")
                rep.fail(f"--metrics {a.metrics}: {e}")
                rep.done("unreadable")
        elif not a.no_live and fixture is not None:
            scrape, src = live_scrape(a.hookgate, fixture, tmp, rep), "live scrape"
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
