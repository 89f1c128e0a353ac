/* GATHER: for each outer index, the rows of the gathered axis the indices name.
 * g: outer, indices, axis size, row bytes */
static void aot_take(const void *x, void *y, const int32_t *idx, const int32_t *g)
{
    const uint8_t *in = (const uint8_t *)x;
    uint8_t *out = (uint8_t *)y;
    const size_t row = (size_t)g[3];
    int32_t o, i;
    for (o = 0; o < g[0]; o++, in += g[2] * g[3]) {
        for (i = 0; i < g[1]; i++, out += row) {
            memcpy(out, in + idx[i] * g[3], row);
        }
    }
}
