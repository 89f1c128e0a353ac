/* aot:requires mathf */
/* UNIDIRECTIONAL_SEQUENCE_LSTM of float32, in TFLM's reference order: each gate the
 * input and the recurrent fully connected layer (each summed from 0 and clamped to the
 * float range), added, then sigmoid (TFLM's cut-offs around 1/(1 + exp(-x))) or tanh;
 * the cell forget x cell + input x cell gate (optionally clipped); the hidden state
 * tanh(cell) x output gate. Layout of w, b and g as aot_lstm_s8.
 * q: cell clip (0: none) */
static inline float aot_lstm_clampf(float v)
{
    v = v < -3.40282347e+38f ? -3.40282347e+38f : v;
    return v > 3.40282347e+38f ? 3.40282347e+38f : v;
}

static float aot_lstm_gate_f32(const float *x, const float *h, const float *wx,
                               const float *wh, float bias, const int32_t *g, int32_t is_tanh)
{
    float ax = 0.0f, ah = 0.0f, v;
    int32_t c;
    for (c = 0; c < g[2]; c++) {
        ax += x[c] * wx[c];
    }
    for (c = 0; c < g[3]; c++) {
        ah += h[c] * wh[c];
    }
    v = aot_lstm_clampf(ax + bias) + aot_lstm_clampf(ah + 0.0f);
    return is_tanh ? tanhf(v) : aot_sigmoidf(v);
}

static void aot_lstm_f32(const float *x, float *y, float *h, float *cell, const float *w,
                         const float *b, const float *q, const int32_t *g)
{
    const int32_t nb = g[0], nt = g[1], ni = g[2], ns = g[3], tm = g[4];
    const int32_t rows = tm ? nb : 1;
    const float *wh = w + 4 * ns * ni;
    int32_t bb, t, r, u, k;
    for (bb = 0; bb < (tm ? 1 : nb); bb++) {
        for (t = 0; t < nt; t++) {
            const int32_t at = tm ? t * nb : bb * nt + t;
            const float *xt = x + at * ni;
            float *yt = y + at * ns, *ht = h + (tm ? 0 : bb * ns), *ct = cell + (tm ? 0 : bb * ns);
            for (r = 0; r < rows; r++) {
                for (u = 0; u < ns; u++) {
                    float gate[4], c;
                    for (k = 0; k < 4; k++) {
                        gate[k] = aot_lstm_gate_f32(xt + r * ni, ht + r * ns,
                                                    w + (k * ns + u) * ni, wh + (k * ns + u) * ns,
                                                    b[k * ns + u], g, k == 2 ? g[5] : 0);
                    }
                    c = aot_lstm_clampf(gate[1] * ct[r * ns + u]) +
                        aot_lstm_clampf(gate[0] * gate[2]);
                    if (q[0] > 0.0f) {
                        c = c < q[0] ? c : q[0];
                        c = c < -q[0] ? -q[0] : c;
                    }
                    ct[r * ns + u] = c;
                    yt[r * ns + u] = aot_lstm_clampf(tanhf(c) * gate[3]);
                }
            }
            memcpy(ht, yt, (size_t)(rows * ns) * sizeof(float));
        }
    }
}
