/* RESIZE_BILINEAR of float32 as TFLM's reference: the four neighbours weighted in its
 * order of operations (then + 0.0f, as its rounding offset for floats).
 * ys, xs: lower and upper index per output row / column; fy, fx: 1 - d and d per row /
 * column (computed at compile time in float32). g: batches, in_h, in_w, channels, out_h,
 * out_w */
static void aot_resize_bl_f32(const float *x, float *y, const int32_t *ys, const int32_t *xs,
                              const float *fy, const float *fx, const int32_t *g)
{
    const int32_t ih = g[1], iw = g[2], ch = g[3], oh = g[4], ow = g[5];
    int32_t b, oy, ox, c;
    for (b = 0; b < g[0]; b++, x += ih * iw * ch) {
        for (oy = 0; oy < oh; oy++) {
            const float *r0 = x + ys[2 * oy] * iw * ch, *r1 = x + ys[2 * oy + 1] * iw * ch;
            const float wy = fy[2 * oy], dy = fy[2 * oy + 1];
            for (ox = 0; ox < ow; ox++) {
                const int32_t x0 = xs[2 * ox] * ch, x1 = xs[2 * ox + 1] * ch;
                const float wx = fx[2 * ox], dx = fx[2 * ox + 1];
                for (c = 0; c < ch; c++) {
                    *y++ = r0[x0 + c] * wy * wx + r1[x0 + c] * dy * wx + r0[x1 + c] * wy * dx +
                           r1[x1 + c] * dy * dx + 0.0f;
                }
            }
        }
    }
}
