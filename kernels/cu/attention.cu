// Attention, one block per (query row, head): scores in shared memory,
// softmax, weighted sum of values. Two entry points share attend_row: the
// fused attention over q/k/v tensors (padding and causal masks) and the
// decoder's attention over its KV cache.

// Scores of query qs (in shared memory, d floats) against n keys at
// kbase + j * stride, softmax, and the weighted sum of the values at
// vbase + j * stride into orow. scores: n floats of shared memory.
__device__ void attend_row(const float* qs, const float* kbase, const float* vbase, size_t stride,
                           int n, int d, float scale, float* scores, float* orow) {
    float mx = -LAKECAP_INF;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float* kr = kbase + (size_t)j * stride;
        float s = 0.f;
        for (int t = 0; t < d; t++) s += qs[t] * kr[t];
        s *= scale;
        scores[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_max(mx);
    float z = 0.f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float e = __expf(scores[j] - mx);
        scores[j] = e;
        z += e;
    }
    z = block_sum(z);
    __syncthreads();
    for (int t = threadIdx.x; t < d; t += blockDim.x) {
        float acc = 0.f;
        for (int j = 0; j < n; j++) acc += scores[j] * vbase[(size_t)j * stride + t];
        orow[t] = acc / z;
    }
}

// Fused multi-head attention, block (query i, head h, batch row b), masked by
// key length and causality. q [b, sq, h*d], k/v [b, sk, h*d], o like q.
// Dynamic shared memory: (sk + d) floats.
extern "C" __global__ void attention_f32(const float* q, const float* k, const float* v, float* o,
                                         const int* key_lens, int sq, int sk, int heads, int d,
                                         int causal, float scale) {
    extern __shared__ float sh[];
    float* scores = sh;
    float* qs = sh + sk;
    int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    size_t hd = (size_t)heads * d;
    const float* qr = q + ((size_t)b * sq + i) * hd + (size_t)h * d;
    for (int t = threadIdx.x; t < d; t += blockDim.x) qs[t] = qr[t];
    __syncthreads();
    int n = min(key_lens[b], sk);
    if (causal) n = min(n, i + 1);
    size_t base = (size_t)b * sk * hd + (size_t)h * d;
    attend_row(qs, k + base, v + base, hd, n, d, scale, scores,
               o + ((size_t)b * sq + i) * hd + (size_t)h * d);
}

// KV cache: per slot, `capacity` rows of `width` floats for keys and values.
// Row i of k/v [n, width] goes to cache row dst[i] = slot * capacity + pos.
extern "C" __global__ void kv_store_f32(const float* k, const float* v, float* kc, float* vc,
                                        const int* dst, int n, int width) {
    GRID_LOOP(t, (size_t)n * width) {
        size_t i = t / width, c = t % width;
        size_t o = (size_t)dst[i] * width + c;
        kc[o] = k[t];
        vc[o] = v[t];
    }
}

// Attention over the cache, block (query row i, head h): row i reads cache
// rows base[i] .. base[i] + len[i] of its kv head (h / group).
// Dynamic shared memory: (max len + d) floats.
extern "C" __global__ void kv_attention_f32(const float* q, const float* kc, const float* vc, float* o,
                                            const int* base, const int* len, int heads, int d,
                                            int width, int group, float scale) {
    extern __shared__ float sh[];
    int i = blockIdx.x, h = blockIdx.y;
    int n = len[i];
    float* scores = sh;
    float* qs = sh + n;
    const float* qr = q + ((size_t)i * heads + h) * d;
    for (int t = threadIdx.x; t < d; t += blockDim.x) qs[t] = qr[t];
    __syncthreads();
    size_t off = (size_t)base[i] * width + (size_t)(h / group) * d;
    attend_row(qs, kc + off, vc + off, width, n, d, scale, scores, o + ((size_t)i * heads + h) * d);
}

// Flash-style attention for prefill and encoders (Dao et al. 2022): a block
// of 64 query rows, one thread each, walks the keys in tiles of 64 staged in
// shared memory, keeping a running max, sum and output (online softmax), so
// every key and value row is read once per 64 queries and no score row is
// stored. Head width D is a template parameter so q and the accumulator live
// in registers. Same layout and masks as attention_f32. Dynamic shared
// memory: 2 * 64 * D floats.
template <int D>
__device__ void flash_rows(const float* q, const float* k, const float* v, float* o,
                           const int* key_lens, int sq, int sk, int heads, int causal, float scale) {
    constexpr int BK = 64;
    extern __shared__ float tiles[];
    float* ks = tiles;
    float* vs = tiles + BK * D;
    int h = blockIdx.y, b = blockIdx.z;
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    size_t hd = (size_t)heads * D;
    int n = min(key_lens[b], sk);
    // Keys any row of this block sees (causal: up to its last row).
    int last = causal ? min(n, (int)((blockIdx.x + 1) * blockDim.x)) : n;
    bool active = i < sq;
    int mine = active ? (causal ? min(n, i + 1) : n) : 0;
    float qr[D], acc[D];
    const float* qp = q + ((size_t)b * sq + (active ? i : 0)) * hd + (size_t)h * D;
#pragma unroll
    for (int t = 0; t < D; t++) {
        qr[t] = active ? qp[t] * scale : 0.f;
        acc[t] = 0.f;
    }
    float m = -LAKECAP_INF, l = 0.f;
    size_t base = (size_t)b * sk * hd + (size_t)h * D;
    for (int j0 = 0; j0 < last; j0 += BK) {
        int cnt = min(BK, last - j0);
        __syncthreads();
        for (int t = threadIdx.x; t < cnt * D; t += blockDim.x) {
            size_t src = base + (size_t)(j0 + t / D) * hd + t % D;
            ks[t] = k[src];
            vs[t] = v[src];
        }
        __syncthreads();
        int upto = min(cnt, mine - j0);
        for (int j = 0; j < upto; j++) {
            float s = 0.f;
#pragma unroll
            for (int t = 0; t < D; t++) s += qr[t] * ks[j * D + t];
            float mn = fmaxf(m, s);
            float corr = __expf(m - mn), p = __expf(s - mn);
            l = l * corr + p;
#pragma unroll
            for (int t = 0; t < D; t++) acc[t] = acc[t] * corr + p * vs[j * D + t];
            m = mn;
        }
    }
    if (active) {
        float inv = l > 0.f ? 1.f / l : 0.f;
        float* orow = o + ((size_t)b * sq + i) * hd + (size_t)h * D;
#pragma unroll
        for (int t = 0; t < D; t++) orow[t] = acc[t] * inv;
    }
}

// Grid (ceil(sq / 64), heads, batch), 64 threads; d is 32 or 64 (the host
// uses attention_f32 for other head widths and for a few query rows).
extern "C" __global__ void flash_attention_f32(const float* q, const float* k, const float* v, float* o,
                                               const int* key_lens, int sq, int sk, int heads, int d,
                                               int causal, float scale) {
    if (d == 64) flash_rows<64>(q, k, v, o, key_lens, sq, sk, heads, causal, scale);
    else flash_rows<32>(q, k, v, o, key_lens, sq, sk, heads, causal, scale);
}
