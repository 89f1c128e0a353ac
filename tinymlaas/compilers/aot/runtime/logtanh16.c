/* aot:requires act16 */
/* LOGISTIC (is_tanh = 0) or TANH (1) of int16 (zero points 0, output scale 2^-15).
 * q: input multiplier, right shift, rounding term */
static void aot_logtanh16(const int16_t *x, int16_t *y, const uint16_t *lut, const int32_t *q,
                      int32_t n, int32_t is_tanh)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        const int32_t v = (x[i] * q[0] + q[2]) >> q[1];
        y[i] = is_tanh ? aot_tanh16(v, lut) : aot_sigmoid16(v, lut);
    }
}
