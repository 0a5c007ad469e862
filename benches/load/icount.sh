#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: a figure that repeats within
# ~0.5% on a shared, noisy box where CPU time per request moves by 10-20% between rounds.
#
#   benches/load/icount.sh [--floor] [--guards] [--raw] [--before BIN] [--seconds N] [--keep]
#
# Each target runs under callgrind behind the same nginx upstream (answering 200) and gets
# 3 s of wrk (1 KiB signed Svix webhooks, 50 connections, one thread) to warm up; then its
# counters are zeroed, it gets --seconds (default 6) more with ids it has not seen, and its
# counters are dumped. Printed: user-space instructions per request served, clock reads per
# request (calls into libc's clock_gettime: where the host traps `rdtsc`, as nested VMs do,
# each costs 60-80 ns, BENCHMARKS.md), and the ten functions (self cost) where hookgate's count
# differs most from the first other target's.
#
#   hookgate       HOOKGATE_BIN, or target/release/hookgate (built here)
#   before         --before BIN: another hookgate build, for a before/after
#   floor+verify   --floor: examples/floor/ verifying (run.sh --floor; the minimal design)
#   floor+guards   --guards: floor+verify plus hookgate's per-request limits, timers and metrics
#                  (run.sh --guards; FLOOR_GUARDS picks some of them)
#   raw+verify     --raw: the same work without hyper (run.sh --raw; the purpose-built path)
#
# Read it as a count of the work, not a time: kernel time (half the cost of a proxied
# request here, see run.sh) is not counted, nor are cache misses or stalls; and under valgrind
# the CPU has no SHA-NI, so SHA-256 runs its portable code, ~67k of the ~130k instructions per
# 1 KiB request, where the real CPU spends a few hundred. A change that saves instructions
# outside the hashing saves CPU time in about that proportion; confirm bigger ones with run.sh.
# --keep leaves the callgrind files in benches/load/out/icount for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=benches/load
OUT=$HERE/out/icount
# shellcheck source=benches/load/common.sh
. "$HERE/common.sh"

SECONDS_MEASURED=6 FLOOR=0 GUARDS=0 RAW=0 BEFORE="" KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_MEASURED=$2; shift ;;
    --floor) FLOOR=1 ;;
    --guards) GUARDS=1 ;;
    --raw) RAW=1 ;;
    --before) BEFORE=$2; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "icount.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

need nginx nginx-light
need wrk wrk
need python3 python3
need valgrind valgrind

if [ -n "${HOOKGATE_BIN:-}" ]; then
  HOOKGATE=$(cd "$(dirname "$HOOKGATE_BIN")" && pwd)/$(basename "$HOOKGATE_BIN")
else
  timeout 1800 cargo build --release --locked --bin hookgate
  HOOKGATE=$PWD/target/release/hookgate
fi
if [ "$FLOOR" = 1 ] || [ "$GUARDS" = 1 ] || [ "$RAW" = 1 ]; then
  timeout 1800 cargo build --release --locked --example floor
fi
if [ -n "$BEFORE" ]; then BEFORE=$(cd "$(dirname "$BEFORE")" && pwd)/$(basename "$BEFORE"); fi

rm -rf "$OUT"
mkdir -p "$OUT/nginx-up"
OUT=$(cd "$OUT" && pwd)

read -r UP_PORT PORT ADMIN_PORT <<<"$(free_ports 3)"
upstream_config "$OUT/nginx-up" "$UP_PORT"
nginx -p "$OUT/nginx-up" -c "$OUT/nginx-up/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_port "$UP_PORT" "upstream nginx" "$!"

STORE_TOML='store = "memory"'
hg_config "$PORT" "$ADMIN_PORT" "$OUT/hookgate.toml"

SECRET="whsec_$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
export BENCH_SVIX_SECRET=$SECRET

TARGETS="hookgate"
[ -n "$BEFORE" ] && TARGETS="$TARGETS before"
[ "$FLOOR" = 1 ] && TARGETS="$TARGETS floor+verify"
[ "$GUARDS" = 1 ] && TARGETS="$TARGETS floor+guards"
[ "$RAW" = 1 ] && TARGETS="$TARGETS raw+verify"

