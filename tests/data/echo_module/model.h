/* A hand-written stand-in module for the firmware's own tests (not the AOT
 * compiler's output): out[i] = in[i] + bias[i]; input[0] == 127 traps, -128 fails,
 * 100 runs a loop of known length (see model.c). */
#ifndef MODEL_H
#define MODEL_H
#include <stdint.h>

#ifndef MODEL_SECTION
#define MODEL_SECTION
#endif

#define MODEL_SHA256 "echo"
#define MODEL_SHA256_BYTES {0}
#define MODEL_INPUT_BYTES 4
#define MODEL_OUTPUT_BYTES 4
#define MODEL_INPUT_SCALE 0.5f
#define MODEL_INPUT_ZERO_POINT -3
#define MODEL_OUTPUT_SCALE 0.25f
#define MODEL_OUTPUT_ZERO_POINT 0
#define MODEL_ARENA_BYTES 0

int model_invoke(const int8_t *input, int8_t *output);
float model_input_scale(void);
int32_t model_input_zero_point(void);
float model_output_scale(void);
int32_t model_output_zero_point(void);
const uint8_t *model_model_sha256(void);
/* Tensor k's quantization: 0 the input, 1 the output. */
static inline float model_tensor_scale(int32_t k)
{
    return k == 0 ? model_input_scale() : k == 1 ? model_output_scale() : 0.0f;
}
static inline int32_t model_tensor_zero_point(int32_t k)
{
    return k == 0 ? model_input_zero_point() : k == 1 ? model_output_zero_point() : 0;
}

#endif
