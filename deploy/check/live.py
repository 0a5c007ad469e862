"""The live end-to-end run: the real gateway on loopback in front of a stand-in app, genuine (signed by
`hookgate sign`), redelivered, forged, failing and unrouted webhooks, a queue route (durable delivery:
delivered, retried and dead-lettered requests), two reloads and SIGTERM; returns its /metrics scrape and
checks that the series the alerts key on counted what happened."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from common import Report
from hookgate import Fixture, sign, throwaway_secret

class _Upstream(http.server.BaseHTTPRequestHandler):
    """The stand-in application for the live scrape: 200, or 500 / 400 / a dropped connection on request."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if b"please-fail" in body:
            self.send_response(500)
        elif b"please-reject" in body:  # final for a queued request: dead-lettered at once
            self.send_response(400)
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


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports: every socket stays bound until all n are chosen, so the
    kernel cannot hand the same port out twice (one port for both the upstream and hookgate's
    listener made this check fail with "Address already in use")."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def set_key(text: str, section: str, key: str, value: str) -> str:
    """`key = "value"` for the first `key` under `[section]` of a TOML text (edits text, reads no values)."""
    m = re.search(rf"^\[{re.escape(section)}\]\s*$(.*?)^{re.escape(key)}\s*=\s*\"[^\"]*\"", text, re.M | re.S)
    if not m:
        raise ValueError(f"no {section}.{key} in the config")
    return text[:m.end(1)] + f'{key} = "{value}"' + text[m.end():]


# The queue route the live run adds (the shipped config has none, so its scrape would lack DESIGN §8's
# families): a copy of the first route, with `delivery = "queue"`.
QUEUE_ROUTE, QUEUE_PATH = "hookgate-check-queued", "/hookgate-check/queued"


def with_queue_route(text: str, queue_dir: Path) -> str:
    """The config text with a `[queue]` and a queue route copied from its first route (edits text, reads
    no values: the route's provider and secret stay as written)."""
    m = re.search(r"^\[\[routes\]\][ \t]*\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not m:
        raise ValueError("no [[routes]] in the config")
    block = m.group(1)
    # Dropped: what a copy must not keep (its name and path, and modes a queue route refuses).
    block = re.sub(r"^(name|path|delivery|mode|methods)\s*=.*\n?", "", block, flags=re.M).strip()
    return (text.rstrip() + f'\n\n[queue]\npath = "{queue_dir}"\nretry_initial = "200ms"\nretry_max = "1s"\n\n'
            f'[[routes]]\nname = "{QUEUE_ROUTE}"\npath = "{QUEUE_PATH}"\n{block}\ndelivery = "queue"\n')


def live_scrape(hookgate: Path, fixture: Fixture, tmp: Path, rep: Report) -> str | None:
    """Runs the real gateway on loopback, sends genuine, forged, failing and plain-HTTP requests, reloads,
    and returns /metrics, so every metric the alerts and the dashboard name has had a reason to appear."""
    rep.start("live scrape")
    up_port, listen_port, admin_port = _free_ports(3)
    text = fixture.path.read_text(encoding="utf-8")
    cfg = fixture.local
    text = set_key(text, "listen", "addr", f"127.0.0.1:{listen_port}")
    text = set_key(text, "admin", "addr", f"127.0.0.1:{admin_port}")
    text = set_key(text, "upstream", "url", f"http://127.0.0.1:{up_port}")
    text = set_key(text, "limits", "shutdown_grace", "3s")
    text = with_queue_route(text, tmp / "queue")
    live = tmp / "live.toml"
    live.write_text(text, encoding="utf-8")
    tls = cfg["listen"]["tls"] is not None
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
                ctx = ssl.create_default_context(cafile=cfg["listen"]["tls"]["cert"])
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
            name = r["name"]
            path = r["path"].replace("*", "live")

            def genuine(body: bytes, msg_id: str) -> dict[str, str]:
                return sign(hookgate, body, msg_id, config=live, route=name)
            body = json.dumps({"n": i, "event": "check"}).encode()
            h = genuine(body, f"msg_live_{i}")
            statuses.append((name, "genuine", post(path, body, h), 200))
            statuses.append((name, "redelivered", post(path, body, h), 200))
            forged = sign(hookgate, body, f"msg_forged_{i}", provider=r["provider"],
                          secret=throwaway_secret(r["provider"]))
            statuses.append((name, "forged", post(path, body, forged), 401))
            for word, want in ((b"please-fail", 500), (b"please-drop", 502)):
                b2 = json.dumps({"n": i, "x": word.decode()}).encode()
                statuses.append((name, word.decode(), post(path, b2, genuine(b2, f"msg_{word.decode()}_{i}")), want))
        statuses.append(("unmatched", "no route", post("/no/such/route", b"{}", {}), 404))
        # The queue route: 202 for each verified request, then delivered (200), retried (500, so one
        # stays stored) or dead-lettered (400); a redelivery is a duplicate, a forgery is never stored.
        qprovider = next(r["provider"] for r in cfg["routes"])
        # In this order: delivery is in order per route, and the failing one then stays at the head.
        for word in ("please-deliver", "please-reject", "please-fail"):
            qb = json.dumps({"queued": word}).encode()
            qh = sign(hookgate, qb, f"msg_queued_{word}", config=live, route=QUEUE_ROUTE)
            statuses.append((QUEUE_ROUTE, word, post(QUEUE_PATH, qb, qh), 202))
            if word == "please-deliver":
                statuses.append((QUEUE_ROUTE, "redelivered", post(QUEUE_PATH, qb, qh), 200))
        qb = json.dumps({"queued": "forged"}).encode()
        forged = sign(hookgate, qb, "msg_queued_forged", provider=qprovider, secret=throwaway_secret(qprovider))
        statuses.append((QUEUE_ROUTE, "forged", post(QUEUE_PATH, qb, forged), 401))
        queue_expect = [("hookgate_requests_total", {"outcome": "queued", "route": QUEUE_ROUTE}),
                        ("hookgate_queue_attempts_total", {"result": "delivered", "route": QUEUE_ROUTE}),
                        ("hookgate_queue_attempts_total", {"result": "failed", "route": QUEUE_ROUTE}),
                        ("hookgate_queue_attempts_total", {"result": "dead_lettered", "route": QUEUE_ROUTE}),
                        ("hookgate_queue_dead_letters_total", {"route": QUEUE_ROUTE}),
                        ("hookgate_queue_depth", {"route": QUEUE_ROUTE})]
        # The delivery loop runs on its own: wait (10 s at most) until it has done each thing once.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, now = get("/metrics")
            if status == 200 and all(sample_sum(now, n, lab) > 0 for n, lab in queue_expect):
                break
            time.sleep(0.2)
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
                      ("hookgate_upstream_duration_seconds_count", {})] + queue_expect
            if tls:
                expect.append(("hookgate_tls_handshake_errors_total", {}))
            if proc.poll() is None:
                expect += [("hookgate_config_reloads_total", {"result": "success"}),
                           ("hookgate_config_reloads_total", {"result": "failure"})]
            if "# TYPE hookgate_queue_oldest_seconds gauge" not in scrape:
                rep.fail("hookgate_queue_oldest_seconds is not in the live scrape (a queue route is configured)")
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
    rep.done(f"real gateway on loopback{' with TLS' if tls else ''}: {len(statuses)} webhooks (a queue route among them)"
             f"{', a plain-HTTP handshake' if tls else ''}, two reloads, SIGTERM; /metrics has {n} metric families")
    return scrape
