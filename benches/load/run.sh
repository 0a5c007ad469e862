#!/usr/bin/env bash
# Load harness: hookgate (release build, verifying Svix, replay store on) against a plain nginx
# proxy_pass with upstream keepalive (verifies nothing) and a verifying HAProxy (the same Svix
# check in its own config), all in front of the same nginx upstream, all on loopback.
#
#   benches/load/run.sh            the full table: 1 KiB and 16 KiB bodies x 50 and 256 connections
#   benches/load/run.sh --smoke    one short point (CI): fails on any error, asserts no performance
#
# Options: --duration SECS (per point and target, default 10), --rounds N (default 1),
#          --sizes "1024 16384", --conns "50 256", --threads N (wrk threads, default 2),
#          --store memory|redis, --log LEVEL (hookgate's HOOKGATE_LOG, default info),
#          --workers N (hookgate's HOOKGATE_WORKERS, default: unset = one per core),
#          --balance exact|kernel (hookgate's HOOKGATE_BALANCE, the "hookgate" target only, so
#          that --before with the same binary compares the two; default: unset = exact),
#          --close: a new connection for every request ("Connection: close", as senders that
#          do not keep connections alive deliver), for every target,
#          --id-rate N (signed ids generated per second of run, default 60000).
#          --soak SECS: instead of the table, measure the peak rate (1 KiB, 50 connections, 10 s),
#          then hold 80% of it for SECS seconds (paced by soak.lua), sampling hookgate's RSS
#          every second; fails on any error or if RSS over the last half strays more than 10%
#          from its mean.
#          --floor: also run examples/floor/ (hyper + tokio in hookgate's process shape) as two
#          targets: "floor", forwarding with no verification, store, limits, metrics or log (what
#          hyper itself costs here, the floor under hookgate), and "floor+verify", the same plus
#          only the work a verifying, deduplicating, logging gateway cannot skip (the Svix check,
#          a claim and a settle in one shared LRU of ids, a JSON log line batched to stderr): the
#          measured lower bound of the work hookgate's design requires per request.
#          --guards: --floor and a third, "floor+guards": floor+verify plus hookgate's
#          per-request protections and metrics in their plainest form (hyper's header read
#          timeout, the in-flight cap and body budget as shared semaphores with their gauges,
#          the body and upstream deadlines, shared Prometheus counters and histograms): what
#          they cost on hyper, apart from hookgate's code (examples/floor/guards.rs).
#          --lean: --guards and a fourth, "floor+lean": floor+guards' guards in cheaper forms,
#          beside it in the same alternation: the limits and metrics without shared writes per
#          request (FLOOR_GUARDS's `lean`: each limit one atomic count, the metrics in
#          per-worker copies flushed in batches) and every deadline on a per-worker clock read
#          ten times a second (`coarse`, examples/floor/coarse.rs).
#          --raw: also run the same two without hyper, on the purpose-built HTTP/1.1 path in
#          examples/floor/raw.rs (one buffer per connection, heads parsed in place by httparse, no
#          header map, body channel or second task): "raw" and "raw+verify", what a data path of
#          nginx's shape costs here, with and without the same verifying work; and "rawup", hyper's
#          server in front of that path's upstream exchange (which half the difference is in).
#          --before BIN: also run another hookgate binary (e.g. the previous commit's) as a
#          fourth target, "before", in the same alternation: before/after in one run.
#          --queue: instead of the table, durable delivery (BENCHMARKS.md "Durable delivery:
#          acceptance and drain"): a hookgate whose --queue-routes routes (default 16) are
#          delivery = "queue" on the disk store takes --duration seconds of signed requests
#          (1 KiB, --conns' first count) with its app down: req/s to 202, CPU per request, then
#          a 3 s run under strace counting fdatasync/fsync per request (group commit); then the
#          app comes up and the backlog drains at --queue-concurrency (default 16): deliveries
#          per second and CPU per delivery. --smoke ends with a 2 s version of it.
#          With --store redis, the queue is store = "redis" too (Redis Streams on the same
#          redis-server, which then runs with appendonly yes, appendfsync everysec): no fsync of
#          hookgate's own to count, durability is Redis's.
# HOOKGATE_BIN=path runs that hookgate binary instead of building target/release/hookgate.
# Every request carries a distinct, validly signed id (pre-signed by gen.py, cycled by bench.lua),
# so the replay store never short-circuits the work. Raw results and results.csv go to
# benches/load/out/ (git-ignored); plot.sh turns results.csv into plot.png.
# Every process started here is stopped on exit, and every step is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=benches/load
OUT=$HERE/out
# shellcheck source=benches/load/common.sh
. "$HERE/common.sh"

SMOKE=0 DURATION=10 ROUNDS=1 SIZES="1024 16384" CONNS="50 256" THREADS=2
STORE=memory LOG=info WORKERS="" BALANCE="" ID_RATE=60000 SOAK=0 BEFORE="" FLOOR=0 GUARDS=0 LEAN=0 RAW=0
QUEUE=0 QROUTES=16 QCONC=16
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --duration) DURATION=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --store) STORE=$2; shift ;;
    --log) LOG=$2; shift ;;
    --workers) WORKERS=$2; shift ;;
    --balance) BALANCE=$2; shift ;;
    --close) export BENCH_CLOSE=1 ;;
    --id-rate) ID_RATE=$2; shift ;;
    --soak) SOAK=$2; shift ;;
    --before) BEFORE=$2; shift ;;
    --floor) FLOOR=1 ;;
    --guards) FLOOR=1; GUARDS=1 ;;
    --lean) FLOOR=1; GUARDS=1; LEAN=1 ;;
    --raw) RAW=1 ;;
    --queue) QUEUE=1 ;;
    --queue-routes) QROUTES=$2; shift ;;
    --queue-concurrency) QCONC=$2; shift ;;
    -h|--help) sed -n '2,58p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$SMOKE" = 1 ]; then
  DURATION=3 ROUNDS=1 SIZES=1024 CONNS=16
fi
case "$STORE" in memory|redis) ;; *) echo "run.sh: --store must be memory or redis" >&2; exit 2 ;; esac

# ---- what the harness needs, from Debian's packages when missing ----
need nginx nginx-light
need wrk wrk
need haproxy haproxy
need python3 python3
if [ "$QUEUE" = 1 ] || [ "$SMOKE" = 1 ]; then need strace strace; fi
[ "$STORE" = redis ] && need redis-server redis-server

