/* Compiler hints for the kernels. A kernel marked "aot:specialise" is
 * instantiated once per distinct layer structure with its shapes as
 * constants: always inlining the generic body into that instance is what lets
 * the compiler fold them. Loops over a constant depth are unrolled where
 * speed is asked for (at -Os, where size wins, only twice). */
#if defined(__GNUC__)
#define AOT_SPECIALISE static inline __attribute__((always_inline))
#else
#define AOT_SPECIALISE static inline
#endif
#if defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__) && (__GNUC__ >= 8 || defined(__clang__))
#define AOT_UNROLL _Pragma("GCC unroll 16")
#elif defined(__GNUC__) && (__GNUC__ >= 8 || defined(__clang__))
/* Where size wins, twice: it halves the loop overhead (add, compare, branch per step)
 * of the multiply-accumulate loops for a few bytes. */
#define AOT_UNROLL _Pragma("GCC unroll 2")
#else
#define AOT_UNROLL
#endif
/* Cores without a 32x32 -> 64-bit multiply (ARMv6-M, ARMv8-M Baseline). */
#if !defined(AOT_MUL32_ONLY) && defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_ISA_THUMB == 1 && \
    !defined(__ARM_ARCH_ISA_ARM)
#define AOT_MUL32_ONLY 1
#endif
/* Two int8 multiply-accumulates per instruction on cores with the DSP extension
 * (ARMv7E-M): four bytes loaded at once, sign-extended in pairs (SXTB16, of
 * bytes 0/2 and, rotated, 1/3), multiplied and summed (SMLAD). Integer sums
 * wrap the same in any order, so this is bit-exact with one product at a time.
 * AOT_EMULATE_DSP builds the same data flow in portable C (host tests). */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(AOT_EMULATE_DSP)
#include <arm_acle.h>
#define AOT_DSP 1
#define aot_sxtb16(v) ((uint32_t)__sxtb16((int32_t)(v)))
#define aot_smlad(a, b, acc) __smlad((int32_t)(a), (int32_t)(b), (acc))
#define aot_smlabb(a, b, acc) __smlabb((int32_t)(a), (int32_t)(b), (acc))
#define aot_sadd16(a, b) ((uint32_t)__sadd16((int16x2_t)(a), (int16x2_t)(b)))
#define aot_smlatt(a, b, acc) __smlatt((int32_t)(a), (int32_t)(b), (acc))
static inline uint32_t aot_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
#elif defined(AOT_EMULATE_DSP)
#define AOT_DSP 1
static inline uint32_t aot_sxtb16(uint32_t v)
{
    return ((uint32_t)(int32_t)(int8_t)(v & 0xFFu) & 0xFFFFu) |
           ((uint32_t)(int32_t)(int8_t)((v >> 16) & 0xFFu) << 16);
}
static inline uint32_t aot_sxtb16_ror8(uint32_t v)
{
    return aot_sxtb16((v >> 8) | (v << 24));
}
static inline int32_t aot_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    const int32_t lo = (int32_t)(int16_t)(a & 0xFFFFu) * (int16_t)(b & 0xFFFFu);
    const int32_t hi = (int32_t)(int16_t)(a >> 16) * (int16_t)(b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
}
static inline uint32_t aot_sadd16(uint32_t a, uint32_t b)
{
    return ((a + b) & 0xFFFFu) | (((a >> 16) + (b >> 16)) << 16);
}
static inline int32_t aot_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return aot_smlad(a & 0xFFFFu, b & 0xFFFFu, acc);
}
static inline int32_t aot_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return aot_smlad(a >> 16, b >> 16, acc);
}
#endif
#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__) && !defined(AOT_DSP)
#include <arm_acle.h> /* __ssat */
#endif
/* Which multiply-accumulate data flow the convolution kernels take: dual 16-bit MACs
 * (DSP), a 64-bit accumulate of two packed pixels (ARMv7-M and hosts: SMLAL), or
 * one 32-bit multiply a product (ARMv6-M). Hosts can be built with either of the
 * others (AOT_EMULATE_DSP, AOT_MUL32_ONLY) to test their data flow. */
#if defined(AOT_DSP)
#define AOT_MAC_Q15 1
#elif defined(AOT_MUL32_ONLY)
#define AOT_MAC_S8 1
#else
#define AOT_MAC_PAIRS 1
#endif
#if defined(AOT_DSP)
/* Four int8 values at any alignment (one LDR on ARMv7E-M, even freestanding). */
static inline uint32_t aot_load4(const int8_t *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}
/* Bytes 0 and 2, and bytes 1 and 3, of four int8 values as two int16 pairs. */
#define aot_even(v) aot_sxtb16(v)
#define aot_odd(v) aot_sxtb16_ror8(v)
#endif
