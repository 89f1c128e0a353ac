/* aot:requires mbqm */
/* FULLY_CONNECTED int8: the bias has the input zero point folded in, so the
 * inner loop is a plain multiply-accumulate. */
static void aot_fc_s8(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *bias,
                      const int32_t *mult, const int8_t *shift, const int32_t *q,
                      int32_t rows, int32_t depth, int32_t units, int32_t per_channel)
{
    const int32_t zp = q[0], lo = q[1], hi = q[2];
    int32_t r, u, d;
    for (r = 0; r < rows; r++, x += depth) {
        const int8_t *wr = w;
        for (u = 0; u < units; u++, wr += depth) {
            const int32_t c = per_channel ? u : 0;
            int32_t acc = bias[u];
            for (d = 0; d < depth; d++) {
                acc += (int32_t)wr[d] * x[d];
            }
            acc = aot_mbqm(acc, mult[c], shift[c]) + zp;
            acc = acc < lo ? lo : acc;
            acc = acc > hi ? hi : acc;
            *y++ = (int8_t)acc;
        }
    }
}
