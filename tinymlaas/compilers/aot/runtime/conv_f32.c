/* aot:requires window */
/* CONV_2D (depthwise = 0, weights [out][kh][kw][in]) and DEPTHWISE_CONV_2D (depthwise = 1,
 * weights [1][kh][kw][in*mult]) of float32, summed in TFLM's order (taps row by row,
 * channels innermost, from 0; then the bias; then the clamp), no fused multiply-add.
 * g: in_h in_w in_c out_h out_w out_c k_h k_w s_h s_w d_h d_w pad_t pad_l batches depthwise
 * lohi: activation bounds */
static void aot_conv_f32(const float *x, float *y, const float *w, const float *bias,
                         const float *lohi, const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], oc = g[5];
    const int32_t kh = g[6], kw = g[7], sh = g[8], sw = g[9], dh = g[10], dw = g[11];
    const int32_t pt = g[12], pl = g[13], nb = g[14], dwise = g[15], dm = oc / ic;
    int32_t b, oy, ox, o, ky, kx, c, ky0, ky1, kx0, kx1;
    for (b = 0; b < nb; b++, x += ih * iw * ic) {
        for (oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * sh - pt;
            aot_taps(y0, dh, kh, ih, &ky0, &ky1);
            for (ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * sw - pl;
                aot_taps(x0, dw, kw, iw, &kx0, &kx1);
                for (o = 0; o < oc; o++) {
                    float acc = 0.0f;
                    for (ky = ky0; ky < ky1; ky++) {
                        for (kx = kx0; kx < kx1; kx++) {
                            const float *xp = x + ((y0 + ky * dh) * iw + x0 + kx * dw) * ic;
                            if (dwise) {
                                acc += xp[o / dm] * w[(ky * kw + kx) * oc + o];
                            } else {
                                const float *wp = w + ((o * kh + ky) * kw + kx) * ic;
                                for (c = 0; c < ic; c++) {
                                    acc += xp[c] * wp[c];
                                }
                            }
                        }
                    }
                    acc += bias[o];
                    acc = acc < lohi[0] ? lohi[0] : acc;
                    *y++ = acc > lohi[1] ? lohi[1] : acc;
                }
            }
        }
    }
}
