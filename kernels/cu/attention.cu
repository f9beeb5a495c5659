// Fused multi-head attention, one block per (query, head, batch row):
// scores in shared memory, masked by key length and causality, softmax,
// weighted sum of values. q [b, sq, h*d], k/v [b, sk, h*d], o like q.
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
    float mx = -LAKECAP_INF;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float* kr = k + ((size_t)b * sk + j) * hd + (size_t)h * d;
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
    float* orow = o + ((size_t)b * sq + i) * hd + (size_t)h * d;
    for (int t = threadIdx.x; t < d; t += blockDim.x) {
        float acc = 0.f;
        for (int j = 0; j < n; j++) acc += scores[j] * v[((size_t)b * sk + j) * hd + (size_t)h * d + t];
        orow[t] = acc / z;
    }
}
