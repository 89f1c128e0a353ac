/* An int8 -> int8 elementwise op as a 256-entry table (index: the byte). */
static void aot_lut_s8(const int8_t *x, int8_t *y, const int8_t *lut, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = lut[(uint8_t)x[i]];
    }
}
