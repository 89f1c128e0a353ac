/* QUANTIZE float32 -> int8 or int16 (bits): round(v / scale) halves away from zero,
 * + zero point, clamped. q: scale (float), zero point (as float) */
static void aot_quantize_f32(const float *x, void *y, const float *q, int32_t n, int32_t bits)
{
    const int32_t lo = bits == 16 ? -32768 : -128, hi = -lo - 1;
    const float scale = q[0];
    const int32_t zp = (int32_t)q[1];
    int32_t i;
    for (i = 0; i < n; i++) {
        const float v = x[i] / scale;
        int32_t r;
        if (v >= 2147483520.0f) {
            r = INT32_MAX - 255;
        } else if (v <= -2147483520.0f) {
            r = INT32_MIN + 255;
        } else {
            const float t = (float)(int32_t)v;
            r = (int32_t)t;
            if (v - t >= 0.5f) {
                r++;
            } else if (t - v >= 0.5f) {
                r--;
            }
        }
        r += zp;
        r = r < lo ? lo : r > hi ? hi : r;
        if (bits == 16) {
            ((int16_t *)y)[i] = (int16_t)r;
        } else {
            ((int8_t *)y)[i] = (int8_t)r;
        }
    }
}
