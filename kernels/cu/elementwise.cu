// Element-wise ops, gathers and pooling. One thread per output element.


// y = a + b, b broadcast over a's leading axes (bn divides n).
extern "C" __global__ void add_f32(const float* a, const float* b, float* y, size_t n, size_t bn) {
    GRID_LOOP(i, n) y[i] = a[i] + b[i % bn];
}

// mode: 0 gelu (erf), 1 gelu tanh, 2 quick gelu, 3 silu, 4 relu (kernels::Activation order).
__device__ __forceinline__ float act(float v, int mode) {
    switch (mode) {
        case 0: return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
        case 1: return 0.5f * v * (1.f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)));
        case 2: return v / (1.f + expf(-1.702f * v));
        case 3: return v / (1.f + expf(-v));
        default: return fmaxf(v, 0.f);
    }
}

extern "C" __global__ void activation_f32(const float* x, float* y, size_t n, int mode) {
    GRID_LOOP(i, n) y[i] = act(x[i], mode);
}

// Gated MLPs in one pass: y = act(g) * u (SiLU·mul for SwiGLU).
extern "C" __global__ void act_mul_f32(const float* g, const float* u, float* y, size_t n, int mode) {
    GRID_LOOP(i, n) y[i] = act(g[i], mode) * u[i];
}

// Row gathers: y[r] = table[ids[r]] (rows of width d) as f32, from f32, f16
// or bf16 tables (token embeddings of half checkpoints, rows of activations,
// KV cache rows); ids are checked on the host.
extern "C" __global__ void embedding_f32(const float* table, const unsigned int* ids, float* y, size_t rows, int d) {
    GRID_LOOP(i, rows * d) y[i] = table[(size_t)ids[i / d] * d + i % d];
}

extern "C" __global__ void embedding_f16(const unsigned short* table, const unsigned int* ids, float* y, size_t rows, int d) {
    GRID_LOOP(i, rows * d) y[i] = f16_to_f32(table[(size_t)ids[i / d] * d + i % d]);
}

extern "C" __global__ void embedding_bf16(const unsigned short* table, const unsigned int* ids, float* y, size_t rows, int d) {
    GRID_LOOP(i, rows * d) y[i] = bf16_to_f32(table[(size_t)ids[i / d] * d + i % d]);
}

// y [b, s+1, d]: row first, then x [b, s, d].
extern "C" __global__ void prepend_row_f32(const float* x, const float* row, float* y, int b, int s, int d) {
    GRID_LOOP(i, (size_t)b * (s + 1) * d) {
        size_t t = (i / d) % (s + 1), bi = i / ((size_t)d * (s + 1)), c = i % d;
        y[i] = t == 0 ? row[c] : x[(bi * s + t - 1) * d + c];
    }
}

// y [b, d] = mean of the first lens[bi] rows of x [b, s, d].
extern "C" __global__ void masked_mean_f32(const float* x, const int* lens, float* y, int b, int s, int d) {
    GRID_LOOP(i, (size_t)b * d) {
        size_t bi = i / d, c = i % d;
        int n = lens[bi];
        float acc = 0.f;
        for (int t = 0; t < n; t++) acc += x[(bi * s + t) * d + c];
        y[i] = acc / fmaxf((float)n, 1e-9f);
    }
}
