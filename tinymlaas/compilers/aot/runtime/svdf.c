/* aot:requires mbqm */
/* SVDF int8 with an int8 or int16 activation state [batch][filter][memory] kept between
 * invokes (TFLM's integer reference): the state shifts one element left, each filter's
 * newest entry is its feature dot product (rescaled, clamped to the state's type, plus
 * the state zero point); each unit sums its rank filters' time dot products with the
 * bias, rescaled to int8.
 * g: batch, inputs, filters, memory, rank
 * q: zp_in, m1, s1, zp_state, m2, s2, zp_out */
static void aot_svdf_$S(const int8_t *x, int8_t *y, $T *state, const int8_t *wf, const $T *wt,
                        const int32_t *bias, const int32_t *q, const int32_t *g)
{
    const int32_t nb = g[0], ni = g[1], nf = g[2], nm = g[3], rank = g[4];
    const int32_t lo = sizeof($T) == 1 ? -128 : -32768, hi = -lo - 1;
    int32_t b, f, c, m, u, k;
    memmove(state, state + 1, (size_t)(nb * nf * nm - 1) * sizeof($T));
    for (b = 0; b < nb; b++) {
        const int8_t *xb = x + b * ni;
        for (f = 0; f < nf; f++) {
            const int8_t *w = wf + f * ni;
            int32_t dot = 0;
            for (c = 0; c < ni; c++) {
                dot += w[c] * (xb[c] - q[0]);
            }
            dot = aot_mbqm(dot, q[1], q[2]);
            dot = dot < lo ? lo : dot > hi ? hi : dot;
            state[(b * nf + f) * nm + nm - 1] = ($T)(q[3] + dot);
        }
    }
    for (b = 0; b < nb; b++) {
        for (u = 0; u < nf / rank; u++) {
            int32_t acc = bias[u];
            for (k = 0; k < rank; k++) {
                const int32_t fi = u * rank + k;
                const $T *s = state + (b * nf + fi) * nm;
                const $T *w = wt + fi * nm;
                for (m = 0; m < nm; m++) {
                    acc = (int32_t)((uint32_t)acc + (uint32_t)(w[m] * (s[m] - q[3])));
                }
            }
            acc = aot_mbqm(acc, q[4], q[5]) + q[6];
            *y++ = (int8_t)(acc < -128 ? -128 : acc > 127 ? 127 : acc);
        }
    }
}
