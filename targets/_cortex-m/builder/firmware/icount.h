/* Instructions executed, measured with SysTick on the processor clock.
 *
 * Under QEMU's -icount every instruction advances virtual time by the same
 * 2^shift ns, so SysTick ticks are proportional to instructions. At boot the
 * ratio is calibrated with a subs/bne loop run for two lengths (the difference
 * is exactly 2 * (N2 - N1) instructions, so the call overhead cancels), and the
 * cost of the timed call itself is measured on a two-instruction function. A
 * measured call therefore reports the instructions from the callee's entry to
 * its return, inclusive, as a single-step trace counts them. */
#ifndef TINYMLAAS_ICOUNT_H
#define TINYMLAAS_ICOUNT_H
#include <stdint.h>

typedef struct {
    uint32_t loop_instructions; /* 2 * (N2 - N1) */
    uint32_t loop_ticks;        /* ticks those instructions took */
    uint32_t call_ticks;        /* ticks of timing a two-instruction function */
} icount_calibration;

typedef int (*icount_fn)(const int8_t *input, int8_t *output);

void icount_init(void);
const icount_calibration *icount_calibration_get(void);
/* Calls f(input, output), stores its result in *rc, returns its instructions. */
uint32_t icount_call(icount_fn f, const int8_t *input, int8_t *output, int *rc);

#endif
