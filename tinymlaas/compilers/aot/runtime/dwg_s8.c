/* aot:requires rqc */
/* aot:specialise */
/* DEPTHWISE_CONV_2D int8 (channel multiplier 1, channels a multiple of 4, no
 * dilation, a window of at most 3 rows) through a band of k_h padded input rows:
 * each input row the window reaches is copied once into the band with the pad
 * value on both sides (rows above and below the image are all pad), so every
 * output pixel, border or not, runs the same unrolled window with no test (the
 * bias has -zp*sum(w) folded in, as in conv). The band's rows stay in window
 * order (moving up as the window does), so each tap is a fixed offset from one
 * pointer. Output row oy is written after the rows it needs are in the band: input
 * rows are read once, in order (the planner's in-place model).
 * Weights: per tap, per group of four channels, two words of int16 pairs (c0,c2)
 * and (c1,c3): what SXTB16 makes of four input channels and of their rotation,
 * multiplied lane by lane (SMLABB/SMLATT) on DSP cores. With fast = 2 weights and
 * bias are stored doubled, which the requantization wants.
 * g: in_h in_w in_c out_h out_w k_h k_w s_h s_w pad_t pad_l batches band_w fast act
 * q: pad value, output zero point, activation min, max */

AOT_SPECIALISE void aot_dw_words(uint32_t *d, const uint32_t *s, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        d[i] = s[i];
    }
}

/* Band row for input row iy: pad columns, the row's pixels, pad columns. */
AOT_SPECIALISE void aot_dw_fill(uint32_t *d, const int8_t *x, int32_t iy, uint32_t pad4,
                                const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], pl = g[10], bw = g[12];
    const int32_t left = pl < bw ? pl : bw, mid = iw < bw - left ? iw : bw - left;
    int32_t i;
    if (iy < 0 || iy >= ih) {
        for (i = 0; i < bw * ic / 4; i++) {
            d[i] = pad4;
        }
        return;
    }
    for (i = 0; i < left * ic / 4; i++) {
        d[i] = pad4;
    }
    d += left * ic / 4;
    aot_dw_words(d, (const uint32_t *)(const void *)(x + iy * iw * ic), mid * ic / 4);
    d += mid * ic / 4;
    for (i = 0; i < (bw - left - mid) * ic / 4; i++) {
        d[i] = pad4;
    }
}

/* One output row from the band (rows at row_bytes apart). */
AOT_SPECIALISE void aot_dw_row(const int8_t *band, int8_t *y, const uint32_t *w,
                               const int32_t *bias, const int32_t *rq, const int32_t *q,
                               const int16_t *g)
{
    const int32_t ic = g[2], ow = g[4], kh = g[5], kw = g[6], sw = g[8], bw = g[12];
    const int32_t fast = g[13], act = g[14], zp = q[1], lo = q[2], hi = q[3];
    int32_t ox, c, ky, kx;
    for (ox = 0; ox < ow; ox++, band += sw * ic) {
        const int32_t *r = rq;
        const uint32_t *wc = w;
        for (c = 0; c < ic; c += 4, y += 4, r += 12, wc += 2) {
            const int8_t *xc = band + c;
            int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
            AOT_UNROLL
            for (ky = 0; ky < kh; ky++) {
                AOT_UNROLL
                for (kx = 0; kx < kw; kx++) {
                    const int8_t *xp = xc + ky * bw * ic + kx * ic;
                    const uint32_t *wp = wc + (ky * kw + kx) * (ic / 2);
#if defined(AOT_DSP)
                    const uint32_t xv = aot_load4(xp), xe = aot_even(xv), xo = aot_odd(xv);
                    a0 = aot_smlabb(xe, wp[0], a0);
                    a2 = aot_smlatt(xe, wp[0], a2);
                    a1 = aot_smlabb(xo, wp[1], a1);
                    a3 = aot_smlatt(xo, wp[1], a3);
#else
                    a0 += xp[0] * (int32_t)(int16_t)(wp[0] & 0xFFFFu);
                    a1 += xp[1] * (int32_t)(int16_t)(wp[1] & 0xFFFFu);
                    a2 += xp[2] * ((int32_t)wp[0] >> 16);
                    a3 += xp[3] * ((int32_t)wp[1] >> 16);
#endif
                }
            }
            y[0] = aot_rqc(a0, r, fast, zp, lo, hi, act);
            y[1] = aot_rqc(a1, r + 3, fast, zp, lo, hi, act);
            y[2] = aot_rqc(a2, r + 6, fast, zp, lo, hi, act);
            y[3] = aot_rqc(a3, r + 9, fast, zp, lo, hi, act);
        }
    }
}

/* Before output row oy: moves the band rows its window still needs up and returns the
 * first band row to fill (input row oy*s_h - pad_t + that). */
AOT_SPECIALISE int32_t aot_dw_advance(uint32_t *band, int32_t oy, const int16_t *g)
{
    const int32_t ic = g[2], kh = g[5], sh = g[7], bw = g[12], row_words = bw * ic / 4;
    const int32_t keep = oy && sh < kh ? kh - sh : 0;
    if (keep) {
        aot_dw_words(band, band + sh * row_words, keep * row_words);
    }
    return keep;
}

AOT_SPECIALISE void aot_dwg_s8(const int8_t *x, int8_t *y, const uint32_t *w, const int32_t *bias,
                               const int32_t *rq, const int32_t *q, void *rows,
                               const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], kh = g[5];
    const int32_t sh = g[7], pt = g[9], nb = g[11], bw = g[12];
    const uint32_t pad4 = ((uint32_t)q[0] & 0xFFu) * 0x01010101u;
    uint32_t *const band = (uint32_t *)rows;
    int32_t b, oy, k;
    for (b = 0; b < nb; b++, x += ih * iw * ic) {
        for (oy = 0; oy < oh; oy++, y += ow * ic) {
            for (k = aot_dw_advance(band, oy, g); k < kh; k++) {
                aot_dw_fill(band + k * (bw * ic / 4), x, oy * sh + k - pt, pad4, g);
            }
            aot_dw_row((const int8_t *)band, y, w, bias, rq, q, g);
        }
    }
}
