/* aot:requires mbqm window */
/* aot:specialise */
/* CONV_2D int8, NHWC, weights [out][kh][kw][in]. The bias has -zp*sum(w) folded
 * in; taps outside the image (which TFLM skips) give back zp*sum(w) of those
 * taps, so only border pixels pay for the correction. Instantiated per layer
 * structure (g is constant there); two output channels at a time share each
 * input load, and with undilated rows a window row is one contiguous run.
 * Output pixels are written in memory order, each after reading its window
 * (the planner's in-place model).
 * g: in_h in_w in_c out_h out_w out_c k_h k_w s_h s_w d_h d_w pad_t pad_l batches
 *    per_channel act
 * q: raw value of a tap outside the image (the input zero point, or the pad value
 *    of a fused SPACE_TO_BATCH_ND), output zero point, activation min, max */

/* acc[0] (and acc[1], the next output channel, whose weights are wstride
 * further) += the dot product of n inputs with n weights. */
AOT_SPECIALISE void aot_conv_run(const int8_t *xp, const int8_t *wp, int32_t wstride, int32_t n,
                                 int32_t pair, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], c = 0;
#if defined(AOT_DSP)
    AOT_UNROLL
    for (; c + 4 <= n; c += 4) {
        const uint32_t xv = aot_load4(xp + c), wv = aot_load4(wp + c);
        const uint32_t xe = aot_even(xv), xo = aot_odd(xv);
        a0 = aot_smlad(xo, aot_odd(wv), aot_smlad(xe, aot_even(wv), a0));
        if (pair) {
            const uint32_t v = aot_load4(wp + wstride + c);
            a1 = aot_smlad(xo, aot_odd(v), aot_smlad(xe, aot_even(v), a1));
        }
    }
#endif
    AOT_UNROLL
    for (; c < n; c++) {
        const int32_t xv = xp[c];
        a0 += xv * wp[c];
        if (pair) {
            a1 += xv * wp[wstride + c];
        }
    }
    acc[0] = a0;
    acc[1] = a1;
}

AOT_SPECIALISE void aot_conv_s8(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *bias,
                                const int32_t *mult, const int8_t *left, const int8_t *right,
                                const int32_t *q, const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], oc = g[5];
    const int32_t kh = g[6], kw = g[7], sh = g[8], sw = g[9], dh = g[10], dw = g[11];
    const int32_t pt = g[12], pl = g[13], nb = g[14], pc = g[15], act = g[16];
    const int32_t xzp = q[0], wstride = kh * kw * ic;
    const struct aot_rq rq = aot_rq_load(mult, left, right, q + 1);
    int32_t b, oy, ox, o, ky, kx, ky0, ky1, kx0, kx1;
    for (b = 0; b < nb; b++, x += ih * iw * ic) {
        for (oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * sh - pt;
            aot_taps(y0, dh, kh, ih, &ky0, &ky1);
            for (ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * sw - pl;
                int32_t full;
                aot_taps(x0, dw, kw, iw, &kx0, &kx1);
                full = ky0 == 0 && ky1 == kh && kx0 == 0 && kx1 == kw;
                for (o = 0; o < oc; o += 2) {
                    const int32_t pair = o + 1 < oc;
                    const int8_t *wo = w + o * wstride;
                    int32_t acc[2];
                    acc[0] = bias[o];
                    acc[1] = pair ? bias[o + 1] : 0;
                    for (ky = ky0; ky < ky1 && kx0 < kx1; ky++) {
                        const int8_t *xp = x + ((y0 + ky * dh) * iw + x0 + kx0 * dw) * ic;
                        const int8_t *wp = wo + (ky * kw + kx0) * ic;
                        if (dw == 1 && full) {
                            aot_conv_run(xp, wp, wstride, kw * ic, pair, acc);
                        } else if (dw == 1) {
                            aot_conv_run(xp, wp, wstride, (kx1 - kx0) * ic, pair, acc);
                        } else {
                            for (kx = kx0; kx < kx1; kx++, xp += dw * ic, wp += ic) {
                                aot_conv_run(xp, wp, wstride, ic, pair, acc);
                            }
                        }
                    }
                    if (!full) {
                        int32_t skipped[2] = {0, 0};
                        for (ky = 0; ky < kh; ky++) {
                            for (kx = 0; kx < kw; kx++) {
                                if (ky < ky0 || ky >= ky1 || kx < kx0 || kx >= kx1) {
                                    const int8_t *wp = wo + (ky * kw + kx) * ic;
                                    int32_t c;
                                    for (c = 0; c < ic; c++) {
                                        skipped[0] += wp[c];
                                        if (pair) {
                                            skipped[1] += wp[wstride + c];
                                        }
                                    }
                                }
                            }
                        }
                        acc[0] += skipped[0] * xzp;
                        acc[1] += skipped[1] * xzp;
                    }
                    y[o] = aot_requant(acc[0], &rq, o, pc, act);
                    if (pair) {
                        y[o + 1] = aot_requant(acc[1], &rq, o + 1, pc, act);
                    }
                }
                y += oc;
            }
        }
    }
}