if [ -n "${HOOKGATE_BIN:-}" ]; then
  # A binary built elsewhere (another allocator, another commit), compared in the same run.
  HOOKGATE=$(cd "$(dirname "$HOOKGATE_BIN")" && pwd)/$(basename "$HOOKGATE_BIN")
else
  echo "== building hookgate (release)"
  timeout 1800 cargo build --release --locked --bin hookgate
  HOOKGATE=$PWD/target/release/hookgate
fi
if [ "$FLOOR" = 1 ] || [ "$RAW" = 1 ]; then
  timeout 1800 cargo build --release --locked --example floor
fi
if [ -n "$BEFORE" ]; then
  BEFORE=$(cd "$(dirname "$BEFORE")" && pwd)/$(basename "$BEFORE")
fi

rm -rf "$OUT"
mkdir -p "$OUT/raw" "$OUT/nginx-up" "$OUT/nginx-proxy" "$OUT/haproxy" "$OUT/nginx-app" "$OUT/queue"
OUT=$(cd "$OUT" && pwd)

read -r UP_PORT NGX_PORT HG_PORT ADMIN_PORT REDIS_PORT HAP_PORT BF_PORT BF_ADMIN_PORT FL_PORT \
  QG_PORT QG_ADMIN_PORT APP_PORT FV_PORT RW_PORT RV_PORT \
  RU_PORT FG_PORT FL2_PORT <<<"$(free_ports 18)"

# ---- the upstream: nginx answering 200 to everything (common.sh) ----
upstream_config "$OUT/nginx-up" "$UP_PORT"

# ---- the baseline: nginx proxy_pass with upstream keepalive, verifying nothing ----
# The body buffer holds a whole 16 KiB body in memory, as hookgate does; nginx's default
# (16 KiB) would spill larger bodies to a temp file. The access log stays on: it is nginx's
# per-request line, as hookgate's is its JSON log line.
cat >"$OUT/nginx-proxy/nginx.conf" <<EOF
worker_processes auto;
pid $OUT/nginx-proxy/nginx.pid;
error_log $OUT/nginx-proxy/error.log warn;
events { worker_connections 4096; }
http {
  access_log $OUT/nginx-proxy/access.log;
  client_body_temp_path $OUT/nginx-proxy/body;
  proxy_temp_path $OUT/nginx-proxy/proxy;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_max_body_size 2m;
  client_body_buffer_size 1m;
  upstream app {
    server 127.0.0.1:$UP_PORT;
    keepalive 512;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

# ---- hookgate: Svix with the replay store on; the store block is the only part that varies ----
SECRET="whsec_$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
export BENCH_SVIX_SECRET=$SECRET
case "$STORE" in
  memory)
    STORE_TOML='store = "memory"'
    ;;
  redis)
    # A queue on Redis is measured as it should run: AOF, fsync'd every second.
    mkdir -p "$OUT/redis"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --dir "$OUT/redis" \
      --appendonly "$([ "$QUEUE" = 1 ] && echo yes || echo no)" --appendfsync everysec \
      >"$OUT/redis.log" 2>&1 &
    PIDS+=($!)
    wait_port "$REDIS_PORT" redis-server "$!"
    STORE_TOML="store = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS_PORT\""
    ;;
esac
# hookgate's config (common.sh's hg_config); the "before" binary gets the same one.
hg_config "$HG_PORT" "$ADMIN_PORT" "$OUT/hookgate.toml"
[ -n "$BEFORE" ] && hg_config "$BF_PORT" "$BF_ADMIN_PORT" "$OUT/before.toml"

