#!/usr/bin/env bash
# GPU checks, one prepared run (see bench/RESULTS.md). On a machine with a GPU:
#   scripts/gpu-check.sh build    # here (any machine with cargo): release test and bench binaries -> target/gpu-bundle
#   scripts/gpu-check.sh run      # there: op parity in f32 and f16/bf16 (NMSE per op), tiny
#                                 # CLIP/BERT/Llama/Qwen2/BLIP parity (identical greedy tokens in f32),
#                                 # full-size ViT-B/32 drift in f16, then speed vs PyTorch/transformers fp16
#                                 # (ViT-B/32, BLIP-base, SmolLM2-size decoding) against measured ceilings;
#                                 # VLM=1 adds Qwen2.5-VL-3B-size captioning vs transformers bf16
# The device needs no Rust toolchain: the bundle is carried; CUDA is loaded dynamically.
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=target/gpu-bundle

if [ "${1:-run}" = build ]; then
    set -e
    cargo test --release -p lakecap-kernels -p lakecap-models --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"] in ("ops","it","bench_models"):
        print(m["executable"])' > /tmp/gpu-bins
    rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
    while read -r b; do cp "$b" "$BUNDLE/$(basename "$b" | sed 's/-[0-9a-f]*$//')"; done < /tmp/gpu-bins
    # open_nsfw's real weights (23 MB, scripts/fetch-models.sh) travel with the bundle.
    NSFW="${LAKECAP_HOME:-$HOME/.cache/lakecap}/models/yahoo/open_nsfw"
    if [ -f "$NSFW/open_nsfw.onnx" ]; then mkdir -p "$BUNDLE/open_nsfw" && cp "$NSFW/open_nsfw.onnx" "$BUNDLE/open_nsfw/"; fi
    pwd > "$BUNDLE/built_at"
    ls -la "$BUNDLE"
    exit 0
fi

# The test binaries find fixtures through the path they were built at.
BUILT_AT=$(cat "$BUNDLE/built_at")
if [ -n "$BUILT_AT" ] && [ ! -e "$BUILT_AT" ]; then mkdir -p "$(dirname "$BUILT_AT")" && ln -s "$PWD" "$BUILT_AT"; fi
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:/usr/local/cuda/lib64:$(python3 -c 'import nvidia, os; print(":".join(os.path.join(p, d, "lib") for p in nvidia.__path__ for d in os.listdir(p)))' 2>/dev/null)"
OUTDIR="${OUT:-/tmp/gpu-check}"
mkdir -p "$OUTDIR"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUTDIR/gpu.txt"

echo "== op parity (GPU vs CPU references; f16/bf16 GEMMs, top-k, flash attention, image preprocessing)"
"$BUNDLE/ops" --nocapture 2>&1 | grep -E "running on|rel err|^test |test result|panicked"
echo "== tiny CLIP and BERT parity on CUDA (vs transformers fixtures), served embedder on CUDA vs CPU"
"$BUNDLE/it" clip_parity:: --nocapture 2>&1 | grep -E "cuda|test result|panicked|rel err" | tail -9
"$BUNDLE/it" bert_parity:: 2>&1 | grep -E "test |test result|panicked"
echo "== tiny Llama/Qwen2 logits and greedy tokens, tiny BLIP captions, on CUDA (vs transformers fixtures)"
"$BUNDLE/it" llm_parity::tiny_ llm_parity::greedy_generation --nocapture 2>&1 | grep -E "test |test result|panicked|rel err|skipped"
"$BUNDLE/it" blip_parity:: --nocapture 2>&1 | grep -E "test |test result|panicked|skipped"
echo "== tiny Qwen2-VL, Qwen2.5-VL, LLaVA and SmolVLM logits and greedy tokens on CUDA (vs transformers fixtures)"
"$BUNDLE/it" vlm_parity:: --nocapture 2>&1 | grep -E "test |test result|panicked|skipped"
echo "== SemDeDup on CUDA (k-means GEMMs, nearest-centroid top-1) vs the CPU"
"$BUNDLE/it" semdedup_device:: 2>&1 | grep -E "test |test result|panicked"

