/* STRIDED_SLICE (and any affine re-indexing): up to 4 output dimensions, byte strides.
 * g: itemsize, start, n0 n1 n2 n3, s0 s1 s2 s3 */
static void aot_gather(const void *x, void *y, const int32_t *g)
{
    const uint8_t *in = (const uint8_t *)x + g[1];
    uint8_t *out = (uint8_t *)y;
    const size_t item = (size_t)g[0];
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < g[2]; i0++) {
        for (i1 = 0; i1 < g[3]; i1++) {
            for (i2 = 0; i2 < g[4]; i2++) {
                const uint8_t *p = in + i0 * g[6] + i1 * g[7] + i2 * g[8];
                for (i3 = 0; i3 < g[5]; i3++) {
                    memcpy(out, p + i3 * g[9], item);
                    out += item;
                }
            }
        }
    }
}
