/* aot:requires mbqm */
/* FULLY_CONNECTED 16x8: int16 inputs (zero point 0), int8 weights [units][depth].
 * TFLM accumulates in 64 bits with a 64-bit bias and rescales with the 16-bit
 * multiplier (acc32 = 0), or, for an int32 bias, wraps in 32 bits and rescales
 * like int8 (acc32 = 1). q: output zero point, min, max */
static void aot_fc_s16(const int16_t *x, int16_t *y, const int8_t *w, const int64_t *bias,
                       const int32_t *mult, const int8_t *shift, const int32_t *q, int32_t rows,
                       int32_t depth, int32_t units, int32_t per_channel, int32_t acc32)
{
    int32_t r, u, d;
    for (r = 0; r < rows; r++, x += depth) {
        const int8_t *wr = w;
        for (u = 0; u < units; u++, wr += depth) {
            const int32_t c = per_channel ? u : 0;
            int64_t acc = bias[u];
            int32_t v;
            for (d = 0; d < depth; d++) {
                acc += (int32_t)wr[d] * x[d];
            }
            v = acc32 ? aot_mbqm((int32_t)(uint32_t)(uint64_t)acc, mult[c], shift[c])
                      : aot_mbqm64(acc, mult[c], shift[c]);
            v += q[0];
            v = v < q[1] ? q[1] : v > q[2] ? q[2] : v;
            *y++ = (int16_t)v;
        }
    }
}
