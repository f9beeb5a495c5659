#!/usr/bin/env bash
# phash/dhash images/s on data/photos (decode included): lakecap (exact and 'fast' modes) vs
# Python Pillow + imagehash, same machine, same run, all photos and the JPEGs alone, 1 thread
# and all cores. Usage: scripts/bench-images.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/fixtures/requirements-hash.txt
fi
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
