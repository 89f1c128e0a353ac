/* aot:requires mbqm */
/* DEPTHWISE_CONV_2D int8, NHWC, weights [1][kh][kw][in*mult]; bias folding as in conv.
 * g: in_h in_w in_c out_h out_w mult k_h k_w s_h s_w d_h d_w pad_t pad_l batches per_channel
 * q: raw value of a tap outside the image (see conv), output zero point, min, max */
static void aot_dwconv_s8(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *bias,
                          const int32_t *mult, const int8_t *shift, const int32_t *q,
                          const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], dm = g[5];
    const int32_t kh = g[6], kw = g[7], sh = g[8], sw = g[9], dh = g[10], dw = g[11];
    const int32_t pt = g[12], pl = g[13], nb = g[14], pc = g[15];
    const int32_t xzp = q[0], zp = q[1], lo = q[2], hi = q[3], oc = ic * dm;
    int32_t b, oy, ox, c, m, ky, kx;
    for (b = 0; b < nb; b++, x += ih * iw * ic) {
        for (oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * sh - pt;
            for (ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * sw - pl;
                for (c = 0; c < ic; c++) {
                    for (m = 0; m < dm; m++) {
                        const int32_t o = c * dm + m;
                        int32_t acc = bias[o], skipped = 0;
                        for (ky = 0; ky < kh; ky++) {
                            const int32_t yy = y0 + ky * dh;
                            for (kx = 0; kx < kw; kx++) {
                                const int32_t xx = x0 + kx * dw;
                                const int32_t wv = w[(ky * kw + kx) * oc + o];
                                if (yy < 0 || yy >= ih || xx < 0 || xx >= iw) {
                                    skipped += wv;
                                } else {
                                    acc += wv * x[(yy * iw + xx) * ic + c];
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
}
