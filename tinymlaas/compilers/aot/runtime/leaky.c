/* aot:requires mbqm */
/* LEAKY_RELU of int16 (int8 uses a table): x - zp_in scaled by the identity or the
 * alpha multiplier by its sign, + zp_out, clamped.
 * q: m_identity s_identity |m_alpha| s_alpha alpha_negative zp_in zp_out min max */
static void aot_leaky_$S(const $T *x, $T *y, const int32_t *q, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        const int32_t v = x[i] - q[5];
        int32_t r = q[6];
        if (v >= 0) {
            r += aot_mbqm(v, q[0], q[1]);
        } else {
            const int32_t s = aot_mbqm(v, q[2], q[3]);
            r += q[4] ? -s : s;
        }
        r = r < q[7] ? q[7] : r > q[8] ? q[8] : r;
        y[i] = ($T)r;
    }
}