# ---- the verifying HAProxy: the same Svix check, written in HAProxy's own configuration ----
# From HAProxy 2.6's configuration manual: "option http-buffer-request" waits for the whole
# body; req.body is the signed payload; the "hmac" converter takes the base64 key after
# "whsec_"; "secure_memcmp" compares in constant time; "date" minus svix-timestamp, plus 600,
# must lie in 0..1200 (10 minutes either way, as hookgate's tolerance here); a stick table keyed by svix-id answers a
# repeat, and the id is marked seen only once the app answered 2xx (sc-inc-gpc0 on the
# response), as hookgate marks it delivered. tune.bufsize holds a 16 KiB body and its headers
# (the body must fit in one buffer to be inspected). Its per-request log line goes to a file,
# as nginx's and hookgate's do.
HAP_KEY=${SECRET#whsec_}
cat >"$OUT/haproxy/haproxy.cfg" <<EOF
global
  nbthread $(nproc)
  maxconn 8000
  tune.bufsize 65536
  log stdout format raw local0 info

defaults
  mode http
  log global
  option httplog
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-request 10s
  timeout http-keep-alive 120s

frontend hooks
  bind 127.0.0.1:$HAP_PORT
  option http-buffer-request
  http-request deny deny_status 405 unless METH_POST
  http-request set-var(txn.id) req.hdr(svix-id)
  http-request set-var(txn.ts) req.hdr(svix-timestamp)
  http-request set-var(txn.sig) "req.fhdr(svix-signature),word(2,',')"
  http-request set-var(txn.body) req.body
  http-request set-var(txn.mac) var(txn.id),concat(.,txn.ts,.),concat(,txn.body,),hmac(sha256,$HAP_KEY),base64
  http-request deny deny_status 401 unless { var(txn.sig),secure_memcmp(txn.mac) -m bool }
  http-request set-var(txn.skew) date,sub(txn.ts),add(600)
  http-request deny deny_status 401 unless { var(txn.skew) -m int 0:1200 }
  http-request track-sc0 var(txn.id) table seen_ids
  http-request return status 200 content-type application/json string "{\"status\":\"duplicate\"}" if { sc_get_gpc0(0) gt 0 }
  http-response sc-inc-gpc0(0) if { status 200:299 }
  default_backend app

backend app
  http-reuse always
  server app 127.0.0.1:$UP_PORT maxconn 512

backend seen_ids
  stick-table type string len 64 size 200k expire 24h store gpc0
EOF

nginx -p "$OUT/nginx-up" -c "$OUT/nginx-up/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_port "$UP_PORT" "upstream nginx" "$!"
nginx -p "$OUT/nginx-proxy" -c "$OUT/nginx-proxy/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
NGX_PID=$!
wait_port "$NGX_PORT" "baseline nginx" "$NGX_PID"
haproxy -db -f "$OUT/haproxy/haproxy.cfg" >"$OUT/haproxy/access.log" 2>"$OUT/haproxy/error.log" &
HAP_PID=$!
PIDS+=("$HAP_PID")
wait_port "$HAP_PORT" "verifying haproxy" "$HAP_PID"
env HOOKGATE_LOG="$LOG" ${WORKERS:+HOOKGATE_WORKERS="$WORKERS"} ${BALANCE:+HOOKGATE_BALANCE="$BALANCE"} \
  "$HOOKGATE" run --config "$OUT/hookgate.toml" --log-format json 2>"$OUT/hookgate.log" &
HG_PID=$!
PIDS+=("$HG_PID")
wait_port "$HG_PORT" hookgate "$HG_PID"
wait_port "$ADMIN_PORT" "hookgate admin" "$HG_PID"
BF_PID=""
if [ -n "$BEFORE" ]; then
  env HOOKGATE_LOG="$LOG" ${WORKERS:+HOOKGATE_WORKERS="$WORKERS"} \
    "$BEFORE" run --config "$OUT/before.toml" --log-format json 2>"$OUT/before.log" &
  BF_PID=$!
  PIDS+=("$BF_PID")
  wait_port "$BF_PORT" "hookgate (before)" "$BF_PID"
  wait_port "$BF_ADMIN_PORT" "hookgate (before) admin" "$BF_PID"
fi

# start_floor VAR PORT NAME [MODE]: examples/floor as target NAME on PORT (MODE: its argument;
# the verifying ones use the BENCH_SVIX_SECRET exported above, and their stderr is their access
# log); its PID goes to VAR.
start_floor() {
  target/release/examples/floor "127.0.0.1:$2" "127.0.0.1:$UP_PORT" "${WORKERS:-$(nproc)}" \
    ${4:+"$4"} 2>"$OUT/$3.log" &
  printf -v "$1" '%s' "$!"
  PIDS+=("$!")
  wait_port "$2" "$3" "$!"
}
FV_PID="" FG_PID="" FL2_PID="" RV_PID=""
if [ "$FLOOR" = 1 ]; then
  start_floor FL_PID "$FL_PORT" floor
  start_floor FV_PID "$FV_PORT" floor+verify verify
fi
if [ "$GUARDS" = 1 ]; then
  # floor+verify plus hookgate's per-request limits, timers and metrics (FLOOR_GUARDS).
  start_floor FG_PID "$FG_PORT" floor+guards guards
fi
if [ "$LEAN" = 1 ]; then
  FLOOR_GUARDS="${FLOOR_GUARDS:-timer,limits,deadlines,metrics},lean,coarse" \
    start_floor FL2_PID "$FL2_PORT" floor+lean guards
fi
if [ "$RAW" = 1 ]; then
  start_floor RW_PID "$RW_PORT" raw raw
  start_floor RV_PID "$RV_PORT" raw+verify raw+verify
  start_floor RU_PID "$RU_PORT" rawup rawup
fi

# Each target: its URL, the process whose CPU is counted, and (hookgate only) its admin port.
declare -A URL PID ADMIN
URL[hookgate]="http://127.0.0.1:$HG_PORT/webhooks/svix"; PID[hookgate]=$HG_PID; ADMIN[hookgate]=$ADMIN_PORT
URL[nginx]="http://127.0.0.1:$NGX_PORT/webhooks/svix"; PID[nginx]=$NGX_PID
URL[haproxy]="http://127.0.0.1:$HAP_PORT/webhooks/svix"; PID[haproxy]=$HAP_PID
TARGETS="hookgate nginx haproxy"
if [ -n "$BEFORE" ]; then
  URL[before]="http://127.0.0.1:$BF_PORT/webhooks/svix"; PID[before]=$BF_PID; ADMIN[before]=$BF_ADMIN_PORT
  TARGETS="hookgate before nginx haproxy"
fi
if [ "$FLOOR" = 1 ]; then
  URL[floor]="http://127.0.0.1:$FL_PORT/webhooks/svix"; PID[floor]=$FL_PID
  URL[floor+verify]="http://127.0.0.1:$FV_PORT/webhooks/svix"; PID[floor+verify]=$FV_PID
  TARGETS="$TARGETS floor floor+verify"
fi
if [ "$GUARDS" = 1 ]; then
  URL[floor+guards]="http://127.0.0.1:$FG_PORT/webhooks/svix"; PID[floor+guards]=$FG_PID
  TARGETS="$TARGETS floor+guards"
fi
if [ "$LEAN" = 1 ]; then
  URL[floor+lean]="http://127.0.0.1:$FL2_PORT/webhooks/svix"; PID[floor+lean]=$FL2_PID
  TARGETS="$TARGETS floor+lean"
fi
if [ "$RAW" = 1 ]; then
  URL[raw]="http://127.0.0.1:$RW_PORT/webhooks/svix"; PID[raw]=$RW_PID
  URL[raw+verify]="http://127.0.0.1:$RV_PORT/webhooks/svix"; PID[raw+verify]=$RV_PID
  URL[rawup]="http://127.0.0.1:$RU_PORT/webhooks/svix"; PID[rawup]=$RU_PID
  TARGETS="$TARGETS raw raw+verify rawup"
fi

# hookgate's outcome counters, so each point checks what it did, not only what wrk saw.
outcomes() { # outcomes [ADMIN_PORT]: hookgate's outcome counters (default: the hookgate under test)
  python3 - "${1:-$ADMIN_PORT}" <<'EOF'
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
counts = {"forwarded": 0, "rejected": 0, "duplicate": 0, "upstream_error": 0}
for m in re.finditer(r'^hookgate_requests_total\{([^}]*)\} (\S+)$', text, re.M):
    o = re.search(r'outcome="([^"]+)"', m.group(1))
    if o and o.group(1) in counts:
        counts[o.group(1)] += int(float(m.group(2)))
print(" ".join(str(counts[k]) for k in ("forwarded", "rejected", "duplicate", "upstream_error")))
EOF
}

# A genuine request is forwarded, a forged one refused and a repeat answered as a duplicate:
# every verifying target (floor+verify and raw+verify too; not nginx or the bare floors) really
# verifies here.
for port in "$HG_PORT" "$HAP_PORT" ${BEFORE:+"$BF_PORT"} ${FV_PID:+"$FV_PORT"} ${FG_PID:+"$FG_PORT"} ${FL2_PID:+"$FL2_PORT"} ${RV_PID:+"$RV_PORT"}; do
python3 - "$port" "$SECRET" <<'EOF'
import base64, hashlib, hmac, sys, time, urllib.error, urllib.request
port, secret = sys.argv[1], sys.argv[2]
key = base64.b64decode(secret.removeprefix("whsec_"))
body, ts = b'{"type":"check"}', str(int(time.time()))
def post(msg_id, sig):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/svix", data=body, method="POST",
        headers={"svix-id": msg_id, "svix-timestamp": ts, "svix-signature": f"v1,{sig}"})
    try:
        r = urllib.request.urlopen(req, timeout=10)
        return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
