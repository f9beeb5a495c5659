// Convnet ops over NHWC images (kernels::cpu::conv has the references).
// One thread per output element.

// Geometry of a window: sizes, steps and top/left padding, passed by value.
struct Win {
    int n, h, w, c, oh, ow, kh, kw, sh, sw, pt, pl;
};

// y [n, oh, ow, kh*kw*c]: each output pixel's patch, zeros in the padding.
extern "C" __global__ void im2col_f32(const float* x, float* y, Win g) {
    size_t k = (size_t)g.kh * g.kw * g.c;
    GRID_LOOP(i, (size_t)g.n * g.oh * g.ow * k) {
        size_t p = i / k, r = i % k;
        int ch = r % g.c, kx = (r / g.c) % g.kw, ky = r / ((size_t)g.c * g.kw);
        int ox = p % g.ow, oy = (p / g.ow) % g.oh, b = p / ((size_t)g.ow * g.oh);
        int iy = oy * g.sh + ky - g.pt, ix = ox * g.sw + kx - g.pl;
        y[i] = (iy >= 0 && ix >= 0 && iy < g.h && ix < g.w)
            ? x[(((size_t)b * g.h + iy) * g.w + ix) * g.c + ch] : 0.f;
    }
}

// y [n, oh, ow, c]: max (mode 0) or mean of the positions inside the image (mode 1).
extern "C" __global__ void pool2d_f32(const float* x, float* y, Win g, int mode) {
    GRID_LOOP(i, (size_t)g.n * g.oh * g.ow * g.c) {
        int ch = i % g.c;
        size_t p = i / g.c;
        int ox = p % g.ow, oy = (p / g.ow) % g.oh, b = p / ((size_t)g.ow * g.oh);
        float acc = mode == 0 ? -LAKECAP_INF : 0.f;
        int count = 0;
        for (int ky = 0; ky < g.kh; ky++) {
            int iy = oy * g.sh + ky - g.pt;
            if (iy < 0 || iy >= g.h) continue;
            for (int kx = 0; kx < g.kw; kx++) {
                int ix = ox * g.sw + kx - g.pl;
                if (ix < 0 || ix >= g.w) continue;
                float v = x[(((size_t)b * g.h + iy) * g.w + ix) * g.c + ch];
                acc = mode == 0 ? fmaxf(acc, v) : acc + v;
                count++;
            }
        }
        y[i] = mode == 0 ? acc : acc / (float)max(count, 1);
    }
}
