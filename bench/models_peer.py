"""PyTorch + transformers / sentence-transformers peer for lakecap's model
benchmarks and GPU parity (scripts/bench-models.sh, scripts/gpu-check.sh).

    python bench/models_peer.py make DIR            # full-size ViT-B/32 CLIPModel, random weights (seed 0)
    python bench/models_peer.py bench DIR DEVICE BATCH ITERS [DTYPES]
        images/s of get_image_features from JPEG bytes (CLIPImageProcessor) and model-only,
        fp32 and fp16 on cuda, fp32 on cpu; DTYPES (e.g. fp32,bf16) overrides.
    python bench/models_peer.py text DIR BATCH ITERS [DTYPES]
        sentences/s of a sentence-transformers model, fp32 unless DTYPES (fp32,bf16) says.
    python bench/models_peer.py parity DIR OURS.f32  # compare our embeddings of data/photos/*.png
    python bench/models_peer.py blip_make DIR TOKENIZER.json   # full-size BLIP-base, random weights (seed 0)
    python bench/models_peer.py blip DIR BATCH ITERS [DEVICE DTYPE]
        captions/s of BlipForConditionalGeneration.generate from JPEG bytes, 20 new tokens
        forced (min_new_tokens = max_new_tokens = 20, so EOS never ends a row early);
        fp32 cpu unless DEVICE (cuda) and DTYPE (fp16, fp32) say otherwise.
    python bench/models_peer.py llm DIR BATCH PROMPT STEPS DEVICE DTYPE
        decode tokens/s of AutoModelForCausalLM.generate (greedy, EOS ignored) on
        BATCH random prompts of PROMPT tokens.
"""
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

ROOT = Path(__file__).resolve().parents[1]


def photos(ext):
    return sorted(p for p in (ROOT / "data" / "photos").iterdir() if p.suffix == ext)


def make(d):
    torch.manual_seed(0)
    m = CLIPModel(CLIPConfig())  # defaults are openai/clip-vit-base-patch32
    m.save_pretrained(d, safe_serialization=True)
    CLIPImageProcessor().save_pretrained(d)
    print(f"wrote {d}")


def jpegs(n):
    enc = []
    for p in photos(".png") + photos(".jpg"):
        b = io.BytesIO()
        Image.open(p).convert("RGB").save(b, "JPEG", quality=90)
        enc.append(b.getvalue())
    return [enc[i % len(enc)] for i in range(n)]


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def bench(d, device, batch, iters, names=None):
    proc = CLIPImageProcessor.from_pretrained(d)
    data = jpegs(batch)
    names = names.split(",") if names else ["fp32", "fp16"] if device == "cuda" else ["fp32"]
    for name in names:
        dt = DTYPES[name]
        m = CLIPModel.from_pretrained(d, torch_dtype=dt).to(device).eval()

        def run(timed):
            imgs = [Image.open(io.BytesIO(b)).convert("RGB") for b in data]
            px = proc(images=imgs, return_tensors="pt")["pixel_values"].to(device, dt)
            t = time.perf_counter()
            with torch.no_grad():
                out = m.get_image_features(pixel_values=px)
                out = out.pooler_output if hasattr(out, "pooler_output") else out
                out.float().cpu()
            timed[0] += time.perf_counter() - t

        run([0.0])
        timed = [0.0]
        t = time.perf_counter()
        for _ in range(iters):
            run(timed)
        total = time.perf_counter() - t
        n = batch * iters
        print(f"torch_{device}_{name}_images_per_s={n / total:.1f}")
        print(f"torch_{device}_{name}_model_images_per_s={n / timed[0]:.1f}")


def parity(d, ours):
    proc = CLIPImageProcessor.from_pretrained(d)
    m = CLIPModel.from_pretrained(d).eval()
    imgs = [Image.open(p).convert("RGB") for p in photos(".png")]
    with torch.no_grad():
        ref = m.get_image_features(pixel_values=proc(images=imgs, return_tensors="pt")["pixel_values"])
        ref = (ref.pooler_output if hasattr(ref, "pooler_output") else ref).numpy()
    got = np.fromfile(ours, dtype="<f4").reshape(ref.shape)
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    print(f"parity_rel_err={rel:.2e}")