echo "== ceilings: bf16 matrix rate and device memory bandwidth (torch)"
python3 - <<'PY' | tee "$OUTDIR/ceil.txt"
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
for _ in range(3): a @ a
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(20): a @ a
torch.cuda.synchronize()
print(f"bf16_matmul_tflops={20 * 2 * 8192 ** 3 / (time.perf_counter() - t) / 1e12:.0f}")
x = torch.empty(1 << 30, device="cuda", dtype=torch.uint8); y = torch.empty_like(x)
y.copy_(x); torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(20): y.copy_(x)
torch.cuda.synchronize()
print(f"copy_gb_per_s={20 * 2 * (1 << 30) / (time.perf_counter() - t) / 1e9:.0f}")
PY

echo "== SmolLM2-135M-size decoder (random weights from its config, made here by transformers)"
L=/tmp/smollm2-random
python3 - "$L" <<'PY' > /dev/null 2>&1
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                  rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True)
LlamaForCausalLM(cfg).save_pretrained(sys.argv[1])
PY
for p in auto f16; do for b in 1 32 128; do
    "$BUNDLE/bench_models" llm $L --device cuda --precision $p --batch $b --prompt 128 --steps 32 \
        | grep tokens_per_s | sed "s/^lakecap_/lakecap_${p}_/"
done; done | tee "$OUTDIR/llm.txt"
for b in 1 32 128; do python3 bench/models_peer.py llm $L $b 128 32 cuda fp16 2>/dev/null; done | tee -a "$OUTDIR/llm.txt"

echo "== BLIP-base (random weights, made here by transformers) captions/s, 20 tokens forced"
B=/tmp/blip-base
python3 - "$B" <<'PY' > /dev/null 2>&1
import sys, torch
from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor
from tokenizers import Tokenizer, models, pre_tokenizers
torch.manual_seed(0)
BlipForConditionalGeneration(BlipConfig()).save_pretrained(sys.argv[1])
BlipImageProcessor().save_pretrained(sys.argv[1])
vocab = {f"[unused{i}]": i for i in range(30524)}
t = Tokenizer(models.WordPiece(vocab, unk_token="[unused0]")); t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
t.save(sys.argv[1] + "/tokenizer.json")
PY
for p in auto f16; do for b in 1 64; do
    "$BUNDLE/bench_models" blip $B --device cuda --precision $p --batch $b --iters 2 \
        | grep captions | sed "s/^lakecap_/lakecap_${p}_/"
done; done | tee "$OUTDIR/blip.txt"
python3 bench/models_peer.py blip $B 64 2 cuda fp16 2>/dev/null | tee -a "$OUTDIR/blip.txt"

echo "== full-size ViT-B/32 (random weights, made here by transformers)"
M=/tmp/clip-b32
python3 bench/models_peer.py make $M > /dev/null 2>&1
for p in f32 f16; do
    "$BUNDLE/bench_models" embed $M /tmp/ours_$p.f32 --device cuda --precision $p
    python3 bench/models_peer.py parity $M /tmp/ours_$p.f32 2>/dev/null | sed "s/^/cuda_${p}_vs_torch_fp32_/"
done | tee "$OUTDIR/parity.txt"
for p in auto f16; do
    "$BUNDLE/bench_models" clip $M --device cuda --precision $p --batch 64 --iters 5 | sed "s/^clip_/clip_${p}_/"
done | tee "$OUTDIR/ours.txt"
python3 bench/models_peer.py bench $M cuda 64 5 2>/dev/null | tee "$OUTDIR/torch.txt"

if [ -f "$BUNDLE/open_nsfw/open_nsfw.onnx" ]; then
    echo "== open_nsfw (real weights): images/s and mean score on the GPU and the CPU (scores must agree)"
    for d in cuda cpu; do
        "$BUNDLE/bench_models" nsfw "$BUNDLE/open_nsfw" --device $d --batch 64 --iters 3 | sed "s/^nsfw_/nsfw_${d}_/"
    done | tee "$OUTDIR/nsfw.txt"
fi

: > "$OUTDIR/vlm.txt"
if [ "${VLM:-0}" = 1 ]; then
    echo "== Qwen2.5-VL-3B config (random bf16 weights, made here), captions/s, 224² photos, 20 tokens"
    V=/tmp/qwen25vl-3b
    python3 bench/vlm_peer.py make $V 3b > /dev/null 2>&1
    for b in 1 64; do
        "$BUNDLE/bench_models" vlm $V --device cuda --batch $b --iters 1 | grep captions
    done | tee "$OUTDIR/vlm.txt"
    python3 bench/vlm_peer.py bench $V 64 1 cuda bf16 2>/dev/null | tee -a "$OUTDIR/vlm.txt"
