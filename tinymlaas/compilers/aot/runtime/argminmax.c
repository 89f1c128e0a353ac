/* ARG_MAX (is_max = 1) / ARG_MIN of integers over the middle of outer x n x inner,
 * int32 indices: the first extreme value wins (TFLM's comparison). */
static void aot_argminmax_$S(const $T *x, int32_t *y, const int32_t *g, int32_t is_max)
{
    const int32_t outer = g[0], n = g[1], inner = g[2];
    int32_t o, i, k;
    for (o = 0; o < outer; o++, x += n * inner) {
        for (i = 0; i < inner; i++) {
            $T best = x[i];
            int32_t at = 0;
            for (k = 1; k < n; k++) {
                const $T v = x[k * inner + i];
                if (is_max ? v > best : v < best) {
                    best = v;
                    at = k;
                }
            }
            *y++ = at;
        }
    }
}
