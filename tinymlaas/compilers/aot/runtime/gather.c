/* Affine re-indexing of up to 6 output dimensions with byte strides: STRIDED_SLICE,
 * SLICE, SPLIT, TRANSPOSE, DEPTH_TO_SPACE, SPACE_TO_DEPTH.
 * g: itemsize, start, n0..n5, s0..s5 */
static void aot_gather(const void *x, void *y, const int32_t *g)
{
    const uint8_t *in = (const uint8_t *)x + g[1];
    uint8_t *out = (uint8_t *)y;
    const size_t item = (size_t)g[0];
    int32_t i0, i1, i2, i3, i4, i5;
    for (i0 = 0; i0 < g[2]; i0++) {
        for (i1 = 0; i1 < g[3]; i1++) {
            for (i2 = 0; i2 < g[4]; i2++) {
                for (i3 = 0; i3 < g[5]; i3++) {
                    for (i4 = 0; i4 < g[6]; i4++) {
                        const uint8_t *p = in + i0 * g[8] + i1 * g[9] + i2 * g[10] +
                                           i3 * g[11] + i4 * g[12];
                        for (i5 = 0; i5 < g[7]; i5++) {
                            memcpy(out, p + i5 * g[13], item);
                            out += item;
                        }
                    }
                }
            }
        }
    }
}
