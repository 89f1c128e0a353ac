#include "model.h"

/* Model data as the AOT compiler lays it out: one object in the model section,
 * its weights first (the tests rewrite them at offset 0), then the model's hash. */
static const struct {
    int8_t bias[MODEL_OUTPUT_BYTES];
    uint8_t sha[32];
} D MODEL_SECTION = {{1, 2, 3, 4}, MODEL_SHA256_BYTES};

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
        output[i] = (int8_t)(input[i] + D.bias[i]);
    }
    return 0;
}

float model_input_scale(void) { return MODEL_INPUT_SCALE; }
int32_t model_input_zero_point(void) { return MODEL_INPUT_ZERO_POINT; }
float model_output_scale(void) { return MODEL_OUTPUT_SCALE; }
int32_t model_output_zero_point(void) { return MODEL_OUTPUT_ZERO_POINT; }

const uint8_t *model_model_sha256(void) {
    return D.sha;
}
