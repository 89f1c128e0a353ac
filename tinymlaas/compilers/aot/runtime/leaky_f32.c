/* LEAKY_RELU of float32: x if x > 0, else x * alpha (TFLM's reference). */
static void aot_leaky_f32(const float *x, float *y, const float *alpha, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = x[i] > 0.0f ? x[i] : x[i] * alpha[0];
    }
}
