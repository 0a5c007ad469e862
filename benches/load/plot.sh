#!/usr/bin/env bash
# Plots the load harness's results: req/s and p99 latency against connections, hookgate vs nginx.
#
#   benches/load/plot.sh [results.csv] [plot.png]
# Defaults: benches/load/out/results.csv (written by run.sh) -> benches/load/plot.png.
# Uses gnuplot from Debian's packages (installed if missing); medians over rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
CSV=${1:-benches/load/out/results.csv}
PNG=${2:-benches/load/plot.png}
[ -f "$CSV" ] || { echo "plot.sh: no $CSV: run benches/load/run.sh first" >&2; exit 1; }
if ! command -v gnuplot >/dev/null 2>&1; then
  timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq gnuplot-nox >/dev/null
fi

DAT=$(mktemp -d)
trap 'rm -rf "$DAT"' EXIT
# One file per (target, size): "conns rps p99_ms", medians over rounds.
python3 - "$CSV" "$DAT" <<'EOF'
import csv, statistics, sys, os
rows = list(csv.DictReader(open(sys.argv[1])))
series = {}
for r in rows:
    series.setdefault((r["target"], int(r["size"])), {}).setdefault(int(r["conns"]), []).append(r)
for (target, size), by_conns in series.items():
    with open(os.path.join(sys.argv[2], f"{target}-{size}.dat"), "w") as f:
        for conns in sorted(by_conns):
            rs = by_conns[conns]
            rps = statistics.median(float(r["rps"]) for r in rs)
            p99 = statistics.median(float(r["p99_ms"]) for r in rs)
            f.write(f"{conns} {rps} {p99}\n")
EOF

plots_rps="" plots_p99=""
for f in "$DAT"/*.dat; do
  name=$(basename "$f" .dat)            # e.g. hookgate-1024
  target=${name%-*} size=${name##*-}
  label="$target $((size / 1024)) KiB"
  dash=1; [ "$target" = nginx ] && dash=2
  pt=7; [ "$size" -gt 1024 ] && pt=5
  plots_rps+="'$f' using 1:2 with linespoints dt $dash pt $pt lw 2 title '$label', "
  plots_p99+="'$f' using 1:3 with linespoints dt $dash pt $pt lw 2 title '$label', "
done

gnuplot <<EOF
set terminal pngcairo size 1200,500 font ",10"
set output "$PNG"
set multiplot layout 1,2 title "hookgate (Svix verify + replay store) vs nginx proxy\\\\_pass, same upstream, loopback"
set grid
set key below horizontal
set xlabel "connections"
set logscale x 2
set ylabel "requests/s"
set yrange [0:*]
set title "throughput (higher is better)"
plot ${plots_rps%, }
set ylabel "p99 latency (ms)"
set title "p99 latency (lower is better)"
plot ${plots_p99%, }
unset multiplot
EOF
echo "plot.sh: wrote $PNG"
