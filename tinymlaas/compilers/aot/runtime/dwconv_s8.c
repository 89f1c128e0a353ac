/* aot:requires mbqm window */
/* aot:specialise */
/* DEPTHWISE_CONV_2D int8, NHWC, weights [1][kh][kw][in*mult]; bias folding as in
 * conv. Instantiated per layer structure (g is constant there); the taps of
 * each output pixel's window are found once for all its channels.
 * g: in_h in_w in_c out_h out_w mult k_h k_w s_h s_w d_h d_w pad_t pad_l batches
 *    per_channel act
 * q: raw value of a tap outside the image (see conv), output zero point, min, max */
AOT_SPECIALISE void aot_dwconv_s8(const int8_t *x, int8_t *y, const int8_t *w,
                                  const int32_t *bias, const int32_t *mult, const int8_t *left,
                                  const int8_t *right, const int32_t *q, const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], dm = g[5];
    const int32_t kh = g[6], kw = g[7], sh = g[8], sw = g[9], dh = g[10], dw = g[11];
    const int32_t pt = g[12], pl = g[13], nb = g[14], pc = g[15], act = g[16];
    const int32_t xzp = q[0], oc = ic * dm;
    const struct aot_rq rq = aot_rq_load(mult, left, right, q + 1);
    int32_t b, oy, ox, c, m, ky, kx, ky0, ky1, kx0, kx1;
    for (b = 0; b < nb; b++, x += ih * iw * ic) {
        for (oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * sh - pt;
            aot_taps(y0, dh, kh, ih, &ky0, &ky1);
            for (ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * sw - pl;
                const int32_t base = (y0 * iw + x0) * ic;
                int32_t full;
                aot_taps(x0, dw, kw, iw, &kx0, &kx1);
                full = ky0 == 0 && ky1 == kh && kx0 == 0 && kx1 == kw;
                for (c = 0; c < ic; c++) {
                    for (m = 0; m < dm; m++) {
                        const int32_t o = c * dm + m;
                        int32_t acc = bias[o];
                        if (full) {
                            AOT_UNROLL
                            for (ky = 0; ky < kh; ky++) {
                                AOT_UNROLL
                                for (kx = 0; kx < kw; kx++) {
                                    acc += w[(ky * kw + kx) * oc + o] *
                                           x[base + (ky * dh * iw + kx * dw) * ic + c];
                                }
                            }
                        } else {
                            int32_t skipped = 0;
                            for (ky = 0; ky < kh; ky++) {
                                for (kx = 0; kx < kw; kx++) {
                                    const int32_t wv = w[(ky * kw + kx) * oc + o];
                                    if (ky < ky0 || ky >= ky1 || kx < kx0 || kx >= kx1) {
                                        skipped += wv;
                                    } else {
                                        acc += wv * x[base + (ky * dh * iw + kx * dw) * ic + c];
                                    }
                                }
                            }
                            acc += skipped * xzp;
                        }
                        y[o] = aot_requant(acc, &rq, o, pc, act);
                    }
                }
                y += oc;
            }
        }
    }
}
