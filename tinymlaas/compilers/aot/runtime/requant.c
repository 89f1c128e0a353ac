/* aot:requires mbqm */
/* QUANTIZE between integer types: (x - zp_in) rescaled, + zp_out, clamped to the
 * output type (8, 16 or 32 bits). q: multiplier, shift, zp_in, zp_out */
static void aot_requant_$S(const $T *x, void *y, const int32_t *q, int32_t n, int32_t bits)
{
    const int32_t lo = bits == 32 ? INT32_MIN : -(1 << (bits - 1));
    const int32_t hi = bits == 32 ? INT32_MAX : (1 << (bits - 1)) - 1;
    int32_t i;
    for (i = 0; i < n; i++) {
        int32_t v = (int32_t)((uint32_t)x[i] - (uint32_t)q[2]);
        v = aot_mbqm(v, q[0], q[1]);
        v = (int32_t)((uint32_t)v + (uint32_t)q[3]);
        v = v < lo ? lo : v > hi ? hi : v;
        if (bits == 8) {
            ((int8_t *)y)[i] = (int8_t)v;
        } else if (bits == 16) {
            ((int16_t *)y)[i] = (int16_t)v;
        } else {
            ((int32_t *)y)[i] = v;
        }
    }
}
