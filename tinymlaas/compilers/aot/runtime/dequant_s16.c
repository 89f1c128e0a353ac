/* DEQUANTIZE int16 -> float32: scale * (x - zp), rounded once (TFLM multiplies in
 * double; the exact product of a float and a 17-bit integer rounds the same).
 * q: scale, zero point (as float) */
static void aot_dequant_s16(const int16_t *x, float *y, const float *q, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = q[0] * (float)(x[i] - (int32_t)q[1]);
    }
}
