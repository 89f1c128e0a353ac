/* TFLM's int16 sigmoid and tanh: a 256-entry table of sigmoid in 0.16 fixed point,
 * linearly interpolated on the input's absolute value (tanh(x) = 2 sigmoid(2x) - 1
 * shares it). x is the input already rescaled by the op's multiplier and shift:
 * sigmoid reads its table in steps of 2^9, tanh in steps of 2^8. */
static inline int16_t aot_sigmoid16(int32_t x, const uint16_t *lut)
{
    const uint32_t a = (uint32_t)(x < 0 ? -x : x), uh = a >> 9;
    uint32_t r;
    if (uh >= 255u) {
        r = 0x7FFFu << 10;
    } else {
        const uint32_t ua = lut[uh], ub = lut[uh + 1u];
        r = (ua << 9) + (a & 0x1FFu) * (ub - ua);
    }
    r = x >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
    return (int16_t)(r >> 10);
}

static inline int16_t aot_tanh16(int32_t x, const uint16_t *lut)
{
    const uint32_t a = (uint32_t)(x < 0 ? -x : x), uh = a >> 8;
    int32_t r;
    if (uh >= 255u) {
        r = 0xFFFF << 8;
    } else {
        const uint32_t ua = lut[uh], ub = lut[uh + 1u];
        r = (int32_t)((ua << 8) + (a & 0xFFu) * (ub - ua));
    }
    r = x >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
    return (int16_t)(r >> 8);
}