def text(d, batch, iters, names="fp32"):
    from sentence_transformers import SentenceTransformer

    # The same sentences as models/examples/bench_models.rs.
    a, b = ["a red", "two", "the", "some"], ["boats", "cats", "bicycles", "houses"]
    texts = [f"a photo of {a[i % 4]} {b[i % 4]} on a sunny day near the old harbour, item {i}" for i in range(batch)]
    for name in names.split(","):
        st = SentenceTransformer(d, device="cpu", model_kwargs={"torch_dtype": DTYPES[name]})
        st.encode(texts, batch_size=batch)
        t = time.perf_counter()
        for _ in range(iters):
            st.encode(texts, batch_size=batch)
        rate = batch * iters / (time.perf_counter() - t)
        suffix = "" if name == "fp32" else f"_{name}"
        print(f"torch_text{suffix}_sentences_per_s={rate:.1f}")


def blip_make(d, tokenizer_json):
    from tokenizers import AddedToken, Tokenizer
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor

    torch.manual_seed(0)
    BlipForConditionalGeneration(BlipConfig()).save_pretrained(d)  # Salesforce/blip-image-captioning-base sizes
    BlipImageProcessor().save_pretrained(d)
    # bert-base-uncased's WordPiece (e.g. all-MiniLM-L6-v2's) plus BLIP's [DEC].
    tok = Tokenizer.from_file(tokenizer_json)
    tok.add_special_tokens([AddedToken("[DEC]", special=True)])
    tok.save(str(Path(d) / "tokenizer.json"))
    print(f"wrote {d}")


def blip(d, batch, iters, device="cpu", dtype="fp32"):
    from transformers import BlipForConditionalGeneration, BlipImageProcessor

    dt = torch.float16 if dtype == "fp16" else torch.float32
    m = BlipForConditionalGeneration.from_pretrained(d, torch_dtype=dt).to(device).eval()
    proc = BlipImageProcessor.from_pretrained(d)
    data = jpegs(batch)

    def run():
        imgs = [Image.open(io.BytesIO(b)).convert("RGB") for b in data]
        px = proc(images=imgs, return_tensors="pt")["pixel_values"].to(device, dt)
        with torch.no_grad():
            m.generate(pixel_values=px, max_new_tokens=20, min_new_tokens=20, do_sample=False)
        if device == "cuda":
            torch.cuda.synchronize()

    run()
    t = time.perf_counter()
    for _ in range(iters):
        run()
    tag = "" if device == "cpu" else f"_{device}_{dtype}"
    print(f"torch_blip{tag}_b{batch}_captions_per_s={batch * iters / (time.perf_counter() - t):.2f}")


def llm(d, batch, prompt, steps, device, dtype):
    """transformers `generate` (greedy, EOS ignored): decode tokens/s from
    the difference between `steps` new tokens and one (the prefill)."""
    from transformers import AutoModelForCausalLM

    dt = torch.float16 if dtype == "fp16" else torch.float32
    m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=dt).to(device).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, m.config.vocab_size - 10, (batch, prompt), generator=g).to(device)

    def timed(n):
        t = time.perf_counter()
        with torch.no_grad():
            m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                       do_sample=False, pad_token_id=0)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    timed(2)
    one, full = timed(1), timed(steps)
    print(f"torch_llm_{device}_{dtype}_b{batch}_decode_tokens_per_s={batch * (steps - 1) / (full - one):.1f}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "bench":
        torch.set_num_threads(int(__import__("os").environ.get("THREADS", torch.get_num_threads())))
        bench(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), *sys.argv[6:7])
    elif cmd == "text":
        torch.set_num_threads(int(__import__("os").environ.get("THREADS", torch.get_num_threads())))
        text(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
    elif cmd == "blip_make":
        blip_make(sys.argv[2], sys.argv[3])
    elif cmd == "blip":
        torch.set_num_threads(int(__import__("os").environ.get("THREADS", torch.get_num_threads())))
        blip(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:7])
    elif cmd == "llm":
        llm(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7])
    elif cmd == "parity":
        parity(sys.argv[2], sys.argv[3])
