#include "icount.h"

#include "cortex_m.h"

#define N1 1000u
#define N2 21000u
#define NULL_FN_INSTRUCTIONS 2u
#define WRAP_HANDLER_INSTRUCTIONS 5u

volatile uint32_t icount_wraps;
static icount_calibration calib;

/* Counts 2^24-tick wraps in exactly WRAP_HANDLER_INSTRUCTIONS instructions, which a
 * measurement that spans a wrap subtracts again. */
__attribute__((naked)) void SysTick_Handler(void) {
    __asm__ volatile(
        ".syntax unified\n"
        "ldr r0, =icount_wraps\n"
        "ldr r1, [r0]\n"
        "adds r1, r1, #1\n"
        "str r1, [r0]\n"
        "bx lr\n"
        ".ltorg\n");
}

/* Exactly two instructions per iteration. */
__attribute__((noinline)) static void spin(uint32_t n) {
    __asm__ volatile(".syntax unified\n1: subs %0, %0, #1\n bne 1b" : "+l"(n) : : "cc");
}

/* Exactly NULL_FN_INSTRUCTIONS instructions: the reference for the call overhead. */
__attribute__((naked, noinline)) static int null_fn(const int8_t *input, int8_t *output) {
    (void)input;
    (void)output;
    __asm__ volatile(".syntax unified\nmovs r0, #0\nbx lr\n");
}

static uint64_t ticks(void) {
    uint32_t w, v;
    do {
        w = icount_wraps;
        v = SYST_CVR;
    } while (w != icount_wraps);
    return ((uint64_t)w << 24) | (0xFFFFFFu - v);
}

/* Not inlined: both loop lengths must be loaded and called by the same instructions. */
__attribute__((noinline)) static uint64_t measure_spin(uint32_t n) {
    uint64_t t0 = ticks();
    spin(n);
    return ticks() - t0;
}

/* One code path for every timed call, so the overhead is the same each time. */
__attribute__((noinline)) static uint64_t timed_call(icount_fn f, const int8_t *input,
                                                     int8_t *output, int *rc) {
    uint64_t t0 = ticks();
    *rc = f(input, output);
    return ticks() - t0;
}

void icount_init(void) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* enable, interrupt on wrap, processor clock */
    uint64_t a = measure_spin(N1);
    uint64_t b = measure_spin(N2);
    calib.loop_instructions = 2u * (N2 - N1);
    calib.loop_ticks = (uint32_t)(b - a);
    int rc;
    calib.call_ticks = (uint32_t)timed_call(null_fn, 0, 0, &rc);
}

const icount_calibration *icount_calibration_get(void) { return &calib; }

uint32_t icount_call(icount_fn f, const int8_t *input, int8_t *output, int *rc) {
    uint32_t w0 = icount_wraps;
    uint64_t t = timed_call(f, input, output, rc);
    uint32_t handled = (icount_wraps - w0) * WRAP_HANDLER_INSTRUCTIONS;
    t = t > calib.call_ticks ? t - calib.call_ticks : 0u;
    uint32_t n = (uint32_t)((t * calib.loop_instructions + calib.loop_ticks / 2u) /
                            calib.loop_ticks);
    return (n > handled ? n - handled : 0u) + NULL_FN_INSTRUCTIONS;
}
