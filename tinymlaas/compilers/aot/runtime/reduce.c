/* REDUCE_MAX of raw values and SUM of float32 over the middle of outer x n x inner
 * (sum: 0 max, 1 sum, added in TFLM's order from 0). */
static void aot_reduce_$S(const $T *x, $T *y, const $T *init, const int32_t *g, int32_t sum)
{
    const int32_t outer = g[0], n = g[1], inner = g[2];
    int32_t o, i, k;
    for (o = 0; o < outer; o++, x += n * inner) {
        for (i = 0; i < inner; i++) {
            $T acc = init[0];
            for (k = 0; k < n; k++) {
                const $T v = x[k * inner + i];
                if (sum) {
                    acc += v;
                } else {
                    acc = v > acc ? v : acc;
                }
            }
            *y++ = acc;
        }
    }
}
