/* aot:requires mbqm window */
/* CONV_2D (depthwise = 0, weights [out][kh][kw][in]) and DEPTHWISE_CONV_2D
 * (depthwise = 1, weights [1][kh][kw][in*mult]) 16x8: int16 input and output
 * (zero point 0), int8 weights, taps outside the image skipped, 64-bit
 * accumulation and bias (acc32: TFLM's int32-bias conv, wrapped in 32 bits).
 * g: in_h in_w in_c out_h out_w out_c k_h k_w s_h s_w d_h d_w pad_t pad_l batches
 *    per_channel depthwise acc32
 * q: min, max */
static void aot_conv_s16(const int16_t *x, int16_t *y, const int8_t *w, const int64_t *bias,
                         const int32_t *mult, const int8_t *shift, const int32_t *q,
                         const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], oc = g[5];
    const int32_t kh = g[6], kw = g[7], sh = g[8], sw = g[9], dh = g[10], dw = g[11];
    const int32_t pt = g[12], pl = g[13], nb = g[14], pc = g[15], dwise = g[16];
    const int32_t acc32 = g[17], dm = oc / ic;
    int32_t b, oy, ox, o, ky, kx, c, ky0, ky1, kx0, kx1;
    for (b = 0; b < nb; b++, x += ih * iw * ic) {
        for (oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * sh - pt;
            aot_taps(y0, dh, kh, ih, &ky0, &ky1);
            for (ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * sw - pl;
                aot_taps(x0, dw, kw, iw, &kx0, &kx1);
                for (o = 0; o < oc; o++) {
                    const int32_t ch = pc ? o : 0;
                    int64_t acc = 0;
                    int32_t v;
                    for (ky = ky0; ky < ky1; ky++) {
                        for (kx = kx0; kx < kx1; kx++) {
                            const int16_t *xp = x + ((y0 + ky * dh) * iw + x0 + kx * dw) * ic;
                            if (dwise) {
                                acc += (int32_t)w[(ky * kw + kx) * oc + o] * xp[o / dm];
                            } else {
                                const int8_t *wp = w + ((o * kh + ky) * kw + kx) * ic;
                                for (c = 0; c < ic; c++) {
                                    acc += (int32_t)wp[c] * xp[c];
                                }
                            }
                        }
                    }
                    acc += bias[o];
                    v = acc32 ? aot_mbqm((int32_t)(uint32_t)(uint64_t)acc, mult[ch], shift[ch])
                              : aot_mbqm64(acc, mult[ch], shift[ch]);
                    v = v < q[0] ? q[0] : v > q[1] ? q[1] : v;
                    *y++ = (int16_t)v;
                }
            }
        }
    }
}
