/* REDUCE_MAX of raw values, SUM and MEAN of float32 over the middle of outer x n x inner
 * (mode: 0 max, 1 sum, 2 mean: added in TFLM's order from 0, then divided by n). */
static void aot_reduce_$S(const $T *x, $T *y, const $T *init, const int32_t *g, int32_t mode)
{
    const int32_t outer = g[0], n = g[1], inner = g[2];
    int32_t o, i, k;
    for (o = 0; o < outer; o++, x += n * inner) {
        for (i = 0; i < inner; i++) {
            $T acc = init[0];
            for (k = 0; k < n; k++) {
                const $T v = x[k * inner + i];
                if (mode) {
                    acc += v;
                } else {
                    acc = v > acc ? v : acc;
                }
            }
            *y++ = mode == 2 ? acc / ($T)n : acc;
        }
    }
}
