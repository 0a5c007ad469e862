# What the load scripts share (sourced by run.sh and icount.sh, never run on its own):
# installing a missing tool, stopping every process started, free ports, waiting for a
# listener, and the configs of the upstream nginx and of hookgate under test.

# need COMMAND PACKAGE: installs PACKAGE from Debian's packages if COMMAND is missing.
apt_updated=0
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$apt_updated" = 0 ]; then timeout 300 apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$2" >/dev/null
}

# Process bookkeeping: every PID added to PIDS is stopped on exit (TERM, then KILL after 5 s).
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() { # free_ports N: N distinct free loopback ports
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# wait_port PORT NAME PID [SECONDS]: up to SECONDS (default 30) for a listener, failing
# early if PID died.
wait_port() {
  local tenths=$((${4:-30} * 10))
  for _ in $(seq "$tenths"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || { echo "${0##*/}: $2 exited during startup" >&2; return 1; }
    sleep 0.1
  done
  echo "${0##*/}: $2 did not listen on $1 within ${4:-30} s" >&2
  return 1
}

# upstream_config DIR PORT: the upstream, nginx answering 200 to everything, body discarded.
# keepalive_requests is raised so no proxy pays reconnects another does not.
upstream_config() {
  cat >"$1/nginx.conf" <<CONF
worker_processes auto;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/body;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:$2;
    location / { return 200 "ok\n"; }
  }
}
CONF
}

# hg_config PORT ADMIN_PORT FILE: hookgate's config, verifying Svix in front of the upstream
# on $UP_PORT, with the replay store $STORE_TOML.
hg_config() {
  cat >"$3" <<CONF
[listen]
addr = "127.0.0.1:$1"

[admin]
addr = "127.0.0.1:$2"

[upstream]
url = "http://127.0.0.1:$UP_PORT"
timeout = "10s"

[limits]
max_body = "2MiB"
max_inflight = 1024

[replay]
$STORE_TOML
capacity = 100000
ttl = "24h"

[[routes]]
name = "svix"
path = "/webhooks/svix"
provider = "svix"
secrets = ["env:BENCH_SVIX_SECRET"]
# Requests are signed just before each point; 10 minutes covers any point of the run.
tolerance = "10m"
CONF
}
