/* aot:requires mbqm */
/* PRELU of int8 (TFLM also has int16; TensorFlow does not convert it) with int8 alpha,
 * broadcast: x - zp_x >= 0 rescaled by m1, else
 * (x - zp_x) * (alpha - zp_alpha) rescaled by m2; + zp_out, clamped to the type.
 * g: n0 n1 n2 n3, element strides of x (4), of alpha (4)
 * q: -zp_x -zp_alpha m1 s1 m2 s2 zp_out min max */
static void aot_prelu_$S(const $T *x, const int8_t *alpha, $T *y, const int32_t *q,
                         const int32_t *g)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < g[0]; i0++) {
        for (i1 = 0; i1 < g[1]; i1++) {
            for (i2 = 0; i2 < g[2]; i2++) {
                const $T *px = x + i0 * g[4] + i1 * g[5] + i2 * g[6];
                const int8_t *pa = alpha + i0 * g[8] + i1 * g[9] + i2 * g[10];
                for (i3 = 0; i3 < g[3]; i3++) {
                    const int32_t v = q[0] + px[i3 * g[7]];
                    int32_t r;
                    if (v >= 0) {
                        r = aot_mbqm(v, q[2], q[3]);
                    } else {
                        r = aot_mbqm(v * (q[1] + pa[i3 * g[11]]), q[4], q[5]);
                    }
                    r += q[6];
                    r = r < q[7] ? q[7] : r > q[8] ? q[8] : r;
                    *y++ = ($T)r;
                }
            }
        }
    }
}
