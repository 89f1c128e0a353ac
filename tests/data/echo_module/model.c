#include "model.h"

static const int8_t bias[MODEL_OUTPUT_BYTES] MODEL_SECTION = {1, 2, 3, 4};

/* input[0] == 100: a loop of exactly 2 * (input[1] * 256) instructions, the
 * known length the instruction counts are validated against. */
static void spin(uint32_t n) {
    if (n) {
        __asm__ volatile(".syntax unified\n1: subs %0, %0, #1\n bne 1b" : "+l"(n) : : "cc");
    }
}

int model_invoke(const int8_t *input, int8_t *output) {
    if (input[0] == 127) {
        __builtin_trap();
    }
    if (input[0] == -128) {
        return 5;
    }
    if (input[0] == 100) {
        spin((uint32_t)(uint8_t)input[1] * 256u);
    }
    for (int i = 0; i < MODEL_OUTPUT_BYTES; i++) {
        output[i] = (int8_t)(input[i] + bias[i]);
    }
    return 0;
}
