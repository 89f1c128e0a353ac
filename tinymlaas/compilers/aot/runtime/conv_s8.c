/* aot:requires mbqm */
/* CONV_2D int8, NHWC, weights [out][kh][kw][in]. The bias has -zp*sum(w) folded
 * in; taps outside the image (which TFLM skips) give back zp*sum(w) of those
 * taps, so only border pixels pay for the correction.
 * g: in_h in_w in_c out_h out_w out_c k_h k_w s_h s_w d_h d_w pad_t pad_l batches per_channel
 * q: raw value of a tap outside the image (the input zero point, or the pad value
 *    of a fused SPACE_TO_BATCH_ND), output zero point, activation min, max */
static void aot_conv_s8(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *bias,
                        const int32_t *mult, const int8_t *shift, const int32_t *q,
                        const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], oc = g[5];
    const int32_t kh = g[6], kw = g[7], sh = g[8], sw = g[9], dh = g[10], dw = g[11];
    const int32_t pt = g[12], pl = g[13], nb = g[14], pc = g[15];
    const int32_t xzp = q[0], zp = q[1], lo = q[2], hi = q[3];
    int32_t b, oy, ox, o, ky, kx, c;
    for (b = 0; b < nb; b++, x += ih * iw * ic) {
        for (oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * sh - pt;
            for (ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * sw - pl;
                const int8_t *wp = w;
                for (o = 0; o < oc; o++) {
                    int32_t acc = bias[o], skipped = 0;
                    for (ky = 0; ky < kh; ky++) {
                        const int32_t yy = y0 + ky * dh;
                        for (kx = 0; kx < kw; kx++, wp += ic) {
                            const int32_t xx = x0 + kx * dw;
                            if (yy < 0 || yy >= ih || xx < 0 || xx >= iw) {
                                for (c = 0; c < ic; c++) {
                                    skipped += wp[c];
                                }
                            } else {
                                const int8_t *xp = x + (yy * iw + xx) * ic;
                                for (c = 0; c < ic; c++) {
                                    acc += (int32_t)wp[c] * xp[c];
                                }
                            }
                        }
                    }
                    acc += skipped * xzp;
                    acc = aot_mbqm(acc, mult[pc ? o : 0], shift[pc ? o : 0]) + zp;
                    acc = acc < lo ? lo : acc;
                    acc = acc > hi ? hi : acc;
                    *y++ = (int8_t)acc;
                }
            }
        }
    }
}
