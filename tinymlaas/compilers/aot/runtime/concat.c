/* CONCATENATION / PACK: per outer index, each input's contiguous chunk in turn. */
static void aot_concat(void *y, const void *const *src, const int32_t *bytes, int32_t n,
                       int32_t outer)
{
    uint8_t *out = (uint8_t *)y;
    int32_t o, i;
    for (o = 0; o < outer; o++) {
        for (i = 0; i < n; i++) {
            memcpy(out, (const uint8_t *)src[i] + o * bytes[i], (size_t)bytes[i]);
            out += bytes[i];
        }
    }
}
