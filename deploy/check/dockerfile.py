"""The Dockerfile: a multi-stage build from pinned bases whose COPY sources exist and survive
.dockerignore (cargo accepts the build context with --locked), ending as a numeric non-root USER that
runs hookgate."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

from common import DOCKERFILE, Report

def dockerignore_patterns(root: Path) -> list[str]:
    p = root / ".dockerignore"
    if not p.is_file():
        return []
    return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    result = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        pat = pat.strip("/")
        pats = [pat, pat.replace("**/", "", 1)] if pat.startswith("**/") else [pat]
        parts = rel.split("/")
        hit = any(fnmatch.fnmatch("/".join(parts[:i]), p) for p in pats for i in range(1, len(parts) + 1))
        if hit:
            result = not neg
    return result


def check_dockerfile(root: Path, rep: Report) -> None:
    rep.start("Dockerfile")
    df = root / DOCKERFILE
    try:
        lines = df.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        rep.fail(str(e))
        rep.done("missing")
        return
    if not lines or not lines[0].startswith("#"):
        rep.fail("the Dockerfile should open with a comment saying what it owns")
    instrs: list[tuple[str, str]] = []
    buf = ""
    for ln in lines:
        if not buf and (not ln.strip() or ln.lstrip().startswith("#")):
            continue
        if ln.lstrip().startswith("#"):
            continue
        if ln.rstrip().endswith("\\"):
            buf += ln.rstrip()[:-1] + " "
            continue
        buf += ln
        op, _, rest = buf.strip().partition(" ")
        instrs.append((op.upper(), rest.strip()))
        buf = ""
    patterns = dockerignore_patterns(root)
    if not patterns:
        rep.fail(".dockerignore missing or empty")
    for must in ("target", ".git"):
        if not ignored(must, patterns):
            rep.fail(f".dockerignore does not exclude {must}/")
    stages: list[dict] = []
    for op, rest in instrs:
        if op == "FROM":
            m = re.fullmatch(r"(--platform=\S+\s+)?(\S+)(\s+AS\s+(\S+))?", rest, re.I)
            if not m:
                rep.fail(f"FROM {rest}: not understood")
                continue
            image, alias = m.group(2), m.group(4)
            stages.append({"image": image, "alias": alias, "user": None, "entrypoint": None})
            if image.lower() in {s["alias"].lower() for s in stages[:-1] if s["alias"]}:
                continue
            last = image.rsplit("/", 1)[-1]
            if "@sha256:" not in image and (":" not in last or last.endswith(":latest")):
                rep.fail(f"FROM {image}: pin the base image by tag (not latest) or digest")
        elif not stages:
            if op != "ARG":
                rep.fail(f"{op} before FROM")
        elif op in ("COPY", "ADD"):
            toks = rest.split()
            if "--from" in rest:
                continue
            toks = [t for t in toks if not t.startswith("--")]
            if toks and toks[0].startswith("["):
                toks = json.loads(" ".join(toks))
            for src in toks[:-1]:
                if src in (".", "./"):
                    continue
                if not (root / src).exists() and not any(root.glob(src)):
                    rep.fail(f"{op} {src}: does not exist relative to the repository root")
                elif ignored(src.rstrip("/"), patterns):
                    rep.fail(f"{op} {src}: excluded by .dockerignore")
        elif op == "USER":
            stages[-1]["user"] = rest
        elif op == "ENTRYPOINT":
            stages[-1]["entrypoint"] = rest
        elif op == "RUN" and "--locked" in rest and not (root / "Cargo.lock").is_file():
            rep.fail("the build uses --locked but Cargo.lock is not in the repository")
    if not stages:
        rep.fail("no FROM")
    else:
        final = stages[-1]
        user = (final["user"] or "").split(":")[0]
        if not user and not final["image"].endswith(":nonroot"):
            rep.fail("the final stage sets no USER")
        if user in ("root", "0"):
            rep.fail("the final stage runs as root")
        if user and not user.isdigit():
            rep.fail(f"USER {user}: use a numeric UID so Kubernetes can verify runAsNonRoot")
        if not final["entrypoint"] or "hookgate" not in final["entrypoint"]:
            rep.fail("the final stage's ENTRYPOINT does not run hookgate")
    if len(stages) < 2:
        rep.fail("expected a multi-stage build (compile, then a minimal runtime)")
    # What the build needs from the context is not excluded.
    needed = ["Cargo.toml", "Cargo.lock", "src"]
    cargo = root / "Cargo.toml"
    if cargo.is_file():
        try:
            manifest = tomllib.loads(cargo.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            manifest = {}
            rep.fail(f"Cargo.toml: {e}")
        # Declared targets must be in the context, or cargo refuses the manifest.
        for section, d in (("bench", "benches"), ("example", "examples"), ("test", "tests"), ("bin", "src/bin")):
            for t in manifest.get(section, []):
                if t.get("path"):
                    needed.append(t["path"])
                elif t.get("name"):
                    needed.append(f"{d}/{t['name']}.rs" if (root / d / f"{t['name']}.rs").exists()
                                  else f"{d}/{t['name']}/main.rs")
        for member in manifest.get("workspace", {}).get("members", []):
            needed.append(member)
    else:
        rep.fail("Cargo.toml not found at the repository root")
    for n in needed:
        if not (root / n).exists() and not any(root.glob(n)):
            rep.fail(f"the build needs {n}, which is not in the repository")
        elif ignored(n, patterns):
            rep.fail(f"the build needs {n}, which .dockerignore excludes")
    # The build context as Docker would send it (tracked files minus .dockerignore): cargo accepts the
    # manifest there and the lock file is current, as `cargo build --locked` in the image needs.
    ctx_note = ""
    cargo_bin = shutil.which("cargo")
    git = shutil.which("git")
    if cargo_bin and git and (root / "Cargo.toml").is_file():
        ls = subprocess.run([git, "-C", str(root), "ls-files", "-z"], capture_output=True, timeout=60)
        if ls.returncode == 0:
            ctx = Path(tempfile.mkdtemp(prefix="hookgate-docker-context."))
            try:
                for rel in filter(None, ls.stdout.decode().split("\0")):
                    if ignored(rel, patterns) or not (root / rel).is_file():
                        continue
                    (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(root / rel, ctx / rel)
                r = subprocess.run([cargo_bin, "metadata", "--format-version", "1", "--locked", "--offline"],
                                   cwd=ctx, capture_output=True, text=True, timeout=300,
                                   env={**os.environ, "CARGO_TARGET_DIR": str(ctx / "target")})
                if r.returncode == 0:
                    ctx_note = "; cargo accepts the build context with --locked"
                elif re.search(r"lock file|can't find|failed to parse manifest|no targets", r.stderr):
                    rep.fail(f"cargo in the build context: {r.stderr.strip()[-1500:]}")
                else:  # most likely the offline registry cache lacks a crate: not the image's problem
                    rep.note(f"cargo metadata in the build context: {r.stderr.strip()[-300:]}")
            finally:
                shutil.rmtree(ctx, ignore_errors=True)
    rep.done(f"{len(stages)} stages, base images pinned, COPY sources present, non-root USER, "
             f".dockerignore keeps what cargo needs{ctx_note}")
