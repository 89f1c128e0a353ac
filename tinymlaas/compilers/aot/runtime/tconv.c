/* aot:requires mbqm */
/* TRANSPOSE_CONV of int8 (wide = 0: (x - zp_in) * w in 32 bits, 32-bit rescale,
 * + zp_out) or int16 (wide = 1: 64 bits, the 16-bit multiplier, zero points 0);
 * weights [out][kh][kw][in]. Computed per output element over the input pixels
 * that reach it: TFLM scatters into a scratch buffer, but integer sums do not
 * depend on the order, so no scratch is needed.
 * g: in_h in_w in_c out_h out_w out_c k_h k_w s_h s_w pad_t pad_l batches
 *    per_channel wide
 * q: input zero point, output zero point, min, max */
static void aot_tconv_$S(const $T *x, $T *y, const int8_t *w, const int64_t *bias,
                         const int32_t *mult, const int8_t *shift, const int32_t *q,
                         const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], oc = g[5];
    const int32_t kh = g[6], kw = g[7], sh = g[8], sw = g[9], pt = g[10], pl = g[11];
    const int32_t nb = g[12], pc = g[13], wide = g[14];
    int32_t b, oy, ox, o, iy, ix, c;
    for (b = 0; b < nb; b++, x += ih * iw * ic) {
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                for (o = 0; o < oc; o++) {
                    const int32_t ch = pc ? o : 0;
                    int64_t acc = 0;
                    int32_t v;
                    for (iy = 0; iy < ih; iy++) {
                        const int32_t ky = oy + pt - iy * sh;
                        if (ky < 0 || ky >= kh) {
                            continue;
                        }
                        for (ix = 0; ix < iw; ix++) {
                            const int32_t kx = ox + pl - ix * sw;
                            const $T *xp = x + (iy * iw + ix) * ic;
                            const int8_t *wp = w + ((o * kh + ky) * kw + kx) * ic;
                            if (kx < 0 || kx >= kw) {
                                continue;
                            }
                            for (c = 0; c < ic; c++) {
                                acc += (int32_t)wp[c] * (xp[c] - q[0]);
                            }
                        }
                    }
                    acc += bias[o];
                    v = wide ? aot_mbqm64(acc, mult[ch], shift[ch])
                             : aot_mbqm((int32_t)(uint32_t)(uint64_t)acc, mult[ch], shift[ch]);
                    v += q[1];
                    v = v < q[2] ? q[2] : v > q[3] ? q[3] : v;
                    *y++ = ($T)v;
                }
            }
        }
    }
}
