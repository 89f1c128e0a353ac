/* aot:requires mbqm */
/* MEAN int8 over one contiguous block of axes (outer x reduce x inner): TFLM
 * requantizes the sum with 1/n folded into the multiplier.
 * g: outer, reduce, inner; q: -zp_in*n, multiplier, shift, zp_out */
static void aot_mean_s8(const int8_t *x, int8_t *y, const int32_t *q, const int32_t *g)
{
    const int32_t outer = g[0], n = g[1], inner = g[2];
    int32_t o, i, r;
    for (o = 0; o < outer; o++, x += n * inner) {
        for (i = 0; i < inner; i++) {
            int32_t sum = 0;
            for (r = 0; r < n; r++) {
                sum += x[r * inner + i];
            }
            int32_t v = aot_mbqm(sum + q[0], q[1], q[2]) + q[3];
            v = v < -128 ? -128 : v > 127 ? 127 : v;
            *y++ = (int8_t)v;
        }
    }
}