# measure TARGET: prints "TARGET REQUESTS INSTRUCTIONS"
measure() {
  local target=$1 pid cg="$OUT/callgrind.$1" warm="$OUT/data-warm-$1" data="$OUT/data-$1"
  local vg=(valgrind --tool=callgrind "--callgrind-out-file=$cg" --dump-instr=no --dump-line=no)
  case "$target" in
    hookgate) "${vg[@]}" "$HOOKGATE" run --config "$OUT/hookgate.toml" --log-format json 2>"$OUT/$target.log" & ;;
    before) "${vg[@]}" "$BEFORE" run --config "$OUT/hookgate.toml" --log-format json 2>"$OUT/$target.log" & ;;
    floor+verify) "${vg[@]}" target/release/examples/floor "127.0.0.1:$PORT" "127.0.0.1:$UP_PORT" 2 verify 2>"$OUT/$target.log" & ;;
    floor+guards) "${vg[@]}" target/release/examples/floor "127.0.0.1:$PORT" "127.0.0.1:$UP_PORT" 2 guards 2>"$OUT/$target.log" & ;;
    raw+verify) "${vg[@]}" target/release/examples/floor "127.0.0.1:$PORT" "127.0.0.1:$UP_PORT" 2 raw+verify 2>"$OUT/$target.log" & ;;
  esac
  pid=$!
  PIDS+=("$pid")
  # Signed just before use; under valgrind at most a few thousand requests a second.
  python3 $HERE/gen.py --out "$warm" --size 1024 --count 60000 --secret "$SECRET" --prefix "w$RANDOM$target" >/dev/null
  python3 $HERE/gen.py --out "$data" --size 1024 --count $((20000 * SECONDS_MEASURED)) --secret "$SECRET" \
    --prefix "m$RANDOM$target" >/dev/null
  wait_port "$PORT" "$target" "$pid" 60  # valgrind starts slowly
  wrk -t1 -c50 -d3s --timeout 10s -s $HERE/bench.lua "http://127.0.0.1:$PORT/webhooks/svix" -- "$warm" 1 \
    >"$OUT/wrk-warm-$target.txt" 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  wrk -t1 -c50 -d"${SECONDS_MEASURED}s" --timeout 10s -s $HERE/bench.lua "http://127.0.0.1:$PORT/webhooks/svix" \
    -- "$data" 1 >"$OUT/wrk-$target.txt" 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  python3 - "$OUT/wrk-$target.txt" "$cg.1" "$target" <<'EOF'
import json, re, sys
wrk, target = sys.argv[1], sys.argv[3]
r = json.loads(next(l for l in open(wrk) if l.startswith("RESULT ")).split(" ", 1)[1])
errors = sum(r[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts"))
if errors or r["ids_wrapped"] or r["requests"] == 0:
    sys.exit(f"icount.sh: {target}: errors or repeated ids in the measured part, see {wrk}")
text = open(sys.argv[2]).read()
total = int(re.search(r"^summary: (\d+)", text, re.M).group(1))
# Clock reads: calls into libc's clock_gettime (Instant::now, SystemTime::now and tokio's
# clock all end there), from outside it. Callgrind compresses names: "fn=(id) name" the first
# time, "fn=(id)" after; a "calls=" line follows the "cfn=" of its callee.
names, caller, callee, clock_calls = {}, "", "", 0
for line in text.splitlines():
    m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
    if m:
        kind, ident, name = m.groups()
        if name is not None:
            names[ident] = name
        if kind == "fn":
            caller = names.get(ident, "")
        else:
            callee = names.get(ident, "")
    elif line.startswith("calls=") and "clock_gettime" in callee and "clock_gettime" not in caller:
        clock_calls += int(line.split("=", 1)[1].split()[0])
print(target, r["requests"], total, clock_calls)
EOF
}

# by_function TARGET REQUESTS: "instructions-per-request<TAB>function", self cost
by_function() {
  callgrind_annotate --inclusive=no --threshold=100 "$OUT/callgrind.$1.1" 2>/dev/null |
    awk -v n="$2" '/^ *[0-9,]+ +\(/ { c = $1; gsub(",", "", c); c += 0; $1 = ""; $2 = ""; sub(/^ +/, "");
      sub(/ \[.*$/, ""); sub(/^[^:]*:/, "");
      # The totals, and the thread entry points callgrind_annotate lists with their callees.
      if ($0 == "PROGRAM TOTALS") total = c; else if (c < 0.9 * total) printf "%.1f\t%s\n", c / n, $0 }'
}

# Not in a subshell: the PIDS it adds must be stopped on exit if a step fails.
for t in $TARGETS; do measure "$t" >>"$OUT/results.txt"; done
mapfile -t RESULTS <"$OUT/results.txt"

python3 - "$OUT" "${RESULTS[@]}" <<'EOF'
import sys
out, rows = sys.argv[1], [r.split() for r in sys.argv[2:]]
base = None
print(f"{'target':>14} {'requests':>9} {'instructions/request':>21} {'x hookgate':>10} {'clock reads/request':>20}")
for name, served, total, clock in rows:
    per = int(total) / int(served)
    base = base or per
    print(f"{name:>14} {served:>9} {per:>21,.0f} {per / base:>9.3f}x {int(clock) / int(served):>20.1f}")
EOF

set -- "${RESULTS[@]}"
if [ $# -ge 2 ]; then
  read -r _ hg_served _ _ <<<"$1"
  read -r other other_served _ _ <<<"$2"
  by_function hookgate "$hg_served" >"$OUT/functions-hookgate.tsv"
  by_function "$other" "$other_served" >"$OUT/functions-$other.tsv"
  python3 - "$OUT/functions-hookgate.tsv" "$OUT/functions-$other.tsv" "$other" <<'EOF'
import collections, sys
def load(path):
    d = collections.Counter()
    for line in open(path):
        per, name = line.rstrip("\n").split("\t", 1)
        d[name] += float(per)
    return d
hg, other = load(sys.argv[1]), load(sys.argv[2])
diff = sorted(((hg[k] - other[k], k) for k in set(hg) | set(other)), key=lambda d: -abs(d[0]))
print(f"\nwhere hookgate differs most from {sys.argv[3]} (self instructions per request; inlining moves"
      " work between functions, so read pairs together):")
for d, k in diff[:10]:
    print(f"{d:>+9.0f} {hg[k]:>9.0f} {other[k]:>9.0f}  {k[:110]}")
EOF
fi

if [ "$KEEP" = 0 ]; then rm -f "$OUT"/callgrind.*; fi
rm -rf "$OUT"/data-*
