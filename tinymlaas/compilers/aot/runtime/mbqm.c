/* TFLite's double-rounding MultiplyByQuantizedMultiplier: the high half of
 * 2*x*m rounded (gemmlowp's nudge reduces to +2^30 then an arithmetic shift),
 * then a rounding right shift that rounds halves away from zero. m >= 0 always,
 * so the one saturating case (both INT32_MIN) cannot occur. */
static inline int32_t aot_mbqm(int32_t x, int32_t m, int32_t shift)
{
    int32_t r = 0, mask, rem, thr;
    int64_t ab;
    if (shift > 0) {
        x = (int32_t)((uint32_t)x << shift);
    } else {
        r = -shift;
    }
    ab = (int64_t)x * m;
    x = (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
    mask = (int32_t)(((uint32_t)1 << r) - 1u);
    rem = x & mask;
    thr = (mask >> 1) + (x < 0);
    return (x >> r) + (rem > thr);
}
