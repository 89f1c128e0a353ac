/* aot:requires base */
/* gemmlowp's SaturatingRoundingDoublingHighMul without the saturation (it only
 * saturates for INT32_MIN * INT32_MIN; multipliers are never negative): the
 * high half of 2*x*m, rounded by adding 2^30 and shifting arithmetically. A
 * core without a 64-bit multiply gets the same bits from 16-bit halves
 * (instead of a call to the C library's 64-bit multiply). */
static inline int32_t aot_mulhi(int32_t x, int32_t m)
{
#if defined(AOT_MUL32_ONLY)
    const int32_t xl = (int32_t)((uint32_t)x & 0xFFFFu), ml = (int32_t)((uint32_t)m & 0xFFFFu);
    const int32_t xh = x >> 16, mh = m >> 16;
    const uint32_t ll = (uint32_t)xl * (uint32_t)ml;
    const int32_t t = xh * ml + (int32_t)(ll >> 16);
    const int32_t w = (t & 0xFFFF) + xl * mh;
    const uint32_t hi = (uint32_t)(xh * mh + (t >> 16) + (w >> 16));
    const uint32_t lo = ((uint32_t)w << 16) | (ll & 0xFFFFu);
    const uint32_t lo2 = lo + (1u << 30);
    return (int32_t)(((hi + (lo2 < lo)) << 1) | (lo2 >> 31));
#else
    return (int32_t)(((int64_t)x * m + ((int64_t)1 << 30)) >> 31);
#endif
}

/* TFLite's double-rounding MultiplyByQuantizedMultiplier with its shift split
 * into the left shift (before the multiply) and the right shift (after it; it
 * rounds halves away from zero). At most one of them is non-zero. */
AOT_SPECIALISE int32_t aot_mbqm_lr(int32_t x, int32_t m, int32_t left, int32_t right)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
    x = aot_mulhi((int32_t)((uint32_t)x << left), m);
    return (x >> right) + ((x & mask) > ((mask >> 1) + (x < 0)));
}

/* The same with TFLite's signed shift (positive: left). */
AOT_SPECIALISE int32_t aot_mbqm(int32_t x, int32_t m, int32_t shift)
{
    return aot_mbqm_lr(x, m, shift > 0 ? shift : 0, shift > 0 ? 0 : -shift);
}

/* What requantizing one layer's accumulators needs: multipliers and left and
 * right shifts per channel (or one of each), output zero point, activation
 * bounds. Loaded before any output is stored (int8 stores may alias anything). */
struct aot_rq {
    const int32_t *mult;
    const int8_t *left, *right;
    int32_t m, l, r, zp, lo, hi;
};

AOT_SPECIALISE struct aot_rq aot_rq_load(const int32_t *mult, const int8_t *left,
                                         const int8_t *right, const int32_t *q)
{
    struct aot_rq rq;
    rq.mult = mult;
    rq.left = left;
    rq.right = right;
    rq.m = mult[0];
    rq.l = left[0];
    rq.r = right[0];
    rq.zp = q[0];
    rq.lo = q[1];
    rq.hi = q[2];
    return rq;
}

/* Requantize the accumulator of channel c to int8: mbqm, the output zero
 * point, then the fused activation's clamp. per_channel and act are structure
 * (act: 0 none, 1 RELU, 2 a range such as RELU6: which bounds can be tighter
 * than int8's). */
AOT_SPECIALISE int8_t aot_requant(int32_t acc, const struct aot_rq *rq, int32_t c,
                                  int32_t per_channel, int32_t act)
{
    int32_t v;
    if (per_channel) {
        v = aot_mbqm_lr(acc, rq->mult[c], rq->left[c], rq->right[c]);
    } else {
        v = aot_mbqm_lr(acc, rq->m, rq->l, rq->r);
    }
    v += rq->zp;
    if (act >= 1) {
        v = v < rq->lo ? rq->lo : v;
    } else {
        v = v < -128 ? -128 : v;
    }
    if (act >= 2) {
        v = v > rq->hi ? rq->hi : v;
    } else {
        v = v > 127 ? 127 : v;
    }
    return (int8_t)v;
}

/* TFLite's MultiplyByQuantizedMultiplier for a 64-bit accumulator (16x8 kernels):
 * the multiplier rounded to its top 16 bits, then one rounding shift. */
static inline int32_t aot_mbqm64(int64_t x, int32_t m, int32_t shift)
{
    const int32_t reduced = m < 0x7FFF0000 ? (m + (1 << 15)) >> 16 : 0x7FFF;
    const int32_t total = 15 - shift;
    return (int32_t)((x * reduced + ((int64_t)1 << (total - 1))) >> total);
}