fi
python3 - "$OUTDIR" <<'PY'
import sys
d = sys.argv[1]
kv = {}
for f in ("ours.txt", "torch.txt", "llm.txt", "blip.txt", "parity.txt", "ceil.txt", "vlm.txt"):
    for line in open(f"{d}/{f}"):
        if "=" in line:
            k, v = line.strip().split("=", 1)
            kv[k] = v
f = lambda k: float(kv.get(k, "nan"))
flop = 4.41e9  # ViT-B/32 forward, per image
t16 = f("torch_cuda_fp16_images_per_s")
peak = f("bf16_matmul_tflops")
print(f"ceilings: bf16 matmul {peak:.0f} TFLOP/s, device copy {f('copy_gb_per_s'):.0f} GB/s")
print("\n| ViT-B/32 embed_image, batch 64 | images/s from JPEG | model only | vs torch fp16 (goal 2x) | TFLOP/s (model) | of bf16 rate (goal 40%) |")
print("|---|---|---|---|---|---|")
for name, e2e, model in [
        ("lakecap f16", f("clip_f16_images_per_s"), f("clip_f16_model_images_per_s")),
        ("lakecap auto (f32 file: TF32)", f("clip_auto_images_per_s"), f("clip_auto_model_images_per_s")),
        ("torch fp16 (PIL processor)", t16, f("torch_cuda_fp16_model_images_per_s")),
        ("torch fp32 (PIL processor)", f("torch_cuda_fp32_images_per_s"), f("torch_cuda_fp32_model_images_per_s"))]:
    print(f"| {name} | {e2e:.0f} | {model:.0f} | {e2e / t16:.2f}x | {model * flop / 1e12:.1f} | {model * flop / 1e12 / peak:.0%} |")
print(f"\nViT-B/32 embeddings vs torch fp32: f32 rel err {kv.get('cuda_f32_vs_torch_fp32_parity_rel_err')}, "
      f"f16 rel err {kv.get('cuda_f16_vs_torch_fp32_parity_rel_err')} (bound 1e-2)")
tb = f("torch_blip_cuda_fp16_b64_captions_per_s")
print("\n| BLIP-base captions/s, batch 64, 20 tokens | captions/s | vs transformers fp16 (goal 3x) |")
print("|---|---|---|")
for name, k in [("lakecap f16", "lakecap_f16_blip_b64_captions_per_s"), ("lakecap auto", "lakecap_auto_blip_b64_captions_per_s"),
                ("transformers fp16", "torch_blip_cuda_fp16_b64_captions_per_s")]:
    print(f"| {name} | {f(k):.1f} | {f(k) / tb:.2f}x |")
if "lakecap_vlm_b64_captions_per_s" in kv:
    tv = f("torch_qwen25vl_3b_cuda_bf16_b64_captions_per_s")
    print("\n| Qwen2.5-VL-3B-size captions/s (bf16) | batch 1 | batch 64 | vs transformers bf16 (goal 3x) |")
    print("|---|---|---|---|")
    print(f"| lakecap | {f('lakecap_vlm_b1_captions_per_s'):.2f} | {f('lakecap_vlm_b64_captions_per_s'):.2f} | "
          f"{f('lakecap_vlm_b64_captions_per_s') / tv:.2f}x |")
    print(f"| transformers bf16 | | {tv:.2f} | |")
print("\n| SmolLM2-135M-size decode tokens/s | batch 1 | batch 32 | batch 128 |")
print("|---|---|---|---|")
for name, pat in [("lakecap f16", "lakecap_f16_b{}_decode_tokens_per_s"), ("lakecap auto", "lakecap_auto_b{}_decode_tokens_per_s"),
                  ("transformers fp16", "torch_llm_cuda_fp16_b{}_decode_tokens_per_s")]:
    print(f"| {name} | " + " | ".join(f"{f(pat.format(b)):.0f}" for b in (1, 32, 128)) + " |")
PY
