// Top-k per row, one block per row: k rounds of a block-wide arg-max, each
// over the values ranked after the previous round's winner. Rank: larger
// value first, then lower index (torch.argmax's first maximum); NaN ranks
// below everything. k is small (greedy decoding: 1; top-k sampling, nearest
// centroids: tens), so k passes over an L2-resident row beat a sort.

// Whether (v, i) ranks before (w, j).
__device__ __forceinline__ bool ranks_before(float v, int i, float w, int j) {
    bool vn = v != v, wn = w != w;
    if (vn != wn) return wn;  // a number ranks before NaN
    if (vn) return i < j;
    return v > w || (v == w && i < j);
}

// The best (v, i) over the block, returned to every thread; i = -1 is "none".
__device__ void block_best(float& v, int& i) {
    __shared__ float bv[32];
    __shared__ int bi[32];
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffff, v, o);
        int j = __shfl_xor_sync(0xffffffff, i, o);
        if (j >= 0 && (i < 0 || ranks_before(w, j, v, i))) { v = w; i = j; }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) { bv[warp] = v; bi[warp] = i; }
    __syncthreads();
    int nw = blockDim.x >> 5;
    v = lane < nw ? bv[lane] : 0.f;
    i = lane < nw ? bi[lane] : -1;
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffff, v, o);
        int j = __shfl_xor_sync(0xffffffff, i, o);
        if (j >= 0 && (i < 0 || ranks_before(w, j, v, i))) { v = w; i = j; }
    }
}

// x [rows, n] -> values, indices [rows, k] (k <= n), best first.
extern "C" __global__ void top_k_f32(const float* x, float* values, unsigned int* indices, int n, int k) {
    const float* row = x + (size_t)blockIdx.x * n;
    float pv = 0.f;
    int pi = -1;  // previous round's winner; -1 before the first round
    for (int r = 0; r < k; r++) {
        float v = 0.f;
        int i = -1;
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            float w = row[j];
            if (pi >= 0 && !ranks_before(pv, pi, w, j)) continue;
            if (i < 0 || ranks_before(w, j, v, i)) { v = w; i = j; }
        }
        block_best(v, i);
        if (threadIdx.x == 0) {
            values[(size_t)blockIdx.x * k + r] = v;
            indices[(size_t)blockIdx.x * k + r] = (unsigned int)i;
        }
        pv = v;
        pi = i;
    }
}
