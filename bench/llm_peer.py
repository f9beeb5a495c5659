"""llama.cpp (llama-cpp-python, low-level API) peer for lakecap's LLM
benchmark (scripts/bench-models.sh): prefill and decode tokens/s on the same
GGUF file, thread count, batch and prompt shape as `bench_models llm`.

    python bench/llm_peer.py FILE.gguf BATCH PROMPT_TOKENS DECODE_STEPS THREADS [UBATCH]

Batch B: B sequences (seq ids 0..B-1); prefill = one llama_decode of all
B x PROMPT_TOKENS tokens (logits for each sequence's last); decode = STEPS
calls of llama_decode with one token per sequence. UBATCH: llama.cpp's
`n_ubatch`, the most tokens one graph computes (default: all of them, one
step; llama.cpp's own default is 512). Prints key=value lines.
"""
import ctypes
import sys
import time

import llama_cpp as L


def main(path, batch, prompt, steps, threads, ubatch=0):
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(path.encode(), mp)
    cp = L.llama_context_default_params()
    n_tokens = batch * prompt
    cp.n_ctx = batch * (prompt + steps) + 64
    cp.n_batch = max(n_tokens, batch)
    cp.n_ubatch = ubatch or max(n_tokens, batch)
    cp.n_seq_max = batch
    cp.n_threads = threads
    cp.n_threads_batch = threads
    cp.kv_unified = True
    ctx = L.llama_init_from_model(model, cp)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    b = L.llama_batch_init(max(n_tokens, batch), 0, batch)

    def fill(entries):
        # entries: (token, pos, seq, want_logits)
        for i, (t, p, s, lg) in enumerate(entries):
            b.token[i] = t
            b.pos[i] = p
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = s
            b.logits[i] = lg
        b.n_tokens = len(entries)

    def run(timed):
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        # Token ids as bench_models uses them: (7 * i + 13 * s) % 5000 + 100.
        fill([((7 * i + 13 * s) % 5000 + 100, i, s, i == prompt - 1) for s in range(batch) for i in range(prompt)])
        t0 = time.perf_counter()
        assert L.llama_decode(ctx, b) == 0
        t1 = time.perf_counter()
        for k in range(steps):
            fill([((k * 31 + s) % 5000 + 100, prompt + k, s, True) for s in range(batch)])
            assert L.llama_decode(ctx, b) == 0
            # Read the logits as a sampler would.
            L.llama_get_logits_ith(ctx, batch - 1)
        t2 = time.perf_counter()
        if timed:
            print(f"llama_cpp_b{batch}_prefill_tokens_per_s={n_tokens / (t1 - t0):.1f}")
            print(f"llama_cpp_b{batch}_decode_tokens_per_s={batch * steps / (t2 - t1):.1f}")

    run(False)
    run(True)
    L.llama_batch_free(b)
    L.llama_free(ctx)
    L.llama_model_free(model)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], *map(int, a[1:]))
