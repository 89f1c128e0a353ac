/* aot:requires mbqm */
/* BATCH_MATMUL of int8 (32-bit sums) or int16 (64-bit sums, the 16-bit-multiplier
 * rescale), TFLM's: each output (a - zp_a)(b - zp_b) summed over the depth, requantized.
 * Up to three batch dimensions broadcast (stride 0); adjoints are strides.
 * g: n0 n1 n2, lhs batch strides (3), rhs batch strides (3), M N K, lhs row and depth
 *    strides, rhs depth and column strides
 * q: -zp_a, -zp_b, multiplier, shift, zp_out */
static void aot_bmm_$S(const $T *a, const $T *b, $T *y, const int32_t *q, const int32_t *g)
{
    const int32_t lo = sizeof($T) == 1 ? -128 : -32768, hi = -lo - 1;
    int32_t i0, i1, i2, i, j, k;
    for (i0 = 0; i0 < g[0]; i0++) {
        for (i1 = 0; i1 < g[1]; i1++) {
            for (i2 = 0; i2 < g[2]; i2++) {
                const $T *pa = a + i0 * g[3] + i1 * g[4] + i2 * g[5];
                const $T *pb = b + i0 * g[6] + i1 * g[7] + i2 * g[8];
                for (i = 0; i < g[9]; i++) {
                    for (j = 0; j < g[10]; j++) {
                        int64_t acc = 0;
                        int32_t v;
                        for (k = 0; k < g[11]; k++) {
                            acc += (int32_t)(pa[i * g[12] + k * g[13]] + q[0]) *
                                   (pb[k * g[14] + j * g[15]] + q[1]);
                        }
                        v = sizeof($T) == 1
                                ? aot_mbqm((int32_t)(uint32_t)(uint64_t)acc, q[2], q[3])
                                : aot_mbqm64(acc, q[2], q[3]);
                        v += q[4];
                        *y++ = ($T)(v < lo ? lo : v > hi ? hi : v);
                    }
                }
            }
        }
    }
}
