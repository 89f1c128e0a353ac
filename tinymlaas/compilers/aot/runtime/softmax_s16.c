/* aot:requires mbqm */
/* SOFTMAX int16 -> int16 (zero points 0, output scale 2^-15), TFLM's: differences to the
 * row max rescaled onto [-10, 0], exp read from a 513-entry table by its top 9 bits and
 * interpolated on the other 7, the sum's reciprocal from a second table, a rounding shift.
 * q: input multiplier, shift */
static inline int16_t aot_lut513(int32_t v, const int16_t *lut)
{
    const int32_t i = 256 + (v >> 7), off = v & 0x7F;
    const int16_t slope = (int16_t)(lut[i + 1] - lut[i]);
    return (int16_t)(lut[i] + ((slope * off + 64) >> 7));
}

static void aot_softmax_s16(const int16_t *x, int16_t *y, const int16_t *exp_lut,
                            const int16_t *recip_lut, const int32_t *q, int32_t rows,
                            int32_t depth)
{
    int32_t r, c;
    for (r = 0; r < rows; r++, x += depth, y += depth) {
        int32_t mx = -32768, sum = 0, h, v, right;
        for (c = 0; c < depth; c++) {
            mx = x[c] > mx ? x[c] : mx;
        }
        for (c = 0; c < depth; c++) {
            v = aot_mbqm(x[c] - mx, q[0], q[1]) + 32767;
            y[c] = aot_lut513(v < -32768 ? -32768 : v > 32767 ? 32767 : v, exp_lut);
            sum += y[c];
        }
        h = sum ? __builtin_clz((uint32_t)sum) : 32;
        v = (int32_t)((((int64_t)sum << (h - 1)) + (1 << 13)) >> 14) - ((1 << 15) + (1 << 16));
        v = aot_lut513(v < -32768 ? -32768 : v > 32767 ? 32767 : v, recip_lut);
        right = 31 - h;
        for (c = 0; c < depth; c++) {
            int32_t o = (int32_t)(((int64_t)y[c] * v + (1 << (right - 1))) >> right);
            y[c] = (int16_t)(o < 0 ? 0 : o > 32767 ? 32767 : o);
        }
    }
}
