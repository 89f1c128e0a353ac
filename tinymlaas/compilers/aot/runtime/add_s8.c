/* aot:requires mbqm */
/* ADD int8 with broadcasting (TFLM: both inputs shifted left 20 bits, scaled to
 * twice the larger input scale, summed, rescaled to the output).
 * g: n0 n1 n2 n3, element strides of a (4), of b (4)
 * q: -zp_a -zp_b m_a s_a m_b s_b m_out s_out zp_out min max */
static void aot_add_s8(const int8_t *a, const int8_t *b, int8_t *y, const int32_t *q,
                       const int32_t *g)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < g[0]; i0++) {
        for (i1 = 0; i1 < g[1]; i1++) {
            for (i2 = 0; i2 < g[2]; i2++) {
                const int8_t *pa = a + i0 * g[4] + i1 * g[5] + i2 * g[6];
                const int8_t *pb = b + i0 * g[8] + i1 * g[9] + i2 * g[10];
                for (i3 = 0; i3 < g[3]; i3++) {
                    const int32_t va = (q[0] + pa[i3 * g[7]]) * (1 << 20);
                    const int32_t vb = (q[1] + pb[i3 * g[11]]) * (1 << 20);
                    const int32_t sum = aot_mbqm(va, q[2], q[3]) + aot_mbqm(vb, q[4], q[5]);
                    int32_t r = aot_mbqm(sum, q[6], q[7]) + q[8];
                    r = r < q[9] ? q[9] : r;
                    r = r > q[10] ? q[10] : r;
                    *y++ = (int8_t)r;
                }
            }
        }
    }
}
