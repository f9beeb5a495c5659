// Normalisations over the last axis. One block per row.

extern "C" __global__ void layer_norm_f32(const float* x, const float* gamma, const float* beta,
                                          float* y, int d, float eps) {
    const float* xr = x + (size_t)blockIdx.x * d;
    float* yr = y + (size_t)blockIdx.x * d;
    float s = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
    float mean = block_sum(s) / d;
    float s2 = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float c = xr[i] - mean;
        s2 += c * c;
    }
    float inv = rsqrtf(block_sum(s2) / d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = (xr[i] - mean) * inv * gamma[i] + beta[i];
}

extern "C" __global__ void l2_normalize_f32(const float* x, float* y, int d) {
    const float* xr = x + (size_t)blockIdx.x * d;
    float* yr = y + (size_t)blockIdx.x * d;
    float s = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += xr[i] * xr[i];
    float n = fmaxf(sqrtf(block_sum(s)), 1e-12f);
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] / n;
}

// RMSNorm (HF LlamaRMSNorm): x / sqrt(mean(x^2) + eps) * gamma.
extern "C" __global__ void rms_norm_f32(const float* x, const float* gamma, float* y, int d, float eps) {
    const float* xr = x + (size_t)blockIdx.x * d;
    float* yr = y + (size_t)blockIdx.x * d;
    float s2 = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s2 += xr[i] * xr[i];
    float inv = rsqrtf(block_sum(s2) / d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] * inv * gamma[i];
}
