"""Prometheus: the metric names, labels and label values the alerts and the dashboard use against what
hookgate exports (DESIGN §5, and a scrape), and the rules through promtool (check + unit tests)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from common import DASHBOARD, RULES, Report, load_yaml_docs

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
    # Issue 15's secret validity windows (DESIGN §2 declares the windows; §5 predates the gauge).
    "hookgate_secret_expiry_seconds": ("gauge", {"route", "secret"}),
    # DESIGN §8 (durable delivery, issue 16) defines these: series exist only with a [queue] section.
    "hookgate_queue_depth": ("gauge", {"route"}),
    "hookgate_queue_oldest_seconds": ("gauge", {"route"}),
    "hookgate_queue_attempts_total": ("counter", {"route", "result"}),
    "hookgate_queue_dead_letters_total": ("counter", {"route"}),
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
# Families with no series until the configuration asks for one: the shipped config declares
# no secret with a not_after, so its live scrape has no hookgate_secret_expiry_seconds at all.
# Likewise the queue's families (DESIGN §8) without a [queue] section: a scrape of your own gateway
# (--metrics) may lack them. The live run adds a queue route to the shipped config (which has none) and
# checks there that they exist and count what its traffic did (live.py).
QUEUE_METRICS = {"hookgate_queue_depth", "hookgate_queue_oldest_seconds", "hookgate_queue_attempts_total",
                 "hookgate_queue_dead_letters_total"}
ONLY_WITH_SERIES = {"hookgate_secret_expiry_seconds"} | QUEUE_METRICS
# Labels Prometheus attaches to every series scraped through the PodMonitor.
TARGET_LABELS = {"namespace", "pod", "container", "job", "instance", "endpoint", "service"}
# Closed label value sets (DESIGN §4 and §5).
LABEL_VALUES = {
    "outcome": {"forwarded", "rejected", "duplicate", "upstream_error", "queued"},
    "class": {"2xx", "3xx", "4xx", "5xx"},
    # hookgate_config_reloads_total's, then hookgate_queue_attempts_total's (DESIGN §8).
    "result": {"success", "failure", "delivered", "failed", "dead_lettered"},
    "reason": {"no_route", "method_not_allowed", "body_too_large", "timeout", "bad_request", "missing_signature",
               "invalid_signature", "stale_timestamp", "in_flight", "upstream_unavailable",
               "upstream_timeout", "replay_store_unavailable", "overloaded", "not_implemented",
               "queue_full", "queue_unavailable"},
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


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
                    if base not in ONLY_WITH_SERIES:
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
