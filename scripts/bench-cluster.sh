#!/usr/bin/env bash
# The cluster against one process on this machine, in one run (results go to
# bench/RESULTS.md by hand):
#   1. sql/demo.sql on the 240-row sample lake: one process, then a scheduler
#      and two executors on loopback (the cluster's overhead);
#   2. phash over ROWS images (default 20000): one process, then one and two
#      executors of one task slot each (what scaling this machine's cores allow).
#   [ROWS=20000] [ROUNDS=3] scripts/bench-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-20000}"
ROUNDS="${ROUNDS:-3}"
cargo build --release --bin lakecap 2>/dev/null
BIN="$PWD/target/release/lakecap"
W="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
cd "$W"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$BIN" sample-lake demo_lake --rows 240 > /dev/null
"$BIN" sample-lake big_lake --rows "$ROWS" > /dev/null

# A scheduler and N executors of one task slot; sets URL.
start_cluster() {
    local port; port="$(free_port)"
    "$BIN" cluster scheduler --port "$port" 2> scheduler.log & PIDS+=($!)
    for _ in $(seq "$1"); do
        "$BIN" cluster executor --scheduler "127.0.0.1:$port" --port "$(free_port)" \
            --device cpu --concurrent-tasks 1 2>> executors.log & PIDS+=($!)
    done
    URL="df://127.0.0.1:$port"
    until "$BIN" --cluster "$URL" cluster status 2>/dev/null | grep -q ": $1 executor(s)"; do sleep 0.2; done
}
stop_cluster() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }

# Median wall seconds of ROUNDS runs of `lakecap ARGS...`.
time_runs() {
    local times=()
    for _ in $(seq "$ROUNDS"); do
        rm -rf out
        local s; s=$(date +%s.%N)
        "$BIN" --no-progress "$@" > /dev/null 2>&1
        times+=("$(echo "$(date +%s.%N) - $s" | bc)")
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p"
}

DEMO=(run "$OLDPWD/sql/demo.sql" -D LAKE=demo_lake/ -D OUT=out/)
PHASH=(sql "CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION 'big_lake/'; SELECT count(phash(img)) FROM lake")

demo_one=$(time_runs "${DEMO[@]}")
phash_one=$(time_runs "${PHASH[@]}")
start_cluster 2
demo_two=$(time_runs --cluster "$URL" "${DEMO[@]}")
phash_two=$(time_runs --cluster "$URL" "${PHASH[@]}")
stop_cluster
start_cluster 1
phash_ex1=$(time_runs --cluster "$URL" "${PHASH[@]}")
stop_cluster

cpu="$(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
echo "cluster vs one process, $cpu, median of $ROUNDS, release build"
printf 'demo (240 rows):        one process %6.2f s | cluster, 2 executors %6.2f s | overhead %+.2f s\n' \
    "$demo_one" "$demo_two" "$(echo "$demo_two - $demo_one" | bc)"
printf 'phash (%s images): one process %6.2f s | 1 executor %6.2f s | 2 executors %6.2f s | 2 vs 1: %.2fx\n' \
    "$ROWS" "$phash_one" "$phash_ex1" "$phash_two" "$(echo "$phash_ex1 / $phash_two" | bc -l)"
printf 'images/s:               one process %6.0f | 1 executor %6.0f | 2 executors %6.0f\n' \
    "$(echo "$ROWS / $phash_one" | bc -l)" "$(echo "$ROWS / $phash_ex1" | bc -l)" "$(echo "$ROWS / $phash_two" | bc -l)"
