/* aot:requires mbqm */
/* ADD / SUB of int8 or int16 with broadcasting (TFLM: both inputs shifted left,
 * 20 bits for int8 and 15 for int16, scaled to twice the larger input scale,
 * added or subtracted, rescaled to the output).
 * g: n0 n1 n2 n3, element strides of a (4), of b (4)
 * q: -zp_a -zp_b m_a s_a m_b s_b m_out s_out zp_out min max left_shift subtract */
static void aot_addsub_$S(const $T *a, const $T *b, $T *y, const int32_t *q, const int32_t *g)
{
    const int32_t ls = q[11], sub = q[12];
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < g[0]; i0++) {
        for (i1 = 0; i1 < g[1]; i1++) {
            for (i2 = 0; i2 < g[2]; i2++) {
                const $T *pa = a + i0 * g[4] + i1 * g[5] + i2 * g[6];
                const $T *pb = b + i0 * g[8] + i1 * g[9] + i2 * g[10];
                for (i3 = 0; i3 < g[3]; i3++) {
                    const int32_t va = (int32_t)((uint32_t)(q[0] + pa[i3 * g[7]]) << ls);
                    const int32_t vb = (int32_t)((uint32_t)(q[1] + pb[i3 * g[11]]) << ls);
                    const int32_t sa = aot_mbqm(va, q[2], q[3]), sb = aot_mbqm(vb, q[4], q[5]);
                    int32_t r = aot_mbqm(sub ? sa - sb : sa + sb, q[6], q[7]) + q[8];
                    r = r < q[9] ? q[9] : r;
                    r = r > q[10] ? q[10] : r;
                    *y++ = ($T)r;
                }
            }
        }
    }
}
