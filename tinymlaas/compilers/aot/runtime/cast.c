/* CAST from int8, int16, int32, uint32, float32 or bool to one of the first five, as
 * C++'s static_cast. from/to: 0 int8, 1 int16, 2 int32, 3 uint32, 4 float32, 5 bool */
static void aot_cast(const void *x, void *y, int32_t n, int32_t from, int32_t to)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        int64_t iv = 0;
        float fv = 0.0f;
        switch (from) {
        case 0:
            iv = ((const int8_t *)x)[i];
            break;
        case 1:
            iv = ((const int16_t *)x)[i];
            break;
        case 2:
            iv = ((const int32_t *)x)[i];
            break;
        case 3:
            iv = ((const uint32_t *)x)[i];
            break;
        case 4:
            fv = ((const float *)x)[i];
            iv = (int64_t)(int32_t)fv;
            break;
        default:
            iv = ((const uint8_t *)x)[i] != 0;
            break;
        }
        if (from != 4) {
            fv = (float)iv;
        }
        switch (to) {
        case 0:
            ((int8_t *)y)[i] = (int8_t)iv;
            break;
        case 1:
            ((int16_t *)y)[i] = (int16_t)iv;
            break;
        case 2:
            ((int32_t *)y)[i] = (int32_t)iv;
            break;
        case 3:
            ((uint32_t *)y)[i] = (uint32_t)iv;
            break;
        default:
            ((float *)y)[i] = fv;
            break;
        }
    }
}
