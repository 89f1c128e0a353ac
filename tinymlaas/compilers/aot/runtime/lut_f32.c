/* DEQUANTIZE int8 -> float32 as a 256-entry table of TFLM's results. */
static void aot_lut_f32(const int8_t *x, float *y, const float *lut, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = lut[(uint8_t)x[i]];
    }
}
