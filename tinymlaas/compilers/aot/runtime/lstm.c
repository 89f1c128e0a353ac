/* aot:requires mbqm act16 */
/* UNIDIRECTIONAL_SEQUENCE_LSTM as TFLM's integer kernel computes it: int8 activations
 * (32-bit bias and accumulators) or int16 (64-bit bias, rescaled with the 16-bit
 * multiplier), int8 weights, an int16 cell state; hidden and cell state are kept
 * between invokes. Each gate is two fully connected layers (input, hidden) into
 * Q3.12, added with saturation, then sigmoid (tanh or sigmoid for the cell gate) into
 * Q0.15. One unit at a time: its four gates, its cell, its new hidden value written
 * to the output, copied into the hidden state once every unit has read the old one.
 * w: input weights [4][units][inputs], then recurrent [4][units][units]; gates in
 *    TFLite's order input, forget, cell, output. b: [4][units]
 * q: per gate the input and recurrent multiplier and shift (16); forget x cell,
 *    input x cell gate, output x tanh(cell) multiplier and shift (6); -zp_x, -zp_h,
 *    zp_h, cell tanh multiplier, right shift, rounding, cell clip (-1: none)
 * g: batches, steps, inputs, units, time major, cell gate tanh, 32-bit accumulators */
static inline int32_t aot_lstm_fc_$S(int64_t acc, int32_t m, int32_t s, int32_t acc32)
{
    const int32_t v = acc32 ? aot_mbqm((int32_t)(uint32_t)(uint64_t)acc, m, s)
                            : aot_mbqm64(acc, m, s);
    return v < -32768 ? -32768 : v > 32767 ? 32767 : v;
}

static int16_t aot_lstm_gate_$S(const $T *x, const $T *h, const int8_t *wx, const int8_t *wh,
                                int64_t bias, const int32_t *qg, const int32_t *q,
                                const int32_t *g, int32_t is_tanh, const uint16_t *lut)
{
    int64_t ax = 0, ah = 0;
    int32_t c, v;
    for (c = 0; c < g[2]; c++) {
        ax += (int32_t)wx[c] * (x[c] + q[22]);
    }
    for (c = 0; c < g[3]; c++) {
        ah += (int32_t)wh[c] * (h[c] + q[23]);
    }
    v = aot_lstm_fc_$S(ax + bias, qg[0], qg[1], g[6]) + aot_lstm_fc_$S(ah, qg[2], qg[3], g[6]);
    v = v < -32768 ? -32768 : v > 32767 ? 32767 : v;
    return is_tanh ? aot_tanh16(v * 3, lut) : aot_sigmoid16(v * 3, lut);
}

static void aot_lstm_$S(const $T *x, $T *y, $T *h, int16_t *cell, const int8_t *w,
                        const int64_t *b, const int32_t *q, const uint16_t *lut,
                        const int32_t *g)
{
    const int32_t nb = g[0], nt = g[1], ni = g[2], ns = g[3], tm = g[4];
    const int32_t rows = tm ? nb : 1, lo = sizeof($T) == 1 ? -128 : -32768, hi = -lo - 1;
    const int8_t *wh = w + 4 * ns * ni;
    int32_t bb, t, r, u, k;
    for (bb = 0; bb < (tm ? 1 : nb); bb++) {
        for (t = 0; t < nt; t++) {
            const int32_t at = tm ? t * nb : bb * nt + t;
            const $T *xt = x + at * ni;
            $T *yt = y + at * ns, *ht = h + (tm ? 0 : bb * ns);
            int16_t *ct = cell + (tm ? 0 : bb * ns);
            for (r = 0; r < rows; r++) {
                for (u = 0; u < ns; u++) {
                    int16_t gate[4];
                    int32_t c, v;
                    for (k = 0; k < 4; k++) {
                        gate[k] = aot_lstm_gate_$S(xt + r * ni, ht + r * ns,
                                                   w + (k * ns + u) * ni, wh + (k * ns + u) * ns,
                                                   b[k * ns + u], q + 4 * k, q, g,
                                                   k == 2 ? g[5] : 0, lut);
                    }
                    c = aot_mbqm(gate[1] * ct[r * ns + u], q[16], q[17]);
                    c = c < -32768 ? -32768 : c > 32767 ? 32767 : c;
                    v = aot_mbqm(gate[0] * gate[2], q[18], q[19]);
                    v = v < -32768 ? -32768 : v > 32767 ? 32767 : v;
                    c += v;
                    c = c < -32768 ? -32768 : c > 32767 ? 32767 : c;
                    if (q[28] >= 0) {
                        c = c > q[28] ? q[28] : c < -q[28] ? -q[28] : c;
                    }
                    ct[r * ns + u] = (int16_t)c;
                    v = aot_tanh16((c * q[25] + q[27]) >> q[26], lut);
                    v = q[24] + aot_mbqm(v * gate[3], q[20], q[21]);
                    yt[r * ns + u] = ($T)(v < lo ? lo : v > hi ? hi : v);
                }
            }
            memcpy(ht, yt, (size_t)(rows * ns) * sizeof($T));
        }
    }
}
