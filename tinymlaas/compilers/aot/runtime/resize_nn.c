/* RESIZE_NEAREST_NEIGHBOR: each output pixel copies the input pixel the source row
 * and column tables name (computed at compile time as TFLM computes them).
 * g: batches, out_h, out_w, input row bytes, pixel bytes, input batch bytes */
static void aot_resize_nn(const void *x, void *y, const int16_t *ys, const int16_t *xs,
                          const int32_t *g)
{
    const uint8_t *in = (const uint8_t *)x;
    uint8_t *out = (uint8_t *)y;
    const size_t pix = (size_t)g[4];
    int32_t b, oy, ox;
    for (b = 0; b < g[0]; b++, in += g[5]) {
        for (oy = 0; oy < g[1]; oy++) {
            const uint8_t *row = in + ys[oy] * g[3];
            for (ox = 0; ox < g[2]; ox++, out += pix) {
                memcpy(out, row + xs[ox] * g[4], pix);
            }
        }
    }
}
