/* Compiler hints for the kernels. A kernel marked "aot:specialise" is
 * instantiated once per distinct layer structure with its shapes as
 * constants: always inlining the generic body into that instance is what lets
 * the compiler fold them. Loops over a constant depth are unrolled where
 * speed is asked for (not at -Os, where size wins). */
#if defined(__GNUC__)
#define AOT_SPECIALISE static inline __attribute__((always_inline))
#else
#define AOT_SPECIALISE static inline
#endif
#if defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__) && (__GNUC__ >= 8 || defined(__clang__))
#define AOT_UNROLL _Pragma("GCC unroll 16")
#else
#define AOT_UNROLL
#endif
/* Cores without a 32x32 -> 64-bit multiply (ARMv6-M, ARMv8-M Baseline). */
#if !defined(AOT_MUL32_ONLY) && defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_ISA_THUMB == 1 && \
    !defined(__ARM_ARCH_ISA_ARM)
#define AOT_MUL32_ONLY 1
#endif
