// Image preprocessing on the GPU, bit-identical to the host path
// (kernels/src/image.rs, a port of Pillow's 8-bit resampling): the host
// computes each axis's fixed-point coefficients once per size pair; the two
// passes apply them with the same 32-bit wrapping integer arithmetic and
// clip to u8 in between; the last step crops, rescales and normalises in f64
// and writes ViT patch rows.

#define RESAMPLE_PRECISION_BITS 22

__device__ __forceinline__ unsigned char clip8(unsigned int acc) {
    int v = ((int)acc) >> RESAMPLE_PRECISION_BITS;
    return (unsigned char)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass over rows row0 .. row0 + rows of src [*, in_w, c] into
// dst [rows, out_w, c]. bounds [out_w, 2]: first source pixel and tap count;
// weights [out_w, ksize].
extern "C" __global__ void resample_h_u8(const unsigned char* src, unsigned char* dst, const int* bounds,
                                         const int* weights, int ksize, int in_w, int out_w, int rows,
                                         int row0, int c) {
    GRID_LOOP(e, (size_t)rows * out_w * c) {
        int ch = e % c;
        size_t t = e / c;
        int xx = t % out_w;
        size_t y = t / out_w;
        int xmin = bounds[2 * xx], taps = bounds[2 * xx + 1];
        const unsigned char* s = src + ((y + row0) * in_w + xmin) * c + ch;
        const int* w = weights + (size_t)xx * ksize;
        unsigned int acc = 1u << (RESAMPLE_PRECISION_BITS - 1);
        for (int k = 0; k < taps; k++) acc += (unsigned int)s[k * c] * (unsigned int)w[k];
        dst[e] = clip8(acc);
    }
}

// Vertical pass: src rows start at source row row0; dst [out_h, stride]
// where stride = width * channels.
extern "C" __global__ void resample_v_u8(const unsigned char* src, unsigned char* dst, const int* bounds,
                                         const int* weights, int ksize, int stride, int out_h, int row0) {
    GRID_LOOP(e, (size_t)out_h * stride) {
        int x = e % stride;
        int yy = e / stride;
        int ymin = bounds[2 * yy], taps = bounds[2 * yy + 1];
        const unsigned char* s = src + (size_t)(ymin - row0) * stride + x;
        const int* w = weights + (size_t)yy * ksize;
        unsigned int acc = 1u << (RESAMPLE_PRECISION_BITS - 1);
        for (int k = 0; k < taps; k++) acc += (unsigned int)s[(size_t)k * stride] * (unsigned int)w[k];
        dst[e] = clip8(acc);
    }
}

// Center crop of img [h, w, 3] to ch x cw at (top, left) (zero outside the
// image), then (v * scale - mean[c]) / std[c] in f64 as the host does, as
// patch rows [(ch/p) * (cw/p), 3 * p * p] in (channel, ky, kx) order.
// norm: scale, mean[3], std[3].
extern "C" __global__ void patchify_u8(const unsigned char* img, float* out, const double* norm, int h, int w,
                                       int top, int left, int ch, int cw, int p) {
    int pp = p * p, gw = cw / p;
    GRID_LOOP(e, (size_t)(ch / p) * gw * 3 * pp) {
        int r = e % (3 * pp);
        size_t patch = e / (3 * pp);
        int c = r / pp, ky = (r / p) % p, kx = r % p;
        int y = (int)(patch / gw) * p + ky + top, x = (int)(patch % gw) * p + kx + left;
        unsigned char v = (y >= 0 && y < h && x >= 0 && x < w) ? img[((size_t)y * w + x) * 3 + c] : 0;
        // Explicitly rounded steps: a fused multiply-add would differ from the host.
        double t = __dadd_rn(__dmul_rn((double)v, norm[0]), -norm[1 + c]);
        out[e] = __double2float_rn(__ddiv_rn(t, norm[4 + c]));
    }
}
