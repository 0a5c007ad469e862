"""The hookgate binary as the one source of truth: a runnable copy of the shipped config (secrets and
TLS from throwaway files), `hookgate check` and `hookgate check --json` on it (every resolved value the
other sections use), and `hookgate sign` for the live run's signatures."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from common import Report

def throwaway_secret(provider: str) -> str:
    """A fresh secret in the form the provider's routes read (Svix-style `whsec_` keys, else hex)."""
    raw = os.urandom(24)
    if provider in ("svix", "standard-webhooks"):
        return "whsec_" + base64.b64encode(raw).decode()
    return raw.hex()


@dataclass
class Fixture:
    """The shipped config made runnable here, and what the binary resolved from it."""
    path: Path
    # `hookgate check --json` of the fixture, with each throwaway path put back to the container's.
    resolved: dict
    # The same, as the local run sees it (throwaway secret and TLS files).
    local: dict


def make_fixture(tmp: Path, toml_text: str) -> tuple[Path, dict[str, str], list[str]]:
    """A copy of the config whose secret and TLS files are throwaway files under tmp. Reads the TOML only
    to find the file names to replace (and each route's provider, for the secret's form); every value
    the checks use comes from `hookgate check --json`. Returns the copy, {throwaway path: original} and the
    secret values written."""
    secrets_dir, tls_dir = tmp / "secrets", tmp / "tls"
    secrets_dir.mkdir(exist_ok=True)
    tls_dir.mkdir(exist_ok=True)
    cfg = tomllib.loads(toml_text)
    renames: dict[str, str] = {}
    values: list[str] = []
    text = toml_text
    for r in cfg.get("routes", []):
        for s in r.get("secrets", []):
            if not s.startswith("file:"):
                continue
            path = s[5:]
            local = secrets_dir / Path(path).name
            value = throwaway_secret(r["provider"])
            values.append(value)
            local.write_text(value + "\n", encoding="utf-8")
            renames[str(local)] = path
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
        renames[str(crt)] = listen["tls_cert"]
        renames[str(key)] = listen["tls_key"]
    out = tmp / "hookgate.toml"
    out.write_text(text, encoding="utf-8")
    return out, renames, values


def run(hookgate: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(hookgate), *args], capture_output=True, input=stdin, timeout=60,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def resolved(hookgate: Path, config: Path) -> dict:
    """`hookgate check --json`: the validated config, sizes in bytes and durations in seconds."""
    r = run(hookgate, "check", "--json", "--config", str(config))
    if r.returncode != 0:
        raise RuntimeError(f"`hookgate check --json` exited {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(r.stdout)


def sign(hookgate: Path, body: bytes, msg_id: str, *, config: Path | None = None, route: str | None = None,
         provider: str | None = None, secret: str | None = None) -> dict[str, str]:
    """The headers `hookgate sign` gives for body: a route's (its scheme and first secret) or a provider's."""
    args = ["sign", "--id", msg_id]
    args += ["--config", str(config), "--route", route] if config else ["--provider", provider, "--secret", secret]
    r = run(hookgate, *args, stdin=body)
    if r.returncode != 0:
        raise RuntimeError(f"`hookgate {' '.join(args[:1])}` exited {r.returncode}: {r.stderr.decode(errors='replace')}")
    return dict(line.split(": ", 1) for line in r.stdout.decode().splitlines() if ": " in line)


def check_hookgate_config(hookgate: Path | None, toml_text: str | None, tmp: Path, rep: Report) -> Fixture | None:
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
        cfg_path, renames, values = make_fixture(tmp, toml_text)
        r = run(hookgate, "check", "--config", str(cfg_path))
        if r.returncode != 0:
            rep.fail(f"`hookgate check` exited {r.returncode}: {(r.stderr or r.stdout).decode(errors='replace')[-2000:]}")
        local = resolved(hookgate, cfg_path)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        rep.fail(str(e))
        rep.done("not run")
        return None
    text = json.dumps(local)
    for v in values:
        if v in text or v.removeprefix("whsec_") in text:
            rep.fail("`hookgate check --json` printed a secret's value (it must print only its source)")
    for here, there in renames.items():
        text = text.replace(json.dumps(here)[1:-1], json.dumps(there)[1:-1])
    fixture = Fixture(cfg_path, json.loads(text), local)
    # The check must really check: an unknown key is exit 2.
    bad = tmp / "typo.toml"
    bad.write_text(cfg_path.read_text(encoding="utf-8").replace("[upstream]\n", "[upstream]\ntimout = \"1s\"\n", 1),
                   encoding="utf-8")
    r2 = run(hookgate, "check", "--config", str(bad))
    if r2.returncode != 2:
        rep.fail(f"`hookgate check` on a config with an unknown key exited {r2.returncode}, expected 2")
    rep.done(f"the ConfigMap's hookgate.toml passes `{hookgate.name} check`; {len(local['routes'])} routes resolved "
             "by `check --json` (secrets and TLS from throwaway files)")
    return fixture
