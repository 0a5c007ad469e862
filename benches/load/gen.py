#!/usr/bin/env python3
"""Pre-signs the load harness's requests: one body, COUNT distinct Svix ids, each with a valid signature.

Standard library only. Writes into OUT:
  body.bin   the request body (a JSON document of exactly SIZE bytes)
  reqs.txt   one line per request: "<svix-id> <svix-signature>"
  ts.txt     the svix-timestamp every request carries (now, at generation time)

Svix signs "{id}.{timestamp}.{body}" with HMAC-SHA256 under the base64 key after "whsec_",
and sends "v1,<base64 signature>". bench.lua cycles through reqs.txt so no id repeats.
"""

import argparse
import base64
import hashlib
import hmac
import os
import time


def body_of(size: int) -> bytes:
    head, tail = b'{"type":"invoice.paid","data":{"pad":"', b'"}}'
    fill = size - len(head) - len(tail)
    if fill < 0:
        raise SystemExit(f"size {size} is too small for the JSON envelope")
    pad = bytes(ord("a") + (i % 26) for i in range(fill))
    return head + pad + tail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--secret", required=True, help="whsec_<base64 key>")
    ap.add_argument("--prefix", required=True, help="id prefix, unique per run and point")
    args = ap.parse_args()

    key = base64.b64decode(args.secret.removeprefix("whsec_"))
    body = body_of(args.size)
    ts = str(int(time.time()))
    base = hmac.new(key, digestmod=hashlib.sha256)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "body.bin"), "wb") as f:
        f.write(body)
    with open(os.path.join(args.out, "ts.txt"), "w") as f:
        f.write(ts + "\n")
    with open(os.path.join(args.out, "reqs.txt"), "w") as f:
        lines = []
        for i in range(args.count):
            msg_id = f"{args.prefix}_{i:08d}"
            mac = base.copy()
            mac.update(f"{msg_id}.{ts}.".encode())
            mac.update(body)
            sig = base64.b64encode(mac.digest()).decode()
            lines.append(f"{msg_id} v1,{sig}\n")
        f.writelines(lines)


if __name__ == "__main__":
    main()
