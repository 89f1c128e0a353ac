/* PAD / PADV2 of any one-element type, up to 4-D: copy inside, the pad value outside.
 * g: output dims (4), input dims (4), leading pads (4); value: the pad value */
static void aot_pad_$S(const $T *x, $T *y, const $T *value, const int32_t *g)
{
    const $T v = value[0];
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < g[0]; i0++) {
        const int32_t j0 = i0 - g[8];
        for (i1 = 0; i1 < g[1]; i1++) {
            const int32_t j1 = i1 - g[9];
            for (i2 = 0; i2 < g[2]; i2++) {
                const int32_t j2 = i2 - g[10];
                const int inside = j0 >= 0 && j0 < g[4] && j1 >= 0 && j1 < g[5] &&
                                   j2 >= 0 && j2 < g[6];
                const $T *row = x + ((j0 * g[5] + j1) * g[6] + j2) * g[7];
                for (i3 = 0; i3 < g[3]; i3++) {
                    const int32_t j3 = i3 - g[11];
                    *y++ = inside && j3 >= 0 && j3 < g[7] ? row[j3] : v;
                }
            }
        }
    }
}
