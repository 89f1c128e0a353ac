/* aot:requires mbqm */
/* aot:specialise */
/* FULLY_CONNECTED int8 (and 1x1 convolutions): the bias has the input zero
 * point folded in, so the inner loop is a plain multiply-accumulate.
 * Instantiated per layer shape: rows, depth, units, per_channel and act are
 * constants there. Blocks of up to 2 rows x 2 units (on DSP cores 1 row x 4
 * units) share their loads; a block reads all its inputs before it writes (the
 * planner's overlap model for in-place outputs, by row pairs, covers both
 * orders). q: output zero point, activation min, max. */
AOT_SPECIALISE void aot_fc_block(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *bias,
                                 const struct aot_rq *rq, int32_t depth, int32_t units, int32_t u,
                                 int32_t nr, int32_t nu, int32_t per_channel, int32_t act)
{
    const int8_t *w0 = w + u * depth, *w1 = w0 + depth, *x1 = x + depth;
    int32_t a00 = bias[u], a01 = nu > 1 ? bias[u + 1] : 0, a10 = a00, a11 = a01, d = 0;
#if defined(AOT_DSP)
    AOT_UNROLL
    for (; d + 4 <= depth; d += 4) {
        const uint32_t xv = aot_load4(x + d), wv = aot_load4(w0 + d);
        const uint32_t xe = aot_even(xv), xo = aot_odd(xv), we = aot_even(wv), wo = aot_odd(wv);
        a00 = aot_smlad(xo, wo, aot_smlad(xe, we, a00));
        if (nu > 1) {
            const uint32_t v = aot_load4(w1 + d), ve = aot_even(v), vo = aot_odd(v);
            a01 = aot_smlad(xo, vo, aot_smlad(xe, ve, a01));
            if (nr > 1) {
                const uint32_t z = aot_load4(x1 + d), ze = aot_even(z), zo = aot_odd(z);
                a10 = aot_smlad(zo, wo, aot_smlad(ze, we, a10));
                a11 = aot_smlad(zo, vo, aot_smlad(ze, ve, a11));
            }
        } else if (nr > 1) {
            const uint32_t z = aot_load4(x1 + d), ze = aot_even(z), zo = aot_odd(z);
            a10 = aot_smlad(zo, wo, aot_smlad(ze, we, a10));
        }
    }
#endif
    AOT_UNROLL
    for (; d < depth; d++) {
        const int32_t xv = x[d], wv = w0[d];
        a00 += xv * wv;
        if (nu > 1) {
            a01 += xv * w1[d];
        }
        if (nr > 1) {
            const int32_t xv1 = x1[d];
            a10 += xv1 * wv;
            if (nu > 1) {
                a11 += xv1 * w1[d];
            }
        }
    }
    y[u] = aot_requant(a00, rq, u, per_channel, act);
    if (nu > 1) {
        y[u + 1] = aot_requant(a01, rq, u + 1, per_channel, act);
    }
    if (nr > 1) {
        y[units + u] = aot_requant(a10, rq, u, per_channel, act);
        if (nu > 1) {
            y[units + u + 1] = aot_requant(a11, rq, u + 1, per_channel, act);
        }
    }
}

#if defined(AOT_DSP)
/* One input row against four units (DSP cores): each word of four inputs is split
 * once and feeds eight dual MACs, with few enough live values that -Os keeps them all
 * in registers (the 2x2 block spills there). Reads the row before writing. */
AOT_SPECIALISE void aot_fc_row4(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *bias,
                                const struct aot_rq *rq, int32_t depth, int32_t u,
                                int32_t per_channel, int32_t act)
{
    const int8_t *wp = w + u * depth;
    int32_t a0 = bias[u], a1 = bias[u + 1], a2 = bias[u + 2], a3 = bias[u + 3], d = 0;
    AOT_UNROLL
    for (; d + 4 <= depth; d += 4) {
        const uint32_t xv = aot_load4(x + d);
        const uint32_t xe = aot_even(xv), xo = aot_odd(xv);
        uint32_t v = aot_load4(wp + d);
        a0 = aot_smlad(xo, aot_odd(v), aot_smlad(xe, aot_even(v), a0));
        v = aot_load4(wp + depth + d);
        a1 = aot_smlad(xo, aot_odd(v), aot_smlad(xe, aot_even(v), a1));
        v = aot_load4(wp + 2 * depth + d);
        a2 = aot_smlad(xo, aot_odd(v), aot_smlad(xe, aot_even(v), a2));
        v = aot_load4(wp + 3 * depth + d);
        a3 = aot_smlad(xo, aot_odd(v), aot_smlad(xe, aot_even(v), a3));
    }
    for (; d < depth; d++) {
        const int32_t xv = x[d];
        a0 += xv * wp[d];
        a1 += xv * wp[depth + d];
        a2 += xv * wp[2 * depth + d];
        a3 += xv * wp[3 * depth + d];
    }
    y[u] = aot_requant(a0, rq, u, per_channel, act);
    y[u + 1] = aot_requant(a1, rq, u + 1, per_channel, act);
    y[u + 2] = aot_requant(a2, rq, u + 2, per_channel, act);
    y[u + 3] = aot_requant(a3, rq, u + 3, per_channel, act);
}
#endif

AOT_SPECIALISE void aot_fc_s8(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *bias,
                              const int32_t *mult, const int8_t *left, const int8_t *right,
                              const int32_t *q,
                              int32_t rows, int32_t depth, int32_t units, int32_t per_channel,
                              int32_t act)
{
    const struct aot_rq rq = aot_rq_load(mult, left, right, q);
    int32_t r, u;
#if defined(AOT_DSP)
    if (units >= 4) { /* a row at a time, four units at a time */
        for (r = 0; r < rows; r++, x += depth, y += units) {
            for (u = 0; u + 3 < units; u += 4) {
                aot_fc_row4(x, y, w, bias, &rq, depth, u, per_channel, act);
            }
            for (; u < units; u++) {
                aot_fc_block(x, y, w, bias, &rq, depth, units, u, 1, 1, per_channel, act);
            }
        }
        return;
    }
#endif
    for (r = 0; r + 1 < rows; r += 2, x += 2 * depth, y += 2 * units) {
        for (u = 0; u + 1 < units; u += 2) {
            aot_fc_block(x, y, w, bias, &rq, depth, units, u, 2, 2, per_channel, act);
        }
        if (units & 1) {
            aot_fc_block(x, y, w, bias, &rq, depth, units, u, 2, 1, per_channel, act);
        }
    }
    if (rows & 1) {
        for (u = 0; u + 1 < units; u += 2) {
            aot_fc_block(x, y, w, bias, &rq, depth, units, u, 1, 2, per_channel, act);
        }
        if (units & 1) {
            aot_fc_block(x, y, w, bias, &rq, depth, units, u, 1, 1, per_channel, act);
        }
    }
}
