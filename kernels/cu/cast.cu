// Casts between f32 and the 16-bit storage types (f16, bf16), one thread per
// element: half-precision weights widen for ops that read f32, activations
// narrow before a half-precision GEMM.

extern "C" __global__ void widen_f16(const unsigned short* x, float* y, size_t n) {
    GRID_LOOP(i, n) y[i] = f16_to_f32(x[i]);
}

extern "C" __global__ void widen_bf16(const unsigned short* x, float* y, size_t n) {
    GRID_LOOP(i, n) y[i] = bf16_to_f32(x[i]);
}

extern "C" __global__ void narrow_f16(const float* x, unsigned short* y, size_t n) {
    GRID_LOOP(i, n) y[i] = f32_to_f16(x[i]);
}

extern "C" __global__ void narrow_bf16(const float* x, unsigned short* y, size_t n) {
    GRID_LOOP(i, n) y[i] = f32_to_bf16(x[i]);
}
