/* aot:requires base */
/* The filter taps [*k0, *k1) of a window that starts at p (tap step d, k taps)
 * and fall inside [0, n): the part TFLM does not skip. */
AOT_SPECIALISE void aot_taps(int32_t p, int32_t d, int32_t k, int32_t n, int32_t *k0,
                             int32_t *k1)
{
    int32_t first = p < 0 ? (d - 1 - p) / d : 0, end = (n - p + d - 1) / d;
    first = first < k ? first : k;
    end = end < k ? end : k;
    *k0 = first;
    *k1 = end > first ? end : first;
}
