#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after another: --smoke (~20 s each, CI) or --long (10M executions each).
#
#   fuzz/run.sh --smoke          # CI: each target for 20 s
#   fuzz/run.sh --long           # the recorded run: each target until 10,000,000 executions
#   FUZZ_TARGETS="clean_path" fuzz/run.sh --smoke   # a subset
#
# The committed seeds (fuzz/corpus/<target>/) are read, never written: what
# libFuzzer finds goes to fuzz/target/corpus/<target>/ (git-ignored) and crash
# files to fuzz/artifacts/<target>/. Exits non-zero if any target crashed or
# (--long) stopped short of its executions. Stable toolchain: RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"

mode=${1:---smoke}
case "$mode" in
  --smoke) runs=-1; max_time=${FUZZ_SMOKE_SECONDS:-20} ;;
  # The time cap only guards against a stuck run; 10M executions take far less.
  --long) runs=10000000; max_time=${FUZZ_LONG_MAX_SECONDS:-7200} ;;
  *) echo "usage: $0 [--smoke|--long]" >&2; exit 2 ;;
esac
targets=${FUZZ_TARGETS:-"verify_headers sign_roundtrip twilio_form json_timestamp clean_path config_toml"}
# hookgate forbids unsafe code, so what we look for is panics and failed
# assertions, not memory errors; without ASan the targets run about twice as fast.
sanitizer=${FUZZ_SANITIZER:-none}

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

echo "== cargo fuzz build (sanitizer: $sanitizer; the default release build keeps debug assertions and overflow checks)"
cargo fuzz build --sanitizer "$sanitizer"

mkdir -p target/logs
summary=()
failed=0
for t in $targets; do
  work="target/corpus/$t"
  mkdir -p "$work" "corpus/$t"
  log="target/logs/$t.log"
  dict=()
  [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  # Twilio forms are a few hundred bytes, and each execution parses the form
  # about fifteen times (sign, verify, port variants, flips): 4 KiB inputs
  # would cut its rate fourfold for no coverage.
  max_len=4096
  [ "$t" = twilio_form ] && max_len=1024
  echo "== $t ($mode)"
  start=$(date +%s)
  rc=0
  cargo fuzz run --sanitizer "$sanitizer" "$t" "$work" "corpus/$t" -- \
    -runs="$runs" -max_total_time="$max_time" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -max_len="$max_len" -timeout=10 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  execs=${execs:-0}
  if [ "$rc" != 0 ]; then
    status="CRASH (see $log, fuzz/artifacts/$t/)"
    failed=1
    grep -m1 -E "panicked at|ERROR: libFuzzer" "$log" || true
  elif [ "$mode" = --long ] && [ "$execs" -lt "$runs" ]; then
    status="SHORT ($execs < $runs executions in ${max_time}s)"
    failed=1
  else
    status="ok"
  fi
  summary+=("$(printf '%-16s %12s execs %6ss  %s' "$t" "$execs" "$secs" "$status")")
  echo "${summary[-1]}"
done

echo "== summary ($mode, $(date -u +%Y-%m-%dT%H:%MZ))"
printf '%s\n' "${summary[@]}"
exit "$failed"
