/* BATCH_MATMUL of float32, each output summed over the depth from 0 in order, as TFLM's
 * reference. Geometry as aot_bmm_s8. */
static void aot_bmm_f32(const float *a, const float *b, float *y, const int32_t *g)
{
    int32_t i0, i1, i2, i, j, k;
    for (i0 = 0; i0 < g[0]; i0++) {
        for (i1 = 0; i1 < g[1]; i1++) {
            for (i2 = 0; i2 < g[2]; i2++) {
                const float *pa = a + i0 * g[3] + i1 * g[4] + i2 * g[5];
                const float *pb = b + i0 * g[6] + i1 * g[7] + i2 * g[8];
                for (i = 0; i < g[9]; i++) {
                    for (j = 0; j < g[10]; j++) {
                        float acc = 0.0f;
                        for (k = 0; k < g[11]; k++) {
                            acc += pa[i * g[12] + k * g[13]] * pb[k * g[14] + j * g[15]];
                        }
                        *y++ = acc;
                    }
                }
            }
        }
    }
}
