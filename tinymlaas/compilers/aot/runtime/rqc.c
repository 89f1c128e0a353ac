/* aot:requires mbqm */
/* Requantization folded per channel. rq holds three int32 per output channel:
 * fast (every channel shifts right by 1..22 and every accumulator provably stays
 * below 2^30 in magnitude, checked at compile time): the multiplier m, the shift r
 * and H = 2^(r-1) + (output zero point << r). TFLite's double rounding
 *   RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, m), r) + zp
 * is then exactly (h + H - (acc < 0)) >> r with h = (2 acc m + 2^31) >> 32 (the sign
 * of acc stands for h's: they differ only where h = 0, and there both give zp): on
 * DSP cores one SMMLAR (h + H), an add of the sign, a shift. fast = 2: the
 * accumulator comes doubled already (its weights and bias are, or its columns).
 * Otherwise (fast = 0): m, left and right shifts, as aot_mbqm_lr takes them, and the
 * zero point added after. lo/hi: the fused activation's bounds; act as in
 * aot_requant (0: int8's, 1: the lower one tighter, 2: both). */
AOT_SPECIALISE int32_t aot_rqc_fast(int32_t acc, int32_t m, int32_t r, int32_t big_h,
                                    int32_t doubled)
{
#if defined(AOT_MUL32_ONLY)
    const int32_t a = doubled ? acc >> 1 : acc; /* a doubled accumulator is even */
    return (aot_mulhi(a, m) + big_h + (a >> 31)) >> r;
#else
    const int32_t acc2 = doubled ? acc : (int32_t)((uint32_t)acc << 1);
#if defined(AOT_DSP) && !defined(AOT_EMULATE_DSP)
    int32_t u;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(u) : "r"(acc2), "r"(m), "r"(big_h));
    return (u + (acc2 >> 31)) >> r;
#else
    const int64_t p = (int64_t)acc2 * m;
    const int32_t h = (int32_t)(p >> 32) + (int32_t)((uint32_t)p >> 31);
    return (h + big_h + (acc2 >> 31)) >> r;
#endif
#endif
}

/* One channel's three requantization numbers, loaded before any output is stored
 * (int8 stores may alias anything). */
struct aot_rqp {
    int32_t a, b, c;
};

AOT_SPECIALISE struct aot_rqp aot_rqp_load(const int32_t *rq)
{
    struct aot_rqp p;
    p.a = rq[0];
    p.b = rq[1];
    p.c = rq[2];
    return p;
}

AOT_SPECIALISE int8_t aot_rqc_p(int32_t acc, struct aot_rqp p, int32_t fast, int32_t zp,
                                int32_t lo, int32_t hi, int32_t act)
{
    int32_t v;
    if (fast) {
        v = aot_rqc_fast(acc, p.a, p.b, p.c, fast == 2);
    } else {
        v = aot_mbqm_lr(acc, p.a, p.b, p.c) + zp;
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

AOT_SPECIALISE int8_t aot_rqc(int32_t acc, const int32_t *rq, int32_t fast, int32_t zp,
                              int32_t lo, int32_t hi, int32_t act)
{
    return aot_rqc_p(acc, aot_rqp_load(rq), fast, zp, lo, hi, act);
}
