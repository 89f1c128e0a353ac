/* aot:requires fixedpoint */
/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128) or int16 (out_bits 16:
 * scale 1/65536, zero point -32768), TFLM's fixed-point path: exp in Q0.31 of
 * beta-scaled differences to the row max, a Q12 sum, a reciprocal, and a rounding
 * shift. q: input multiplier, left shift, diff_min */
static void aot_softmax_s8(const int8_t *x, void *out, const int32_t *q, int32_t rows,
                           int32_t depth, int32_t out_bits)
{
    const int32_t mult = q[0], ls = q[1], diff_min = q[2];
    const int32_t lo = out_bits == 16 ? -32768 : -128, hi = -lo - 1;
    int8_t *y8 = (int8_t *)out;
    int16_t *y16 = (int16_t *)out;
    int32_t r, c;
    for (r = 0; r < rows; r++, x += depth) {
        int32_t mx = -128, sum = 0, bits, scale, e;
        uint32_t shifted;
        for (c = 0; c < depth; c++) {
            mx = x[c] > mx ? x[c] : mx;
        }
        for (c = 0; c < depth; c++) {
            const int32_t d = x[c] - mx;
            if (d >= diff_min) {
                const int32_t v = aot_exp_neg_q5(aot_srdhm((int32_t)((uint32_t)d << ls), mult));
                sum = aot_add(sum, aot_rdbpot(v, 12));
            }
        }
        bits = __builtin_clz((uint32_t)sum);
        shifted = ((uint32_t)sum << bits) - ((uint32_t)1 << 31);
        scale = aot_one_over_one_plus_x((int32_t)shifted);
        e = 12 - bits + 31 - out_bits;
        for (c = 0; c < depth; c++) {
            const int32_t d = x[c] - mx;
            int32_t v = lo;
            if (d >= diff_min) {
                v = aot_exp_neg_q5(aot_srdhm((int32_t)((uint32_t)d << ls), mult));
                v = aot_rdbpot(aot_srdhm(scale, v), e) + lo;
                v = v > hi ? hi : v < lo ? lo : v;
            }
            if (out_bits == 16) {
                *y16++ = (int16_t)v;
            } else {
                *y8++ = (int8_t)v;
            }
        }
    }
}
