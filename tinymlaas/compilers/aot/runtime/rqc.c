/* aot:requires mbqm */
/* Requantization folded per channel. rq holds three int32 per output channel:
 * fast (every channel shifts right by 1..22 and every accumulator provably stays
 * below 2^30 in magnitude, checked at compile time): the multiplier m, the shift r
 * and H = 2^(r-1) + (output zero point << r). TFLite's double rounding
 *   RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, m), r) + zp
 * is then exactly (h + (h < 0 ? -1 : 0) + H) >> r with h = (2 acc m + 2^31) >> 32:
 * one rounding high multiply (SMMULR on DSP cores), an add of the sign, an add, a
 * shift. Otherwise: m, left and right shifts, as aot_mbqm_lr takes them, and the
 * zero point added after. lo/hi: the fused activation's bounds; act as in
 * aot_requant (0: int8's, 1: the lower one tighter, 2: both). */
AOT_SPECIALISE int32_t aot_rqc_high(int32_t acc, int32_t m)
{
#if defined(AOT_DSP) && !defined(AOT_EMULATE_DSP)
    int32_t h;
    __asm__("smmulr %0, %1, %2" : "=r"(h) : "r"((int32_t)((uint32_t)acc << 1)), "r"(m));
    return h;
#elif defined(AOT_MUL32_ONLY)
    return aot_mulhi(acc, m);
#else
    return (int32_t)(((int64_t)(int32_t)((uint32_t)acc << 1) * m + ((int64_t)1 << 31)) >> 32);
#endif
}

AOT_SPECIALISE int8_t aot_rqc(int32_t acc, const int32_t *rq, int32_t fast, int32_t zp,
                              int32_t lo, int32_t hi, int32_t act)
{
    int32_t v;
    if (fast) {
        const int32_t h = aot_rqc_high(acc, rq[0]);
        v = (h + (h >> 31) + rq[2]) >> rq[1];
    } else {
        v = aot_mbqm_lr(acc, rq[0], rq[1], rq[2]) + zp;
    }
#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__)
    v = __ssat(v, 8);
#else
    v = v < -128 ? -128 : v > 127 ? 127 : v;
#endif
    if (act >= 1) {
        v = v < lo ? lo : v;
    }
    if (act >= 2) {
        v = v > hi ? hi : v;
    }
    return (int8_t)v;
}
