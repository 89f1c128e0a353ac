/* TRANSPOSE_CONV of float32. TFLM scatters each input pixel into a zeroed output; for one
 * output element that adds its contributions by input row, column and channel, the order
 * this gather sums them in; then the bias, then the activation's clamp.
 * g: as aot_tconv_s8 (per_channel and wide unused). q: min, max */
static void aot_tconv_f32(const float *x, float *y, const float *w, const float *bias,
                          const float *q, const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], oc = g[5];
    const int32_t kh = g[6], kw = g[7], sh = g[8], sw = g[9], pt = g[10], pl = g[11];
    const int32_t nb = g[12];
    int32_t b, oy, ox, o, iy, ix, c;
    for (b = 0; b < nb; b++, x += ih * iw * ic) {
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                for (o = 0; o < oc; o++) {
                    float acc = 0.0f;
                    for (iy = 0; iy < ih; iy++) {
                        const int32_t ky = oy + pt - iy * sh;
                        if (ky < 0 || ky >= kh) {
                            continue;
                        }
                        for (ix = 0; ix < iw; ix++) {
                            const int32_t kx = ox + pl - ix * sw;
                            const float *xp = x + (iy * iw + ix) * ic;
                            const float *wp = w + ((o * kh + ky) * kw + kx) * ic;
                            if (kx < 0 || kx >= kw) {
                                continue;
                            }
                            for (c = 0; c < ic; c++) {
                                acc += xp[c] * wp[c];
                            }
                        }
                    }
                    acc += bias[o];
                    acc = acc < q[0] ? q[0] : acc;
                    *y++ = acc > q[1] ? q[1] : acc;
                }
            }
        }
    }
}