good = base64.b64encode(hmac.new(key, f"check_1.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
assert post("check_1", good) == (200, b"ok\n"), f"{port}: a genuine request was not forwarded"
assert post("check_2", good)[0] == 401, f"{port}: a forged request was not refused"
assert b"duplicate" in post("check_1", good)[1], f"{port}: a repeat was not answered as a duplicate"
old = str(int(time.time()) - 3600)
stale = base64.b64encode(hmac.new(key, f"check_3.{old}.".encode() + body, hashlib.sha256).digest()).decode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/svix", data=body, method="POST",
    headers={"svix-id": "check_3", "svix-timestamp": old, "svix-signature": f"v1,{stale}"})
try:
    code = urllib.request.urlopen(req, timeout=10).status
except urllib.error.HTTPError as e:
    code = e.code
assert code == 401, f"{port}: a stale (1 hour old) request was not refused"
print(f"== sanity ({port}): genuine forwarded (200), forged and stale refused (401), repeat answered duplicate")
EOF
done
BASE_COUNTS=$(outcomes)

RUN_ID=$(date +%s)
CSV=$OUT/results.csv
echo "size,conns,round,target,rps,p50_ms,p99_ms,errors,rss_peak_mib,cpu_us_per_req,user_us_per_req,sys_us_per_req,switches_per_req,faults_per_req" >"$CSV"
FAIL=0

# proc_counts PID: "USER SYS SWITCHES FAULTS" of this process and its children (nginx's
# workers): user and system CPU ticks apart, the context switches of all their threads,
# voluntary (a thread that parked: a sleep and a wake-up, kernel work of their own) and not,
# and minor page faults (memory the allocator gave back and touched again).
proc_counts() {
  local user=0 sys=0 cs=0 faults=0 pid u s f c
  for pid in "$1" $(pgrep -P "$1" || true); do
    read -r u s f < <(awk '{print $14, $15, $10}' "/proc/$pid/stat" 2>/dev/null || echo 0 0 0)
    c=$(cat /proc/"$pid"/task/*/status 2>/dev/null |
      awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ {n += $2} END {print n + 0}')
    user=$((user + u)); sys=$((sys + s)); cs=$((cs + c)); faults=$((faults + f))
  done
  echo "$user $sys $cs $faults"
}

# cpu_ticks PID: user+system CPU ticks of the process and its children; on a noisy shared
# box, CPU per request is steadier than req/s.
cpu_ticks() {
  local user sys
  read -r user sys _ < <(proc_counts "$1")
  echo $((user + sys))
}

# drive TARGET URL SIZE CONNS ROUND DATA: one wrk run; appends a CSV row.
drive() {
  local target=$1 url=$2 size=$3 conns=$4 round=$5 data=$6
  local raw="$OUT/raw/${size}B-${conns}c-r${round}-${target}.txt"
  local before="" after="" rss="" pid=${PID[$target]} admin=${ADMIN[$target]:-} cpu0 cpu1
  cpu0=$(proc_counts "$pid")
  # Reset the peak-RSS mark so VmHWM is this point's peak, not the run's so far (every
  # target: the floors and HAProxy also serve every point of the run).
  echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
  [ -n "$admin" ] && before=$(outcomes "$admin")
  timeout $((DURATION + 60)) wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout 5s \
    -s "$HERE/bench.lua" "$url" -- "$data" "$THREADS" >"$raw" 2>&1 || {
    echo "run.sh: wrk failed against $target (see $raw)" >&2; FAIL=1; }
  cpu1=$(proc_counts "$pid")
  rss=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  [ -n "$admin" ] && after=$(outcomes "$admin")
  python3 - "$raw" "$target" "$size" "$conns" "$round" "$rss" "$CSV" "${before:-}" "${after:-}" \
    "$cpu0" "$cpu1" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
raw, target, size, conns, rnd, rss, csv, before, after, c0, c1, hz = sys.argv[1:13]
user, sys_ticks, switches, faults = (b - a for a, b in zip(map(int, c0.split()), map(int, c1.split())))
line = next((l for l in open(raw) if l.startswith("RESULT ")), None)
if line is None:
    print(f"run.sh: no result from wrk against {target}", file=sys.stderr)
    sys.exit(1)
r = json.loads(line[len("RESULT "):])
errors = (r["status_errors"] + r["connect_errors"] + r["read_errors"] + r["write_errors"]
          + r["timeouts"])
notes = []
if r["ids_wrapped"] and target not in ("nginx", "floor", "raw", "rawup"):
    # hookgate, HAProxy, floor+verify and raw+verify remember ids; nginx and the bare floors answer a
    # repeated one like any other.
    notes.append(f"ids ran out and repeated ({r['ids_wrapped']} wraps): raise --id-rate")
    errors += r["ids_wrapped"]
if before and after:
    b = [int(x) for x in before.split()]
    a = [int(x) for x in after.split()]
    fwd, rej, dup, uperr = (a[i] - b[i] for i in range(4))
    # A duplicate is a 200 wrk cannot tell apart: count it as an error here.
    errors += dup
    if rej or dup or uperr:
        notes.append(f"hookgate outcomes: forwarded={fwd} rejected={rej} duplicate={dup} "
                     f"upstream_error={uperr}")
    if fwd < r["requests"]:
        notes.append(f"hookgate forwarded {fwd} < {r['requests']} responses wrk counted")
        errors += r["requests"] - fwd
rps = r["requests"] / (r["duration_us"] / 1e6)
n = max(r["requests"], 1)
us = lambda ticks: ticks / int(hz) * 1e6 / n
with open(csv, "a") as f:
    f.write(f"{size},{conns},{rnd},{target},{rps:.0f},{r['p50_us'] / 1000:.3f},"
            f"{r['p99_us'] / 1000:.3f},{errors},{rss},{us(user + sys_ticks):.1f},"
            f"{us(user):.1f},{us(sys_ticks):.1f},{switches / n:.3f},{faults / n:.3f}\n")
for n in notes:
    print(f"   {target}: {n}", file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
}

# ---- durable delivery: queued acceptance (req/s to 202), fsyncs per request, backlog drain ----
queue_total() { # queue_total ADMIN_PORT METRIC [LABEL_MATCH]: the sum of its samples
  python3 - "$@" <<'EOF'
import re, sys, urllib.request
port, name, label = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else "")
t = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
print(int(sum(float(v) for v in re.findall(rf'^{name}\{{[^}}]*{re.escape(label)}[^}}]*\}} (\S+)$', t, re.M))))
EOF
}
# queue_bench SECONDS CONNS: its own hookgate (QROUTES queue routes on a disk store under $OUT/queue),
# whose app (an nginx like the upstream, on APP_PORT) is down while requests are accepted, so the
# figure is the store's alone (the delivery loop only meets refused connections meanwhile); then the
# app comes up and the backlog drains. Appends to $OUT/queue.csv; returns non-zero on any error.
queue_bench() {
  local secs=$1 conns=$2 qfail=0 QSTORE_TOML QQUEUE_TOML
  case "$STORE" in
    memory)
      QSTORE_TOML='store = "memory"
capacity = 1000000'
      QQUEUE_TOML="store = \"disk\"
path = \"$OUT/queue/store\"" ;;
    redis)
      # The queue shares the replay store's Redis (its redis_url).
      QSTORE_TOML=$STORE_TOML
      QQUEUE_TOML='store = "redis"' ;;
  esac
  local cfg=$OUT/queue/hookgate.toml data=$OUT/data/queue raw=$OUT/raw/queue-accept.txt
  {
    cat <<EOF
[listen]
addr = "127.0.0.1:$QG_PORT"

[admin]
addr = "127.0.0.1:$QG_ADMIN_PORT"

[upstream]
url = "http://127.0.0.1:$APP_PORT"
timeout = "10s"

[limits]
max_body = "2MiB"
max_inflight = 1024

[replay]
$QSTORE_TOML
ttl = "24h"

[queue]
$QQUEUE_TOML
max_bytes = "8GiB"
concurrency = $QCONC
max_attempts = 1000000
max_age = "24h"
# Every failed attempt is a write transaction (its next attempt recorded): 5 s apart, the app-down
# retries of the 16 heads stay a few dozen commits beside the requests' own (and are counted out).
retry_initial = "5s"
retry_max = "5s"
EOF
    for r in $(seq 0 $((QROUTES - 1))); do
      printf '\n[[routes]]\nname = "q%d"\npath = "/webhooks/q%d"\nprovider = "svix"\nsecrets = ["env:BENCH_SVIX_SECRET"]\ntolerance = "10m"\ndelivery = "queue"\n' "$r" "$r"
    done
  } >"$cfg"
  sed "s/127.0.0.1:$UP_PORT/127.0.0.1:$APP_PORT/; s#$OUT/nginx-up#$OUT/nginx-app#g" \
    "$OUT/nginx-up/nginx.conf" >"$OUT/nginx-app/nginx.conf"
  env HOOKGATE_LOG="$LOG" ${WORKERS:+HOOKGATE_WORKERS="$WORKERS"} \
    "$HOOKGATE" run --config "$cfg" --log-format json 2>"$OUT/queue/hookgate.log" &
  local qg=$!
  PIDS+=("$qg")
  wait_port "$QG_PORT" "hookgate (queue)" "$qg" || return 1
  python3 "$HERE/gen.py" --out "$data" --size 1024 --count $((ID_RATE * secs)) \
    --secret "$SECRET" --prefix "q$RUN_ID"
  local cpu0 cpu1 cpu2 cpu3
  cpu0=$(cpu_ticks "$qg")
  BENCH_ROUTES=$QROUTES timeout $((secs + 60)) wrk -t"$THREADS" -c"$conns" -d"${secs}s" --timeout 5s \
    -s "$HERE/bench.lua" "http://127.0.0.1:$QG_PORT/" -- "$data" "$THREADS" >"$raw" 2>&1 || qfail=1
  cpu1=$(cpu_ticks "$qg")
  # The same load for 3 s under strace, counting the sync calls of every thread (the writer's
  # commits). ptrace slows every syscall, so this run's rate is not the figure, and its ratio of
  # syncs to requests is an upper bound (commits grow when requests arrive faster). Ids of its own.
  local sraw=$OUT/raw/queue-strace.txt failed0 failed1
  python3 "$HERE/gen.py" --out "$data-s" --size 1024 --count $((ID_RATE * 3)) \
    --secret "$SECRET" --prefix "qs$RUN_ID"
  failed0=$(queue_total "$QG_ADMIN_PORT" hookgate_queue_attempts_total 'result="failed"')
  timeout 120 strace -f -c -e trace=fsync,fdatasync,sync_file_range,msync -o "$OUT/queue/strace.txt" \
    -p "$qg" 2>/dev/null &
  local st=$!
  sleep 1
  BENCH_ROUTES=$QROUTES timeout 70 wrk -t"$THREADS" -c"$conns" -d3s --timeout 5s \
    -s "$HERE/bench.lua" "http://127.0.0.1:$QG_PORT/" -- "$data-s" "$THREADS" >"$sraw" 2>&1 || qfail=1
  kill -INT "$st" 2>/dev/null || true
  wait "$st" 2>/dev/null || true
  failed1=$(queue_total "$QG_ADMIN_PORT" hookgate_queue_attempts_total 'result="failed"')
  rm -rf "$data" "$data-s"
  local depth_before
  depth_before=$(queue_total "$QG_ADMIN_PORT" hookgate_queue_depth)
  # The app comes up: time the drain from the first delivery (the heads first wait out their
  # backoff) to depth 0 on /metrics, polled every 50 ms, 600 s at most.
  cpu2=$(cpu_ticks "$qg")
  local t0 drain
  t0=$(date +%s.%N)
  nginx -p "$OUT/nginx-app" -c "$OUT/nginx-app/nginx.conf" -g 'daemon off;' &
  PIDS+=($!)
  drain=$(python3 - "$QG_ADMIN_PORT" "$t0" <<'EOF'
import re, sys, time, urllib.request
port, t0 = sys.argv[1], float(sys.argv[2])
first = None
while time.time() - t0 < 600:
    t = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    depth = sum(float(v) for v in re.findall(r'^hookgate_queue_depth\{[^}]*\} (\S+)$', t, re.M))
    done = sum(float(v) for v in re.findall(r'^hookgate_queue_attempts_total\{[^}]*result="delivered"[^}]*\} (\S+)$', t, re.M))
    if first is None and done > 0:
        first = time.time()
    if depth == 0:
        break
    time.sleep(0.05)
end = time.time()
print(f"{(first or end) - t0:.2f} {end - (first or end):.3f} {int(depth)}")
EOF
)
  cpu3=$(cpu_ticks "$qg")
  python3 - "$raw" "$sraw" "$OUT/queue/strace.txt" "$QG_ADMIN_PORT" "$depth_before" "$drain" \
    "$((cpu1 - cpu0))" "$((cpu3 - cpu2))" "$(getconf CLK_TCK)" "$OUT/queue.csv" "$conns" "$QROUTES" \
    "$QCONC" "$([ "$STORE" = redis ] && echo "redis (AOF everysec)" || df -T "$OUT/queue" | awk 'NR == 2 {print "disk store on " $2}')" \
    "$((failed1 - failed0))" <<'EOF' || qfail=1
import json, re, sys, urllib.request
(raw, sraw, strace, admin, depth_before, drain, acc_ticks, drain_ticks, hz, csv, conns, routes,
 conc, fs, retries) = sys.argv[1:16]
def result(path):
    line = next((l for l in open(path) if l.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"run.sh: no result from wrk in {path}")
    return json.loads(line[len("RESULT "):])
r, s = result(raw), result(sraw)
errors = sum(r[k] + s[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors",
                                   "timeouts", "ids_wrapped"))
# strace -c: "% time  seconds  usecs/call  calls  [errors]  syscall". No summary (strace may not
# attach where ptrace is not allowed): the syncs are not measured, which is not an error.
syncs = None
try:
    text = open(strace).read()
except OSError:
    text = ""
if "total" in text:
    syncs = 0
    for line in text.splitlines():
        f = line.split()
        if f and f[-1] in ("fsync", "fdatasync", "sync_file_range", "msync") and len(f) >= 5:
            syncs += int(f[3])
t = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10).read().decode()
def total(name, label=""):
    return sum(float(v) for v in re.findall(rf'^{name}\{{[^}}]*{label}[^}}]*\}} (\S+)$', t, re.M))
queued = total("hookgate_requests_total", 'outcome="queued"')
delivered = total("hookgate_queue_attempts_total", 'result="delivered"')
dead = total("hookgate_queue_dead_letters_total")
wait, secs, left = drain.split()
wait, secs, left, backlog, retries = float(wait), float(secs), int(left), int(depth_before), int(retries)
# Each failed attempt in the strace window recorded its next attempt: one commit, one sync.
acc_syncs = None if syncs is None else max(syncs - retries, 0)
rps = r["requests"] / (r["duration_us"] / 1e6)
acc_cpu = int(acc_ticks) / int(hz) * 1e6 / max(r["requests"], 1)
drain_rate = backlog / secs if secs else 0.0
drain_cpu = int(drain_ticks) / int(hz) * 1e6 / max(backlog, 1)
sent = r["requests"] + s["requests"]
# wrk does not count the answers in flight when it stops, and hookgate stores (and delivers) a
# request whose client hung up before its 202 without counting it as queued: the backlog may be
# a few more than either, never fewer.
if left or dead or delivered != backlog or backlog < sent:
    print(f"run.sh: drain incomplete: {left} left, {delivered:.0f} delivered of a backlog of {backlog} "
          f"({sent} answered 202 to wrk, {queued:.0f} counted queued), {dead:.0f} dead letters",
          file=sys.stderr)
    errors += 1
print(f"== durable delivery ({routes} queue routes, {fs}, {conns} connections, "
      f"concurrency {conc})")
print(f"   acceptance (app down): {rps:.0f} req/s to 202, p50 {r['p50_us'] / 1000:.2f} ms, "
      f"p99 {r['p99_us'] / 1000:.2f} ms, {acc_cpu:.1f} CPU us/req, {r['requests']} requests")
if fs.startswith("redis"):
    print(f"   under strace: {s['requests']} requests; no fsync of hookgate's own: Redis's AOF holds them")
    syncs = acc_syncs = None
elif syncs is None:
    print(f"   under strace: {s['requests']} requests; fsyncs not measured (strace could not attach)")
else:
    print(f"   under strace: {s['requests']} requests, {syncs} fsync/fdatasync calls ({retries} of them "
          f"failed attempts' records): {acc_syncs / max(s['requests'], 1):.3f} per request "
          f"({s['requests'] / max(acc_syncs, 1):.1f} requests per commit)")
print(f"   drain: a backlog of {backlog} ({sent} answered 202 to wrk, {queued:.0f} counted queued), "
      f"first delivery {wait:.2f} s after the app came up, then all in {secs:.2f} s: "
      f"{drain_rate:.0f} deliveries/s, {drain_cpu:.1f} CPU us/delivery; errors {errors}")
per_req = "" if acc_syncs is None else f"{acc_syncs / max(s['requests'], 1):.4f}"
with open(csv, "a+") as f:
    if f.tell() == 0:
        f.write("conns,routes,concurrency,accept_rps,accept_p50_ms,accept_p99_ms,accept_cpu_us,"
                "strace_requests,syncs,syncs_per_req,backlog,drain_s,drain_rps,drain_cpu_us,errors\n")
    f.write(f"{conns},{routes},{conc},{rps:.0f},{r['p50_us'] / 1000:.3f},{r['p99_us'] / 1000:.3f},"
            f"{acc_cpu:.1f},{s['requests']},{'' if acc_syncs is None else acc_syncs},{per_req},{backlog},"
            f"{secs:.2f},{drain_rate:.0f},{drain_cpu:.1f},{errors}\n")
sys.exit(1 if errors else 0)
EOF
  kill -TERM "$qg" 2>/dev/null || true
  return "$qfail"
}

if [ "$QUEUE" = 1 ]; then
  read -ra qconns <<<"$CONNS"
  # The same load on the forwarding route first (the main hookgate, app up): the yardstick.
  data="$OUT/data/forward"
  python3 "$HERE/gen.py" --out "$data" --size 1024 --count $((ID_RATE * DURATION)) \
    --secret "$SECRET" --prefix "f$RUN_ID"
  drive hookgate "${URL[hookgate]}" 1024 "${qconns[0]}" 1 "$data" || FAIL=1
  rm -rf "$data"
  awk -F, 'NR == 2 {printf "== forward (same load, app up): %d req/s to 200, p50 %s ms, p99 %s ms, %s CPU us/req, errors %s\n", $5, $6, $7, $10, $8}' "$CSV"
  queue_bench "$DURATION" "${qconns[0]}" || FAIL=1
  [ "$FAIL" = 0 ] || { echo "run.sh: queue measurement FAILED" >&2; exit 1; }
  echo "raw output: $OUT"
  exit 0
fi

# ---- warm-up: pools, page cache and CPU frequency settle before anything is recorded ----
if [ "$SMOKE" = 0 ]; then
  python3 "$HERE/gen.py" --out "$OUT/data/warm" --size 1024 --count $((ID_RATE * 2)) \
    --secret "$SECRET" --prefix "w$RUN_ID"
  for target in $TARGETS; do
    url=${URL[$target]}
    timeout 60 wrk -t"$THREADS" -c50 -d2s -s "$HERE/bench.lua" "$url" -- "$OUT/data/warm" "$THREADS" \
      >/dev/null 2>&1 || true
  done
  # Warm-up ids stay resident; only measured points are checked, and their ids are fresh.
  BASE_COUNTS=$(outcomes)
fi

# ---- the soak: 80% of the peak rate, held; RSS sampled every second ----
if [ "$SOAK" -gt 0 ]; then
  SEG=10 CONNS_SOAK=50
  data="$OUT/data/peak"
  python3 "$HERE/gen.py" --out "$data" --size 1024 --count $((ID_RATE * SEG)) \
    --secret "$SECRET" --prefix "p$RUN_ID"
  DURATION=$SEG drive hookgate "http://127.0.0.1:$HG_PORT/webhooks/svix" 1024 "$CONNS_SOAK" 0 "$data" || FAIL=1
  rm -rf "$data"
  read -r PEAK P50 <<<"$(awk -F, 'NR == 2 {print int($5), $6}' "$CSV")"
  RATE=$((PEAK * 8 / 10))
  # Each connection sends one request per (pause + latency); wrk's pause is whole
  # milliseconds, so the pause is fixed and the connection count is solved for.
  DELAY=5
  CONNS_SOAK=$(python3 -c "print(min(1000, max(10, round($RATE * ($DELAY + $P50) / 1000))))")
  # Latency grows with the connections: a 5 s calibration at that count, then the
  # count scaled by how far its rate fell short of the target.
  data="$OUT/data/calibrate"
  python3 "$HERE/gen.py" --out "$data" --size 1024 --count $((RATE * 8)) \
    --secret "$SECRET" --prefix "c$RUN_ID"
  SOAK_DELAY_MS=$DELAY timeout 70 wrk -t"$THREADS" -c"$CONNS_SOAK" -d5s --timeout 5s \
    -s "$HERE/soak.lua" "http://127.0.0.1:$HG_PORT/webhooks/svix" -- "$data" "$THREADS" \
    >"$OUT/raw/soak-calibrate.txt" 2>&1 || FAIL=1
  rm -rf "$data"
  CONNS_SOAK=$(python3 - "$OUT/raw/soak-calibrate.txt" "$CONNS_SOAK" "$RATE" <<'EOF'
import json, sys
line = next(l for l in open(sys.argv[1]) if l.startswith("RESULT "))
r = json.loads(line[len("RESULT "):])
got = r["requests"] / (r["duration_us"] / 1e6)
print(min(1000, max(10, round(int(sys.argv[2]) * int(sys.argv[3]) / max(got, 1)))))
EOF
)
  echo "== soak: peak $PEAK req/s (p50 $P50 ms); holding ~$RATE req/s for $SOAK s ($CONNS_SOAK connections, $DELAY ms pause each)"
  echo "second,rss_mib" >"$OUT/soak-rss.csv"
  ( for t in $(seq "$SOAK"); do
      awk -v t="$t" '/^VmRSS:/ {printf "%d,%.1f\n", t, $2 / 1024}' "/proc/$HG_PID/status" >>"$OUT/soak-rss.csv" 2>/dev/null
      sleep 1
    done ) &
  SAMPLER=$!
  PIDS+=("$SAMPLER")
  echo "segment,rps,p50_ms,p99_ms,errors" >"$OUT/soak.csv"
  for seg in $(seq $((SOAK / SEG))); do
    data="$OUT/data/soak-$seg"
    python3 "$HERE/gen.py" --out "$data" --size 1024 --count $((RATE * SEG * 3 / 2)) \
      --secret "$SECRET" --prefix "s${RUN_ID}g$seg"
    raw="$OUT/raw/soak-$seg.txt"
    SOAK_DELAY_MS=$DELAY timeout $((SEG + 60)) wrk -t"$THREADS" -c"$CONNS_SOAK" -d"${SEG}s" --timeout 5s \
      -s "$HERE/soak.lua" "http://127.0.0.1:$HG_PORT/webhooks/svix" -- "$data" "$THREADS" >"$raw" 2>&1 || FAIL=1
    python3 - "$raw" "$seg" >>"$OUT/soak.csv" <<'EOF' || FAIL=1
import json, sys
line = next((l for l in open(sys.argv[1]) if l.startswith("RESULT ")), None)
if line is None:
    sys.exit(1)
r = json.loads(line[len("RESULT "):])
errors = sum(r[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors",
                            "timeouts", "ids_wrapped"))
print(f"{sys.argv[2]},{r['requests'] / (r['duration_us'] / 1e6):.0f},{r['p50_us'] / 1000:.2f},"
      f"{r['p99_us'] / 1000:.2f},{errors}")
EOF
    rm -rf "$data"
  done
  wait "$SAMPLER" 2>/dev/null || true
  after=$(outcomes)
  python3 - "$OUT/soak.csv" "$OUT/soak-rss.csv" "$BASE_COUNTS" "$after" <<'EOF' || FAIL=1
import csv, statistics, sys
segs = list(csv.DictReader(open(sys.argv[1])))
rss = [float(r["rss_mib"]) for r in csv.DictReader(open(sys.argv[2]))]
b, a = ([int(x) for x in s.split()] for s in sys.argv[3:5])
rejected, duplicate, uperr = a[1] - b[1], a[2] - b[2], a[3] - b[3]
print(f"{'segment':>7} | {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} | errors")
for s in segs:
    print(f"{s['segment']:>7} | {s['rps']:>7} {s['p50_ms']:>7} {s['p99_ms']:>7} | {s['errors']}")
half = rss[len(rss) // 2:]
mean = statistics.mean(half)
dev = max(abs(x - mean) for x in half) / mean * 100
print(f"RSS: first {rss[0]:.1f} MiB, peak {max(rss):.1f} MiB; last {len(half)} s: mean {mean:.1f} MiB, "
      f"min {min(half):.1f}, max {max(half):.1f}, largest deviation {dev:.1f}%")
print(f"hookgate outcomes beside forwarded: rejected={rejected} duplicate={duplicate} "
      f"upstream_error={uperr}")
errors = sum(int(s["errors"]) for s in segs) + rejected + duplicate + uperr
ok = errors == 0 and dev <= 10.0
print("soak: " + ("PASS" if ok else "FAIL") + f" (errors {errors}, RSS deviation {dev:.1f}%, at most 10%)")
sys.exit(0 if ok else 1)
EOF
  echo "raw output: $OUT"
  [ "$FAIL" = 0 ] || { echo "run.sh: soak FAILED" >&2; exit 1; }
  exit 0
fi

point=0
for round in $(seq "$ROUNDS"); do
  for size in $SIZES; do
    for conns in $CONNS; do
      data="$OUT/data/${size}-${conns}-${round}"
      # Signed right before the point: fresh timestamps, ids never used before in this run.
      python3 "$HERE/gen.py" --out "$data" --size "$size" --count $((ID_RATE * DURATION)) \
        --secret "$SECRET" --prefix "r${RUN_ID}s${size}c${conns}r${round}"
      # Rotate who goes first, so no target always runs on a warmer (or busier) box.
      read -ra ts <<<"$TARGETS"
      k=$((point % ${#ts[@]}))
      for target in "${ts[@]:k}" "${ts[@]:0:k}"; do
        drive "$target" "${URL[$target]}" "$size" "$conns" "$round" "$data" || FAIL=1
      done
      rm -rf "$data"
      point=$((point + 1))
    done
  done
done

# ---- the table: medians over rounds ----
echo
echo "== results ($(nproc) cores, $DURATION s per point and target, $ROUNDS round(s), store=$STORE, log=$LOG${BALANCE:+, hookgate balance=$BALANCE}${BENCH_CLOSE:+, a connection per request})"
python3 - "$CSV" "$TARGETS" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
targets = sys.argv[2].split()
points = sorted({(int(r["size"]), int(r["conns"])) for r in rows})
def med(target, size, conns, key):
    vals = [float(r[key]) for r in rows if r["target"] == target
            and int(r["size"]) == size and int(r["conns"]) == conns and r[key] != ""]
    return statistics.median(vals) if vals else float("nan")
def size_label(size):
    return f"{size // 1024}KiB" if size % 1024 == 0 else f"{size}B"
def errs(target, size, conns):
    return sum(int(r["errors"]) for r in rows if r["target"] == target
               and int(r["size"]) == size and int(r["conns"]) == conns)
# Ratios are hookgate's figure over the target's: req/s above 1 is faster, p99 and CPU
# below 1 are better.
hdr = (f"{'body':>6} {'conns':>5} {'target':>12} | {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
       f"{'CPU us/req':>10} {'peak RSS MiB':>12} {'errors':>6} | {'hg req/s x':>10} "
       f"{'hg p99 x':>8} {'hg CPU x':>8}")
print(hdr)
print("-" * len(hdr))
for size, conns in points:
    label = size_label(size)
    hg = {k: med("hookgate", size, conns, k) for k in ("rps", "p99_ms", "cpu_us_per_req")}
    for t in targets:
        m = {k: med(t, size, conns, k)
             for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "rss_peak_mib")}
        ratios = ("" if t == "hookgate" else
                  f"{hg['rps'] / m['rps']:>9.2f}x {hg['p99_ms'] / m['p99_ms']:>7.2f}x "
                  f"{hg['cpu_us_per_req'] / m['cpu_us_per_req']:>7.2f}x")
        print(f"{label:>6} {conns:>5} {t:>12} | {m['rps']:>8.0f} {m['p50_ms']:>7.2f} {m['p99_ms']:>7.2f} "
              f"{m['cpu_us_per_req']:>10.1f} {m['rss_peak_mib']:>12.1f} {errs(t, size, conns):>6} | "
              f"{ratios}")
# Where each target's CPU goes: user and kernel time apart, and how often its threads were
# switched out (each voluntary switch is a thread that parked and was woken again), and its
# minor page faults.
print()
hdr = f"{'body':>6} {'conns':>5} {'target':>12} | {'user us/req':>11} {'sys us/req':>10} {'switches/req':>12} {'faults/req':>10}"
print(hdr)
print("-" * len(hdr))
for size, conns in points:
    label = size_label(size)
    for t in targets:
        m = {k: med(t, size, conns, k)
             for k in ("user_us_per_req", "sys_us_per_req", "switches_per_req", "faults_per_req")}
        print(f"{label:>6} {conns:>5} {t:>12} | {m['user_us_per_req']:>11.1f} "
              f"{m['sys_us_per_req']:>10.1f} {m['switches_per_req']:>12.3f} {m['faults_per_req']:>10.3f}")
# Each target against nginx (and hookgate against the verifying HAProxy) round by round:
# a round's targets run back to back, so its ratios are the comparison the box's noise
# spares most (a ratio of two medians above can pair a fast round of one target with a
# slow round of the other). The median of the per-round ratios is the figure BENCHMARKS.md
# quotes against the targets.
rounds = sorted({int(r["round"]) for r in rows})
if "nginx" in targets and len(rounds) > 1:
    def per_round(target, size, conns, key, base="nginx"):
        out = []
        for n in rounds:
            pick = {r["target"]: float(r[key]) for r in rows if int(r["round"]) == n
                    and int(r["size"]) == size and int(r["conns"]) == conns and r[key] != ""}
            if target in pick and pick.get(base):
                out.append(pick[target] / pick[base])
        return out
    def show(vals):
        each = " ".join(f"{v:.2f}" for v in vals)
        return f"{each} (median {statistics.median(vals):.2f})" if vals else "-"
    print()
    hdr = f"{'body':>6} {'conns':>5} {'target':>12} | x nginx, round by round: req/s; CPU us/req"
    print(hdr)
    print("-" * len(hdr))
    for size, conns in points:
        label = size_label(size)
        for t in targets:
            if t == "nginx":
                continue
            print(f"{label:>6} {conns:>5} {t:>12} | {show(per_round(t, size, conns, 'rps'))}; "
                  f"{show(per_round(t, size, conns, 'cpu_us_per_req'))}")
        if "haproxy" in targets:
            vs = show(per_round("hookgate", size, conns, "rps", base="haproxy"))
            print(f"{label:>6} {conns:>5} {'hookgate':>12} | x haproxy, round by round: req/s {vs}")
EOF
if [ "$SMOKE" = 1 ]; then
  # A tiny queue check: 2 s of queued acceptance with the app down, then the drain.
  queue_bench 2 "$CONNS" || FAIL=1
fi
echo "raw wrk output and results.csv: $OUT"
if [ "$FAIL" != 0 ]; then
  echo "run.sh: FAILED: errors above (any non-2xx, socket error, duplicate or repeated id is one)" >&2
  exit 1
fi
