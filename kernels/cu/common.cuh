// NVRTC has no math.h: define infinity ourselves.
#define LAKECAP_INF __int_as_float(0x7f800000)

// Grid-stride loop: one logical thread per element, any grid size.
#define GRID_LOOP(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// Shared device helpers, prepended to every op family's source before NVRTC
// compiles it (NVRTC sees no files at run time).

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
    return v;
}

// Sum over the block, returned to every thread. blockDim.x must be a multiple of 32.
__device__ float block_sum(float v) {
    __shared__ float buf[32];
    __syncthreads();
    v = warp_sum(v);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) buf[warp] = v;
    __syncthreads();
    int nw = blockDim.x >> 5;
    v = lane < nw ? buf[lane] : 0.f;
    return warp_sum(v);
}

__device__ float block_max(float v) {
    __shared__ float buf[32];
    __syncthreads();
    v = warp_max(v);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) buf[warp] = v;
    __syncthreads();
    int nw = blockDim.x >> 5;
    v = lane < nw ? buf[lane] : -LAKECAP_INF;
    return warp_max(v);
}

// Half-precision storage as raw 16-bit words (NVRTC has no cuda_fp16.h
// without the toolkit headers): conversions by PTX and bit arithmetic.
__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ unsigned short f32_to_f16(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float bf16_to_f32(unsigned short h) {
    return __uint_as_float(((unsigned int)h) << 16);
}

// Round to nearest even, NaN stays NaN (as torch's float -> bfloat16).
__device__ __forceinline__ unsigned short f32_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
