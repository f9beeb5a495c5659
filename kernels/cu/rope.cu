// Rotary position embeddings, HF rotate_half layout: within each head of
// width d, element i pairs with i + d/2 and both rotate by pos * inv_freq[i].
// One thread per pair; x and y are [rows, heads * d].

extern "C" __global__ void rope_f32(const float* x, float* y, const int* pos, const float* inv_freq,
                                    int rows, int heads, int d, float scale) {
    int half = d / 2;
    GRID_LOOP(t, (size_t)rows * heads * half) {
        size_t r = t / ((size_t)heads * half);
        int h = (t / half) % heads, i = t % half;
        float a = (float)pos[r] * inv_freq[i];
        float c = cosf(a) * scale, s = sinf(a) * scale;
        size_t base = r * (size_t)heads * d + (size_t)h * d;
        float x1 = x[base + i], x2 = x[base + half + i];
        y[base + i] = x1 * c - x2 * s;
        y[base + half + i] = x2 * c + x1 * s;
    }
}
