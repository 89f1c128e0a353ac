/* aot:requires fixedpoint */
/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128), TFLM's
 * fixed-point path: exp in Q0.31 of beta-scaled differences to the row max,
 * a Q12 sum, a reciprocal, and a rounding shift.
 * q: input multiplier, left shift, diff_min */
static void aot_softmax_s8(const int8_t *x, int8_t *y, const int32_t *q, int32_t rows,
                           int32_t depth)
{
    const int32_t mult = q[0], ls = q[1], diff_min = q[2];
    int32_t r, c;
    for (r = 0; r < rows; r++, x += depth, y += depth) {
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
        e = 12 - bits + 31 - 8;
        for (c = 0; c < depth; c++) {
            const int32_t d = x[c] - mx;
            int32_t out = -128;
            if (d >= diff_min) {
                const int32_t v = aot_exp_neg_q5(aot_srdhm((int32_t)((uint32_t)d << ls), mult));
                out = aot_rdbpot(aot_srdhm(scale, v), e) - 128;
                out = out > 127 ? 127 : out < -128 ? -128 : out;
            }
            y[c] = (int8_t)out;
        }
    }
}
