#!/usr/bin/env bash
# Runs bench/send.sh RUNS times (default 5) with the same arguments and settings, and prints each
# run's ratios and their medians. On a shared machine a run can land in one of the machine's
# slow phases, which its baseline (taken before and after it) does not see: the same build then
# spreads over 0.73 – 0.94 within minutes (BENCHMARKS.md, "eleventh session"). One run cannot
# settle a 5 % question; the median of several can.
#
#   RUNS=5 WORKERS=4 BATCH=200 CONCURRENCY=32 bench/send_runs.sh 100000 postgres
#   RUNS=5 WORKERS=2 BATCH=100 CONCURRENCY=8 INVITATION_BATCH=default bench/send_runs.sh 100000 postgres
#
# Every run's full output goes to bench/out/send/runs-<n>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-5}"
mkdir -p bench/out/send
walls=()
steadies=()
for i in $(seq 1 "$RUNS"); do
    log="bench/out/send/runs-$i.log"
    bash bench/send.sh "$@" >"$log" 2>&1 || { echo "run $i failed: see $log" >&2; exit 1; }
    wall=$(awk '/^optbridge, wall/ {print $NF}' "$log")
    steady=$(awk '/^optbridge, first to last send/ {print $NF}' "$log")
    baseline=$(awk '/^smtp-source → smtp-sink, mean/ {print $(NF-1)}' "$log")
    cpu=$(grep '^CPU per invitation' "$log" | sed 's/; over.*//')
    echo "run $i: ratio $wall (first to last send $steady), baseline $baseline msg/s; $cpu"
    walls+=("$wall")
    steadies+=("$steady")
done
python3 - "${walls[*]}" "${steadies[*]}" <<'PY'
import statistics, sys
walls, steadies = ([float(x) for x in arg.split()] for arg in sys.argv[1:3])
print(f"median of {len(walls)} runs: ratio {statistics.median(walls):.2f} "
      f"(first to last send {statistics.median(steadies):.2f}); "
      f"range {min(walls):.2f} – {max(walls):.2f}; goal: ratio >= 0.9")
PY
