#include <math.h>
/* float32 exp and tanh come from the C library, as TFLM's reference kernels take them: on
 * one platform both give the same bits. Sigmoid as TFLM's: 1 above its upper cut-off,
 * exp(x) below -9, else 1 / (1 + exp(-x)). */
static inline float aot_sigmoidf(float v)
{
    if (v > 16.619047164916992188f) {
        return 1.0f;
    }
    return v < -9.0f ? expf(v) : 1.0f / (1.0f + expf(-v));
}
