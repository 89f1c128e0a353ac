/* aot:requires mbqm mathf */
/* L2_NORMALIZATION over the last axis. int8 (TFLM's): the squared sum's inverse square
 * root by gemmlowp's Newton-Raphson in Q3.28 as a multiplier and shift, output in 1/128
 * steps (zero point 0). float32: x / max(sqrt(sum of squares), 1e-6). */
static inline int32_t aot_l2_shl_sat(int32_t x, int32_t e)
{
    const int64_t v = (int64_t)x * ((int64_t)1 << e);
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

/* Q3.28 products are gemmlowp's rounding doubling high multiply (aot_mulhi: none of these
 * operands is INT32_MIN, where it would saturate). */
static void aot_invsqrt(int32_t v, int32_t *mult, int32_t *shift)
{
    int32_t s = 11, x = 1 << 28, pairs, half, i;
    if (v <= 1) {
        *mult = INT32_MAX;
        *shift = 0;
        return;
    }
    while (v >= (1 << 29)) {
        v /= 4;
        s++;
    }
    pairs = (__builtin_clz((uint32_t)v) - 1) / 2 - 1;
    s -= pairs;
    v <<= 2 * pairs;
    half = (v >> 2) + ((v >> 1) & 1);
    for (i = 0; i < 5; i++) {
        const int32_t x3 = aot_l2_shl_sat(aot_mulhi(aot_mulhi(x, x), x), 6);
        x = aot_l2_shl_sat((int32_t)((uint32_t)aot_mulhi((1 << 28) + (1 << 27), x) -
                                     (uint32_t)aot_mulhi(half, x3)), 3);
    }
    x = aot_mulhi(x, 1518500250);
    if (s < 0) {
        x = (int32_t)((uint32_t)x << -s);
        s = 0;
    }
    *mult = x;
    *shift = -s;
}

static void aot_l2norm(const void *in, void *out, int32_t zp, int32_t rows, int32_t depth,
                       int32_t is_float)
{
    int32_t r, c;
    for (r = 0; r < rows; r++) {
        if (is_float) {
            const float *x = (const float *)in + r * depth;
            float *y = (float *)out + r * depth, sq = 0.0f, n;
            for (c = 0; c < depth; c++) {
                sq += x[c] * x[c];
            }
            n = sqrtf(sq);
            n = n < 1e-6f ? 1e-6f : n;
            for (c = 0; c < depth; c++) {
                y[c] = x[c] / n;
            }
        } else {
            const int8_t *x = (const int8_t *)in + r * depth;
            int8_t *y = (int8_t *)out + r * depth;
            int32_t acc = 0, m, s, v;
            for (c = 0; c < depth; c++) {
                acc += (x[c] - zp) * (x[c] - zp);
            }
            aot_invsqrt(acc, &m, &s);
            for (c = 0; c < depth; c++) {
                v = aot_mbqm(x[c] - zp, m, s + 7);
                y[c] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
            }
        }
    }
}
