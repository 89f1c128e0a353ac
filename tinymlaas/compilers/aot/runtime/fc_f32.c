/* FULLY_CONNECTED float32, summed in TFLM's order (no fused multiply-add). */
static void aot_fc_f32(const float *x, float *y, const float *w, const float *bias,
                       const float *q, int32_t rows, int32_t depth, int32_t units)
{
    const float lo = q[0], hi = q[1];
    int32_t r, u, d;
    for (r = 0; r < rows; r++, x += depth) {
        const float *wr = w;
        for (u = 0; u < units; u++, wr += depth) {
            float acc = 0.0f;
            for (d = 0; d < depth; d++) {
                acc += x[d] * wr[d];
            }
            acc += bias[u];
            acc = acc < lo ? lo : acc;
            acc = acc > hi ? hi : acc;
            *y++ = acc;
        }
    }
}
