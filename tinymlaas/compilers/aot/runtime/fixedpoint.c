/* gemmlowp's fixed-point primitives on int32 (two's complement wrap-around
 * where gemmlowp adds or subtracts), as TFLM's int8 softmax uses them. */
static inline int32_t aot_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t aot_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 30)) >> 31);
}

static inline int32_t aot_rdbpot(int32_t x, int32_t e)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << e) - 1u);
    return (x >> e) + ((x & mask) > ((mask >> 1) + (x < 0)));
}

static inline int32_t aot_shl_sat(int32_t x, int32_t e)
{
    const int64_t v = (int64_t)x * ((int64_t)1 << e);
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor series around -1/8). */
static int32_t aot_exp_quarter(int32_t a)
{
    const int32_t c = 1895147668, third = 715827883;
    const int32_t x = aot_add(a, 1 << 28);
    const int32_t x2 = aot_srdhm(x, x), x3 = aot_srdhm(x2, x), x4 = aot_srdhm(x2, x2);
    const int32_t t = aot_rdbpot(
        aot_add(aot_srdhm(aot_add(aot_rdbpot(x4, 2), x3), third), x2), 1);
    return aot_add(c, aot_srdhm(c, aot_add(x, t)));
}

/* exp(a) for a <= 0 given in Q5.26, result in Q0.31. */
static int32_t aot_exp_neg_q5(int32_t a)
{
    static const int32_t m[7] = {1672461947, 1302514674, 790015084, 290630308,
                                 39332535, 720401, 242};
    const int32_t quarter = 1 << 24;
    const int32_t a_mod = aot_add(a & (quarter - 1), -quarter);
    const int32_t rem = aot_add(a_mod, (int32_t)(0u - (uint32_t)a));
    int32_t r = aot_exp_quarter(aot_shl_sat(a_mod, 5)), i;
    for (i = 0; i < 7; i++) {
        if (rem & ((int32_t)1 << (24 + i))) {
            r = aot_srdhm(r, m[i]);
        }
    }
    return a == 0 ? INT32_MAX : r;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out (Newton-Raphson). */
static int32_t aot_one_over_one_plus_x(int32_t a)
{
    const int64_t s = (int64_t)a + INT32_MAX;
    const int32_t half = (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);
    int32_t x = aot_add(1515870810, aot_srdhm(half, -1010580540)), i;
    for (i = 0; i < 3; i++) {
        const int32_t one_minus = aot_add(1 << 29, -aot_srdhm(half, x));
        x = aot_add(x, aot_shl_sat(aot_srdhm(x, one_minus), 2));
    }
    return aot_shl_sat(x, 1);
}
