#!/usr/bin/env bash
# Refresh jobs at scale: a synthetic lake of N rows (default 1M) in 100 hive shards, a
# model-free transform, Delta output. Reports rows/s and peak RSS for the first run, a rerun
# with nothing new, and a rerun after 10 new shards. Usage: scripts/bench-refresh.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
# LAKECAP_BIN=target/debug/lakecap measures a build at hand (memory is what matters here).
bin="${LAKECAP_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin=target/release/lakecap
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
w="$PWD/target/bench-refresh"
rm -rf "$w" && mkdir -p "$w"
export LAKECAP_HOME="$w/home"

shards() { # $1 first row, $2 rows, $3 shard offset
  "$bin" --no-progress sql "COPY (
      SELECT concat('k', lpad(arrow_cast(value, 'Utf8'), 12, '0')) AS key,
             concat('a photo of item ', value, ' on a table, seen from the side') AS alt,
             sha256(arrow_cast(value, 'Utf8')) AS img,
             value % 100 + $3 AS shard
      FROM generate_series($1, $1 + $2 - 1)
    ) TO '$w/lake/' STORED AS PARQUET PARTITIONED BY (shard)" >/dev/null 2>&1
}
shards 0 "$rows" 0

cat > "$w/job.toml" <<JOB
name = "bench"
key = "key"
files_per_commit = 25
sql = "SELECT key, alt, alt_quality(alt)['score'] AS alt_score, sha256(img) AS img_hash FROM lake WHERE alt_quality(alt)['score'] > 0"
[source.lake]
location = "lake"
[output]
location = "out"
format = "delta"
JOB

run() { # $1 label
  /usr/bin/time -f "%e %M" -o "$w/time.txt" "$bin" --no-progress refresh "$w/job.toml" 2>"$w/$1.log"
  read -r secs kb < "$w/time.txt"
  written=$(grep -o '[0-9]* written' "$w/$1.log" | grep -o '[0-9]*')
  printf '%-22s %10s %9.1f %12.0f %10.0f\n' "$1" "$written" "$secs" "$(echo "$written / $secs" | bc -l)" "$((kb / 1024))"
}
printf '%-22s %10s %9s %12s %10s\n' run rows_written seconds rows/s peak_MiB
run first
run "nothing new"
shards "$rows" "$((rows / 10))" 100
run "+10% rows, new shards"
