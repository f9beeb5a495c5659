"""The VLM peer of scripts/bench-models.sh and scripts/gpu-check.sh:
transformers `generate` on the same random-weight checkpoint lakecap runs.

    python bench/vlm_peer.py make DIR [3b|small|smolvlm]   Qwen2.5-VL-3B's config (bf16), a small
        Qwen2.5-VL, or SmolVLM-256M's config (one 512-px tile a photo)
    python bench/vlm_peer.py bench DIR BATCH ITERS [cpu|cuda] [bf16|fp16|fp32]

The checkpoint has a small byte-level BPE tokenizer with Qwen's special
tokens (no hub here), and an image processor bounded to 224x224 pixels
(64 image tokens per photo), so a CPU run finishes.
"""
import io
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from models_peer import jpegs  # the same JPEG workload as the other peers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))


def make_smolvlm(d):
    from gen_vlm_fixtures import SMOLVLM_TEMPLATE, tiny_tokenizer
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, PreTrainedTokenizerFast
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    rows_cols = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                "<global-img>"] + rows_cols
    tok = tiny_tokenizer(specials)
    ids = {s: tok.token_to_id(s) for s in specials}
    # HuggingFaceTB/SmolVLM-256M-Instruct's config.json.
    cfg = Idefics3Config(
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=512, patch_size=16),
        text_config=dict(model_type="llama", vocab_size=49280, hidden_size=576, intermediate_size=1536,
                         num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
                         tie_word_embeddings=False),
        image_token_id=ids["<image>"], scale_factor=4, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    Idefics3ForConditionalGeneration._from_config(cfg, torch_dtype=torch.bfloat16).save_pretrained(d)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<end_of_utterance>", pad_token="<|endoftext|>")
    ip = Idefics3ImageProcessorPil(size={"longest_edge": 512}, max_image_size={"longest_edge": 512})
    Idefics3Processor(image_processor=ip, tokenizer=fast, image_seq_len=64,
                      chat_template=SMOLVLM_TEMPLATE).save_pretrained(d)
    print(f"wrote {d}")


def make(d, size):
    if size == "smolvlm":
        return make_smolvlm(d)
    from gen_vlm_fixtures import CHAT_TEMPLATE, SPECIALS, tiny_tokenizer
    from transformers import (
        PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = tiny_tokenizer()
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    if size == "3b":  # Qwen/Qwen2.5-VL-3B-Instruct's config.json
        text = dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                    num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=128000,
                    rms_norm_eps=1e-6, tie_word_embeddings=True,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]})
        vision = dict(depth=32, hidden_size=1280, out_hidden_size=2048, intermediate_size=3420, num_heads=16,
                      window_size=112, fullatt_block_indexes=[7, 15, 23, 31], hidden_act="silu",
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    else:
        text = dict(vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                    rms_norm_eps=1e-6, tie_word_embeddings=True,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [8, 12, 12]})
        vision = dict(depth=4, hidden_size=256, out_hidden_size=256, intermediate_size=684, num_heads=4,
                      window_size=112, fullatt_block_indexes=[1, 3], hidden_act="silu",
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, torch_dtype=torch.bfloat16)
    model.save_pretrained(d)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ip = Qwen2VLImageProcessorPil(size={"shortest_edge": 28 * 28 * 4, "longest_edge": 224 * 224})
    Qwen2_5_VLProcessor(image_processor=ip, tokenizer=fast, video_processor=Qwen2VLVideoProcessor(),
                        chat_template=CHAT_TEMPLATE).save_pretrained(d)
    print(f"wrote {d}")


def bench(d, batch, iters, device="cpu", dtype="bf16"):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    m = AutoModelForImageTextToText.from_pretrained(d, dtype=dt).to(device).eval()
    proc = AutoProcessor.from_pretrained(d)
    proc.tokenizer.padding_side = "left"
    data = jpegs(batch)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}]
    text = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def run():
        imgs = [Image.open(io.BytesIO(b)).convert("RGB") for b in data]
        inputs = proc(text=[text] * batch, images=imgs, return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            m.generate(**inputs, max_new_tokens=20, min_new_tokens=20, do_sample=False)
        if device == "cuda":
            torch.cuda.synchronize()

    run()
    t = time.perf_counter()
    for _ in range(iters):
        run()
    tag = "" if device == "cpu" else f"_{device}"
    name = Path(d).name.replace("-", "_").replace(".", "_")
    print(f"torch_{name}{tag}_{dtype}_b{batch}_captions_per_s={batch * iters / (time.perf_counter() - t):.3f}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "3b")
    else:
        bench(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:])
