/* AVERAGE_POOL_2D / MAX_POOL_2D of int8 or int16 over the window clipped to the image,
 * as TFLM: the average sums raw values and rounds half away from zero.
 * g: in_h in_w ch out_h out_w k_h k_w s_h s_w pad_t pad_l batches is_max
 * q: activation min, max, the type's minimum (where a maximum starts) */
static void aot_pool_$S(const $T *x, $T *y, const int32_t *q, const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ch = g[2], oh = g[3], ow = g[4];
    const int32_t kh = g[5], kw = g[6], sh = g[7], sw = g[8], pt = g[9], pl = g[10];
    const int32_t nb = g[11], is_max = g[12], lo = q[0], hi = q[1];
    int32_t b, oy, ox, c, fy, fx;
    for (b = 0; b < nb; b++, x += ih * iw * ch) {
        for (oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * sh - pt;
            const int32_t fy0 = y0 < 0 ? -y0 : 0;
            const int32_t fy1 = kh < ih - y0 ? kh : ih - y0;
            for (ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * sw - pl;
                const int32_t fx0 = x0 < 0 ? -x0 : 0;
                const int32_t fx1 = kw < iw - x0 ? kw : iw - x0;
                const int32_t n = (fy1 - fy0) * (fx1 - fx0);
                for (c = 0; c < ch; c++) {
                    int32_t acc = is_max ? q[2] : 0;
                    for (fy = fy0; fy < fy1; fy++) {
                        const $T *xp = x + ((y0 + fy) * iw + x0) * ch + c;
                        for (fx = fx0; fx < fx1; fx++) {
                            const int32_t v = xp[fx * ch];
                            if (is_max) {
                                acc = v > acc ? v : acc;
                            } else {
                                acc += v;
                            }
                        }
                    }
                    if (!is_max) {
                        acc = acc > 0 ? (acc + n / 2) / n : (acc - n / 2) / n;
                    }
                    acc = acc < lo ? lo : acc;
                    acc = acc > hi ? hi : acc;
                    *y++ = ($T)acc;
                }
            }
        }
    }
}
