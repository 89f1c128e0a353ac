/* PRELU of float32, broadcast: x >= 0 ? x : x * alpha.
 * g: n0 n1 n2 n3, element strides of x (4), of alpha (4) */
static void aot_prelu_f32(const float *x, const float *alpha, float *y, const int32_t *g)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < g[0]; i0++) {
        for (i1 = 0; i1 < g[1]; i1++) {
            for (i2 = 0; i2 < g[2]; i2++) {
                const float *px = x + i0 * g[4] + i1 * g[5] + i2 * g[6];
                const float *pa = alpha + i0 * g[8] + i1 * g[9] + i2 * g[10];
                for (i3 = 0; i3 < g[3]; i3++) {
                    const float v = px[i3 * g[7]];
                    *y++ = v >= 0.0f ? v : v * pa[i3 * g[11]];
                }
            }
        }
    }
}
