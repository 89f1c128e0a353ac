/* aot:requires mathf */
/* SOFTMAX of float32 as TFLM's reference: exp((x - row max) * beta) summed in order, then
 * each divided by the sum. */
static void aot_softmax_f32(const float *x, float *y, const float *beta, int32_t rows,
                            int32_t depth)
{
    int32_t r, c;
    for (r = 0; r < rows; r++, x += depth, y += depth) {
        float mx = -3.40282347e+38f, sum = 0.0f;
        for (c = 0; c < depth; c++) {
            mx = mx < x[c] ? x[c] : mx;
        }
        for (c = 0; c < depth; c++) {
            y[c] = expf((x[c] - mx) * beta[0]);
            sum += y[c];
        }
        for (c = 0; c < depth; c++) {
            y[c] = y[c] / sum;
        }
    }
}
