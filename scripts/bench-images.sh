#!/usr/bin/env bash
# phash/dhash images/s on data/photos (decode included): lakecap (exact and 'fast' modes) vs
# Python Pillow + imagehash, same machine, same run, all photos, the JPEGs alone, and the JPEGs
# re-encoded at web quality (75), 1 thread and all cores; then the fast mode's agreement with the
# exact phash on a 2,000-row sample lake (bench/hash_agreement.sql).
# Usage: scripts/bench-images.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/fixtures/requirements-hash.txt
fi
"$venv/bin/python" bench/imagehash_peer.py --write-web
cargo bench -p lakecap-models --bench images --quiet -- "$secs" | tee target/bench-images-lakecap.txt
"$venv/bin/python" bench/imagehash_peer.py "$secs" | tee target/bench-images-peer.txt
echo
# The fast modes are compared with imagehash's (exact) hashes.
printf '%-11s %-5s %-8s %12s %12s %8s\n' hash set threads lakecap/s imagehash/s ratio
while read -r _ name set threads rate; do
  ours=${rate#images_per_s=}
  peer=$(grep "imagehash ${name%_fast} $set $threads " target/bench-images-peer.txt | sed 's/.*images_per_s=//')
  printf '%-11s %-5s %-8s %12s %12s %7.1fx\n' "$name" "${set#set=}" "${threads#threads=}" "$ours" "$peer" "$(echo "$ours / $peer" | bc -l)"
done < target/bench-images-lakecap.txt
echo
# Agreement of phash(img, 'fast') with the exact phash on a sample lake with known duplicates.
cargo build --release --quiet --bin lakecap
lake=target/bench-hash-lake
[ -d "$lake" ] || target/release/lakecap sample-lake "$lake" --rows 2000 --seed 7 --no-progress
target/release/lakecap run --no-progress bench/hash_agreement.sql -D LAKE="$lake" -D TRUTH="$lake.truth.csv"
