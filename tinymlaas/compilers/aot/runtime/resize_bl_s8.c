/* RESIZE_BILINEAR of int8 as TFLM's integer kernel: source rows and columns in 10-bit
 * fixed point (tables made at compile time: lower, upper and the upper weight), the
 * four weighted neighbours summed (at most 2^29, so 32 bits do), rounded half away
 * from zero by 2^20. g: batches, in_h, in_w, depth, out_h, out_w */
static void aot_resize_bl_s8(const int8_t *x, int8_t *y, const int32_t *ys, const int32_t *xs,
                             const int32_t *g)
{
    const int32_t ih = g[1], iw = g[2], ch = g[3], oh = g[4], ow = g[5];
    int32_t b, oy, ox, c;
    for (b = 0; b < g[0]; b++, x += ih * iw * ch) {
        for (oy = 0; oy < oh; oy++) {
            const int32_t y0 = ys[3 * oy], y1 = ys[3 * oy + 1], wy = ys[3 * oy + 2];
            for (ox = 0; ox < ow; ox++) {
                const int32_t x0 = xs[3 * ox], x1 = xs[3 * ox + 1], wx = xs[3 * ox + 2];
                const int8_t *p00 = x + (y0 * iw + x0) * ch, *p10 = x + (y1 * iw + x0) * ch;
                const int8_t *p01 = x + (y0 * iw + x1) * ch, *p11 = x + (y1 * iw + x1) * ch;
                for (c = 0; c < ch; c++) {
                    const int32_t v = p00[c] * (1024 - wy) * (1024 - wx) +
                                      p10[c] * wy * (1024 - wx) + p01[c] * (1024 - wy) * wx +
                                      p11[c] * wy * wx;
                    *y++ = (int8_t)((v + (v > 0 ? 1 << 19 : -(1 << 19))) / (1 << 20));
                }
            }
        }
    }
}
