/* ARG_MAX / ARG_MIN of float32: as for integers, and a NaN never wins while any number
 * beats a NaN (TFLM's comparison). */
static void aot_argminmax_f32(const float *x, int32_t *y, const int32_t *g, int32_t is_max)
{
    const int32_t outer = g[0], n = g[1], inner = g[2];
    int32_t o, i, k;
    for (o = 0; o < outer; o++, x += n * inner) {
        for (i = 0; i < inner; i++) {
            float best = x[i];
            int32_t at = 0;
            for (k = 1; k < n; k++) {
                const float v = x[k * inner + i];
                if (v == v && (best != best || (is_max ? v > best : v < best))) {
                    best = v;
                    at = k;
                }
            }
            *y++ = at;
        }
    }
}
