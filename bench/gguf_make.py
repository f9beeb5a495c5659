"""Writes a full-size Llama-family GGUF with random weights, for decoding
benchmarks on a model larger than SmolLM2-135M (bench/RESULTS.md): the body
of meta-llama/Llama-3.2-1B (hidden 2048, 16 layers, 32 query and 8 KV heads,
FFN 8192, tied embeddings) with the tokenizer and chat template of a source
GGUF (SmolLM2-135M-Instruct's, 49152 tokens), so about 1.0B parameters.

    python bench/gguf_make.py SRC.gguf OUT.gguf [q4_0|q4_1|q8_0|f16]

Matrices are N(0, 0.02) (seed 0) in the given type, the embedding table Q8_0
as in SmolLM2's own file, norms 1. Needs numpy and gguf (PyPI, llama.cpp's
gguf-py), nothing else.
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import quantize

BODY = dict(embedding_length=2048, block_count=16, head_count=32, head_count_kv=8, feed_forward_length=8192)


def main(src, out, kind="q4_0"):
    qtype = {"q4_0": Q.Q4_0, "q4_1": Q.Q4_1, "q8_0": Q.Q8_0, "f16": Q.F16}[kind]
    r = GGUFReader(src)
    w = GGUFWriter(out, "llama")
    d, layers = BODY["embedding_length"], BODY["block_count"]
    heads, kv, ffn = BODY["head_count"], BODY["head_count_kv"], BODY["feed_forward_length"]
    own = {
        "llama.embedding_length": d,
        "llama.block_count": layers,
        "llama.attention.head_count": heads,
        "llama.attention.head_count_kv": kv,
        "llama.feed_forward_length": ffn,
        "llama.rope.dimension_count": d // heads,
        "llama.rope.freq_base": 500000.0,
        "general.name": "random Llama-3.2-1B body",
        "general.file_type": {Q.Q4_0: 2, Q.Q4_1: 3, Q.Q8_0: 7, Q.F16: 1}[qtype],
    }
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        value = own.get(key, field.contents())
        if vtype == GGUFValueType.ARRAY:
            w.add_key_value(key, value, vtype, sub_type=field.types[1])
        else:
            w.add_key_value(key, value, vtype)
    vocab = int(r.fields["llama.vocab_size"].contents())
    rng = np.random.default_rng(0)

    def matrix(name, rows, cols, ty=qtype):
        m = rng.standard_normal((rows, cols), dtype=np.float32) * 0.02
        if ty == Q.F16:
            w.add_tensor(name, m.astype(np.float16))
        else:
            w.add_tensor(name, quantize(m, ty), raw_dtype=ty)

    matrix("token_embd.weight", vocab, d, Q.Q8_0)
    w.add_tensor("output_norm.weight", np.ones(d, dtype=np.float32))
    hd = d // heads
    for i in range(layers):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", np.ones(d, dtype=np.float32))
        w.add_tensor(b + "ffn_norm.weight", np.ones(d, dtype=np.float32))
        matrix(b + "attn_q.weight", heads * hd, d)
        matrix(b + "attn_k.weight", kv * hd, d)
        matrix(b + "attn_v.weight", kv * hd, d)
        matrix(b + "attn_output.weight", d, heads * hd)
        matrix(b + "ffn_gate.weight", ffn, d)
        matrix(b + "ffn_up.weight", ffn, d)
        matrix(b + "ffn_down.weight", d, ffn)
        print(f"layer {i + 1}/{layers}", file=sys.stderr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
