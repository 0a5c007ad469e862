"""The sidecar wiring: each pod form (classic and native sidecar) agrees with hookgate's resolved config
(`hookgate check --json`): config and secret mounts, TLS files, ports, probes, Service,
NetworkPolicy, securityContext, resources and shutdown timing."""

from __future__ import annotations

import re
from pathlib import Path

from common import OVERLAYS, SHIPPED_CONFIG, Report, _containers, by_kind, parse_quantity, port_of

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


def check_pods(root: Path, rendered: dict[str, list[dict]], cfg: dict | None, rep: Report) -> None:
    """The pod wiring agrees with `cfg`, the shipped hookgate.toml as `hookgate check --json` resolved it
    (container paths); the ConfigMap carries exactly deploy/kubernetes/base/hookgate.toml."""
    rep.start("sidecar wiring")
    src = (root / SHIPPED_CONFIG).read_text(encoding="utf-8")
    if cfg is None:
        rep.fail("hookgate could not resolve the shipped config (see `hookgate check`)")
        rep.done("not run")
        return
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
        # Files the config names exist in the container; env secrets are set.
        tls = cfg["listen"]["tls"] or {}
        needed = [tls.get("cert"), tls.get("key")]
        envs = {e["name"] for e in hg.get("env", [])}
        for r in cfg["routes"]:
            for s in (s["source"] for s in r["secrets"]):
                if s.startswith("file:"):
                    needed.append(s[5:])
                elif s.startswith("env:") and s[4:] not in envs:
                    rep.fail(f"{rel}: route {r['name']}: {s} is not set in the container's env")
        for f in filter(None, needed):
            if f not in files:
                rep.fail(f"{rel}: hookgate.toml names {f}, which no volume mount of the hookgate container provides")
        for f, (kind, name, key) in files.items():
            if kind == "Secret" and f.startswith("/var/run/secrets/hookgate/") and f not in needed:
                rep.fail(f"{rel}: {f} is mounted but no route uses it")
        # Ports: listen behind the Service, admin behind the probes and the PodMonitor.
        listen_port = port_of(cfg["listen"]["addr"])
        admin_addr = (cfg["admin"] or {}).get("addr", "127.0.0.1:0")
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
        up_port_m = re.search(r":(\d+)$", up.split("//", 1)[-1])
        up_port = int(up_port_m.group(1)) if up_port_m else None
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
            max_buffered = cfg["limits"]["max_buffered_bytes"]
            if mem and max_buffered >= parse_quantity(mem):
                rep.fail(f"{rel}: limits.max_buffered ({max_buffered} bytes) is not below the memory limit {mem}")
            grace = cfg["limits"]["shutdown_grace_seconds"]
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
            rep.fail(f"{rel}: {e}")
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
