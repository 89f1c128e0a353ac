/* float32 elementwise: 0 ABS, 1 NEG, 2 SQRT, 3 RSQRT (1/sqrt, as TFLM), 4 RELU, 5 RELU6,
 * 6 RELU_N1_TO_1, 7 HARD_SWISH (x * min(6, max(0, x + 3)) / 6, in that order). The square root is computed exactly rounded from the bits (IEEE
 * sqrt, as std::sqrt), so no C library is needed. */
static float aot_sqrtf(float v)
{
    union {
        float f;
        uint32_t u;
    } c;
    uint64_t m, root = 0u, one = (uint64_t)1 << 50;
    int32_t e2, sh;
    uint32_t q;
    c.f = v;
    if ((c.u & 0x7FFFFFFFu) == 0u || c.u == 0x7F800000u || (c.u & 0x7FFFFFFFu) > 0x7F800000u) {
        return v; /* +-0, +inf, NaN */
    }
    if (c.u & 0x80000000u) {
        c.u = 0x7FC00000u; /* negative: NaN */
        return c.f;
    }
    m = c.u & 0x7FFFFFu;
    if ((c.u >> 23) == 0u) { /* subnormal: normalise */
        e2 = -126 - 23;
        while (!(m & 0x800000u)) {
            m <<= 1;
            e2--;
        }
    } else {
        m |= 0x800000u;
        e2 = (int32_t)(c.u >> 23) - 127 - 23;
    }
    /* v = m * 2^e2, m in [2^23, 2^24). Scale m so its square root has 25 bits: the 24 of
     * the result and one to round with. */
    if (e2 & 1) {
        m <<= 1;
        e2--;
        sh = 24;
    } else {
        sh = 26;
    }
    m <<= sh;
    while (one > m) {
        one >>= 2;
    }
    while (one) { /* integer square root, one bit per step */
        if (m >= root + one) {
            m -= root + one;
            root = (root >> 1) + one;
        } else {
            root >>= 1;
        }
        one >>= 2;
    }
    q = (uint32_t)(root >> 1);
    if ((root & 1u) && (m != 0u || (q & 1u))) { /* round to nearest, ties to even */
        q++;
    }
    c.u = ((uint32_t)((e2 - sh) / 2 + 24 + 127) << 23) + (q - 0x800000u);
    return c.f;
}

static void aot_unary_f32(const float *x, float *y, int32_t n, int32_t op)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        const float v = x[i];
        float r;
        switch (op) {
        case 0:
            r = v < 0.0f ? -v : v;
            break;
        case 1:
            r = -v;
            break;
        case 2:
            r = aot_sqrtf(v);
            break;
        case 3:
            r = 1.0f / aot_sqrtf(v);
            break;
        case 4:
            r = v > 0.0f ? v : 0.0f;
            break;
        case 5:
            r = v > 0.0f ? v : 0.0f;
            r = r < 6.0f ? r : 6.0f;
            break;
        case 6:
            r = v > -1.0f ? v : -1.0f;
            r = r < 1.0f ? r : 1.0f;
            break;
        default:
            r = v + 3.0f;
            r = r > 0.0f ? r : 0.0f;
            r = v * (r < 6.0f ? r : 6.0f) / 6.0f;
            break;
        }
        y[i] = r;
    }
}
