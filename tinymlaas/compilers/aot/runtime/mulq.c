/* aot:requires mbqm */
/* MUL of int8 or int16 with broadcasting: (a - zp_a)(b - zp_b) requantized.
 * g: n0 n1 n2 n3, element strides of a (4), of b (4)
 * q: -zp_a -zp_b m_out s_out zp_out min max */
static void aot_mulq_$S(const $T *a, const $T *b, $T *y, const int32_t *q, const int32_t *g)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < g[0]; i0++) {
        for (i1 = 0; i1 < g[1]; i1++) {
            for (i2 = 0; i2 < g[2]; i2++) {
                const $T *pa = a + i0 * g[4] + i1 * g[5] + i2 * g[6];
                const $T *pb = b + i0 * g[8] + i1 * g[9] + i2 * g[10];
                for (i3 = 0; i3 < g[3]; i3++) {
                    const int32_t p = (q[0] + pa[i3 * g[7]]) * (q[1] + pb[i3 * g[11]]);
                    int32_t r = aot_mbqm(p, q[2], q[3]) + q[4];
                    r = r < q[5] ? q[5] : r;
                    r = r > q[6] ? q[6] : r;
                    *y++ = ($T)r;
                }
            }
        }
    }
}
