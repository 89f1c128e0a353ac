/* aot:requires mbqm */
/* SUM of int8 or int16: the 32-bit sum minus zp_in * n, rescaled to the output.
 * g: outer, n, inner; q: zp_in * n, multiplier, shift, zp_out, min, max */
static void aot_sumq_$S(const $T *x, $T *y, const int32_t *q, const int32_t *g)
{
    const int32_t outer = g[0], n = g[1], inner = g[2];
    int32_t o, i, k, v;
    for (o = 0; o < outer; o++, x += n * inner) {
        for (i = 0; i < inner; i++) {
            int32_t s = 0;
            for (k = 0; k < n; k++) {
                s += x[k * inner + i];
            }
            v = aot_mbqm((int32_t)((uint32_t)s - (uint32_t)q[0]), q[1], q[2]) + q[3];
            v = v < q[4] ? q[4] : v > q[5] ? q[5] : v;
            *y++ = ($T)v;
        }
    }
}
