/* QUANTIZE float32 -> int8: round(v / scale) halves away from zero, + zero point.
 * q: scale (float), zero point (as float) */
static void aot_quantize_f32(const float *x, int8_t *y, const float *q, int32_t n)
{
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
        y[i] = (int8_t)(r < -128 ? -128 : r > 127 ? 127 : r);
    }
}
