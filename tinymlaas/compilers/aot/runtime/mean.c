/* aot:requires mbqm */
/* MEAN of int8 or int16 over one contiguous block of axes (outer x reduce x inner):
 * TFLM requantizes the 32-bit sum with 1/n folded into the multiplier.
 * g: outer, reduce, inner; q: -zp_in*n, multiplier, shift, zp_out, min, max */
static void aot_mean_$S(const $T *x, $T *y, const int32_t *q, const int32_t *g)
{
    const int32_t outer = g[0], n = g[1], inner = g[2];
    int32_t o, i, r, v;
    for (o = 0; o < outer; o++, x += n * inner) {
        for (i = 0; i < inner; i++) {
            int32_t sum = 0;
            for (r = 0; r < n; r++) {
                sum += x[r * inner + i];
            }
            v = aot_mbqm(sum + q[0], q[1], q[2]) + q[3];
            v = v < q[4] ? q[4] : v > q[5] ? q[5] : v;
            *y++ = ($T)v;
        }
    }
}
