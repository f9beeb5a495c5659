#!/usr/bin/env bash
# CPU model throughput against PyTorch peers on the same weights and thread
# count, in one run (results go to bench/RESULTS.md by hand).
#   scripts/bench-models.sh [THREADS]
# Needs a Python with torch, transformers, sentence-transformers, Pillow and
# llama-cpp-python (PYTHON=..., e.g. a venv from tests/fixtures/requirements-models.txt
# plus requirements-llm.txt), and all-MiniLM-L6-v2 and SmolLM2 from
# scripts/fetch-models.sh. Full-size random-weight CLIP ViT-B/32 and BLIP-base
# checkpoints are written by transformers on first use (target/bench-*).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${1:-$(nproc)}"
PYTHON="${PYTHON:-python3}"
export RAYON_NUM_THREADS="$THREADS" THREADS OMP_NUM_THREADS="$THREADS"
cargo build --release -p lakecap-models --example bench_models 2>/dev/null
BIN=target/release/examples/bench_models
M="${CLIP_DIR:-target/bench-clip-b32}"
[ -f "$M/model.safetensors" ] || "$PYTHON" bench/models_peer.py make "$M"
MINILM="${LAKECAP_HOME:-$HOME/.cache/lakecap}/models/sentence-transformers/all-MiniLM-L6-v2"

echo "threads=$THREADS cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$BIN" clip "$M" --batch 32 --iters 2
"$PYTHON" bench/models_peer.py bench "$M" cpu 32 2 2>/dev/null
"$BIN" text "$MINILM" --batch 64 --iters 5
"$PYTHON" bench/models_peer.py text "$MINILM" 64 5 2>/dev/null
SMOL="${LAKECAP_HOME:-$HOME/.cache/lakecap}/models/HuggingFaceTB/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
for b in 1 32; do
    "$BIN" llm "$SMOL" --batch "$b" --prompt 128 --steps 32
    "$PYTHON" bench/llm_peer.py "$SMOL" "$b" 128 32 "$THREADS" 2>/dev/null
done
BLIP="${BLIP_DIR:-target/bench-blip-base}"
[ -f "$BLIP/model.safetensors" ] || "$PYTHON" bench/models_peer.py blip_make "$BLIP" "$MINILM/tokenizer.json"
for b in 1 16; do
    /usr/bin/time -f "lakecap_blip_b${b}_peak_rss_kb=%M" "$BIN" blip "$BLIP" --batch "$b" --iters 1
    "$PYTHON" bench/models_peer.py blip "$BLIP" "$b" 1 2>/dev/null
done
