#!/usr/bin/env bash
# The runner's own CPU per op (issue #19 point 7), against `wrk` on a one-worker nginx.
#
# Usage: runner/scripts/runcost.sh BIN [BIN ...]
#   Each round runs every BIN (alternated, so "before" and "after" binaries see the same
#   load), then `wrk -t1 -c50 -d10s $WRK_URL` when WRK_URL is set, in the same minute.
#   The reference in BENCHMARKS.md is nginx with `worker_processes 1;` on a loopback port
#   serving a 3-byte static file (`daemon off; access_log off;`), stopped by its pid after.
#   Env: ROUNDS (default 3), SEED (1), STORE (/tmp/runcost-store), PERF_DIR (if set,
#   `perf record -e cpu-clock -g -p PID` of each run goes to PERF_DIR/<round>-<bin>.data),
#   ARGS (extra `schism test` arguments), NGINX_PID (nginx's worker: its CPU during wrk).
# Per run it prints: the runner's utime+stime (/proc/PID/stat) when the run prints
# `history lines written` (workload and final reads done, before the offline check),
# divided by the ops the run reports; the CPU of the runner's child processes (the
# cluster's nodes, on this machine) at the last progress line over the ops completed
# then; ok/s.
# A speed benchmark, not a test: the figures go to BENCHMARKS.md "Runner CPU per op".
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BIN [BIN ...]" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
SEED=${SEED:-1}
STORE=${STORE:-/tmp/runcost-store}
TICK=$(getconf CLK_TCK)

# utime+stime of a process in clock ticks (fields 14 and 15, after the `(comm)` field).
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# The same, summed over a process's children (the nodes it started).
child_ticks() {
  local sum=0 c
  for c in $(pgrep -P "$1"); do sum=$((sum + $(ticks "$c" 2>/dev/null || echo 0))); done
  echo "$sum"
}

one_run() {
  local bin=$1 tag=$2
  local cpu="" nodes_cpu=0 nodes_ops=1 ops="" okps="" pid="" perf_pid=""
  while IFS= read -r line; do
    case "$line" in
      "RUNCOST_PID "*)
        pid=${line#RUNCOST_PID }
        if [ -n "${PERF_DIR:-}" ]; then
          mkdir -p "$PERF_DIR"
          perf record -q -e cpu-clock -g -p "$pid" -o "$PERF_DIR/$tag.data" 2>/dev/null &
          perf_pid=$!
        fi ;;
      *"s/"*" ops "*" ok "*" fail "*" info "*)
        # A progress line: the nodes' CPU so far over the completions so far (the nodes
        # may be gone by the end of the run).
        nodes_cpu=$(child_ticks "$pid")
        nodes_ops=$(sed -E 's/.* ok ([0-9]+) +fail ([0-9]+) +info ([0-9]+).*/\1 \2 \3/' <<<"$line" |
          awk '{print $1 + $2 + $3}') ;;
      *"history lines written"*)
        cpu=$(ticks "$pid")
        [ -n "$perf_pid" ] && kill -INT "$perf_pid" ;;
      *"ops: "*" ok/s"*)
        ops=$(sed -E 's/.*ops: ([0-9]+) .*/\1/' <<<"$line")
        okps=$(sed -E 's/.* ([0-9]+) ok\/s.*/\1/' <<<"$line") ;;
    esac
  done < <(
    "$bin" test --rate 0 --concurrency 50 --time-limit 10s --nemesis none --reads any \
      --seed "$SEED" --store "$STORE" ${ARGS:-} 2>&1 &
    echo "RUNCOST_PID $!"
    wait
  )
  [ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null || true
  if [ -z "$cpu" ] || [ -z "$ops" ]; then
    echo "$tag: the run printed no history/ops line" >&2
    return 1
  fi
  awk -v t="$tag" -v c="$cpu" -v n="$nodes_cpu" -v no="$nodes_ops" -v o="$ops" -v k="$okps" -v hz="$TICK" 'BEGIN {
    printf "%s: runner %.1f us CPU/op (%.2f s over %d ops), nodes %.1f us CPU/op, %d ok/s\n",
      t, c / hz / o * 1e6, c / hz, o, n / hz / no * 1e6, k }'
}

for r in $(seq 1 "$ROUNDS"); do
  echo "round $r, $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)"
  for bin in "$@"; do
    one_run "$bin" "$r-$(basename "$(dirname "$bin")")" || true
    rm -rf "$STORE"
  done
  if [ -n "${WRK_URL:-}" ]; then
    # wrk's own CPU per request too (utime+stime, /usr/bin/time): a minimal client's
    # cost; and nginx's, when NGINX_PID names its worker process.
    ng=0
    [ -n "${NGINX_PID:-}" ] && ng=$(ticks "$NGINX_PID")
    out=$(/usr/bin/time -f "RUNCOST_WRK_CPU %U %S" wrk -t1 -c50 -d10s "$WRK_URL" 2>&1)
    [ -n "${NGINX_PID:-}" ] && ng=$(( $(ticks "$NGINX_PID") - ng ))
    awk -v r="$r" -v ng="$ng" -v hz="$TICK" '
      /Requests\/sec/ { rps = $2 } / requests in / { n = $1 } /RUNCOST_WRK_CPU/ { cpu = $2 + $3 }
      END { printf "%s-wrk: %s req/s, wrk %.1f us CPU/request, nginx %.1f us CPU/request\n",
              r, rps, cpu / n * 1e6, ng / hz / n * 1e6 }' <<<"$out"
  fi
done
