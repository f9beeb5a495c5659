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
