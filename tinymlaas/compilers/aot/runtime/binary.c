/* Elementwise binary ops on raw values with broadcasting: MINIMUM, MAXIMUM (any type),
 * and for float32 ADD, SUB, MUL, DIV with TFLM's activation clamp.
 * g: n0 n1 n2 n3, element strides of a (4), of b (4); op: 0 min, 1 max, 2 add, 3 sub,
 * 4 mul, 5 div; lohi: clamp bounds (float ops) */
static void aot_binary_$S(const $T *a, const $T *b, $T *y, const $T *lohi, const int32_t *g,
                          int32_t op)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < g[0]; i0++) {
        for (i1 = 0; i1 < g[1]; i1++) {
            for (i2 = 0; i2 < g[2]; i2++) {
                const $T *pa = a + i0 * g[4] + i1 * g[5] + i2 * g[6];
                const $T *pb = b + i0 * g[8] + i1 * g[9] + i2 * g[10];
                for (i3 = 0; i3 < g[3]; i3++) {
                    const $T va = pa[i3 * g[7]], vb = pb[i3 * g[11]];
                    $T r;
                    switch (op) {
                    case 0:
                        r = va < vb ? va : vb;
                        break;
                    case 1:
                        r = va > vb ? va : vb;
                        break;
                    case 2:
                        r = va + vb;
                        break;
                    case 3:
                        r = va - vb;
                        break;
                    case 4:
                        r = va * vb;
                        break;
                    default:
                        r = va / vb;
                        break;
                    }
                    if (op >= 2) {
                        r = r < lohi[0] ? lohi[0] : r;
                        r = r > lohi[1] ? lohi[1] : r;
                    }
                    *y++ = r;
                }
            }
        }
    }
}
