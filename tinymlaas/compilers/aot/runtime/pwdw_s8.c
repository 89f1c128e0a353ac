/* aot:requires convg_s8 dwg_s8 */
/* aot:specialise */
/* A 1x1 CONV_2D whose only reader is a DEPTHWISE_CONV_2D, in one pass: the depthwise
 * band's rows (dwg_s8.c) are computed by the pointwise conv (convg_s8.c) as the window
 * reaches them, so the pointwise output, often the model's largest tensor, is never
 * stored whole. Input rows are read once, in order, when the band takes their row.
 * pw..pg: the pointwise conv's weights, bias, requantization, q, column buffer and
 * structure; the rest as in aot_dwg_s8 (one batch). */
AOT_SPECIALISE void aot_pwdw_s8(const int8_t *x, int8_t *y, const int8_t *pw, const int32_t *pb,
                                const int32_t *prq, const int32_t *pq, void *cols,
                                const int16_t *pg, const uint32_t *w, const int32_t *bias,
                                const int32_t *rq, const int32_t *q, void *rows,
                                const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], kh = g[5];
    const int32_t sh = g[7], pt = g[9], pl = g[10], bw = g[12], row_words = bw * ic / 4;
    const int32_t right = bw - pl - iw;
    const uint32_t pad4 = ((uint32_t)q[0] & 0xFFu) * 0x01010101u;
    uint32_t *const band = (uint32_t *)rows;
    int32_t oy, k, i;
    for (oy = 0; oy < oh; oy++, y += ow * ic) {
        for (k = aot_dw_advance(band, oy, g); k < kh; k++) {
            uint32_t *row = band + k * row_words;
            const int32_t iy = oy * sh + k - pt;
            if (iy < 0 || iy >= ih) {
                for (i = 0; i < row_words; i++) {
                    row[i] = pad4;
                }
                continue;
            }
            for (i = 0; i < pl * ic / 4; i++) {
                row[i] = pad4;
            }
            aot_convg_row(x, (int8_t *)(row + pl * ic / 4), pw, pb, prq, pq, cols, pg, iy);
            for (i = 0; i < right * ic / 4; i++) {
                row[(pl + iw) * ic / 4 + i] = pad4;
            }
        }
        aot_dw_row((const int8_t *)band, y, w, bias, rq, q, g);
    }
}
