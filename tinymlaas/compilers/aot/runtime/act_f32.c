/* aot:requires mathf */
/* LOGISTIC (is_tanh = 0) or TANH (1) of float32, elementwise. */
static void aot_act_f32(const float *x, float *y, int32_t n, int32_t is_tanh)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = is_tanh ? tanhf(x[i]) : aot_sigmoidf(x[i]);
    }
}
