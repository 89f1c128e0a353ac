/* aot:requires rqc */
/* aot:specialise */
/* CONV_2D int8 (and 1x1 convolutions / fully connected layers over several rows)
 * through gathered columns. Four output pixels at a time: each pixel's window is
 * gathered once into the scratch buffer (taps outside the image get the pad value,
 * so the bias with -zp*sum(w) folded in needs no border correction and no test is
 * left in the inner loop), in the layout the core multiplies fastest, then every
 * output channel runs over the four columns. Weights are [out][kp]: each row
 * zero-padded to kp, a multiple of 4, of the window's k_h*k_w*in values.
 * All four pixels' windows are read before any of their outputs is written (the
 * planner's in-place model, per block of four).
 *
 * Column layouts in the scratch (8*kp bytes):
 *   AOT_MAC_Q15 (DSP): per group of four k, pixel j's values as int16 pairs
 *     (k0,k2) (k1,k3) at words 8g+2j and 8g+2j+1: what SXTB16 makes of a word of
 *     weights and of its rotation, so one SMLAD pairs them. One output channel
 *     against four pixels: a weight word is split once for eight dual MACs and the
 *     columns come in with two LDMs.
 *   AOT_MAC_PAIRS (SMLAL): per k, pixels 0/1 and 2/3 packed in one int32 each as
 *     x_a + x_b * 2^23: one 64-bit multiply-accumulate does both pixels' products,
 *     and since up to 256 products of int8 values sum to less than 2^22 in
 *     magnitude, the two sums come apart exactly (every 256 k). Two output
 *     channels against the two pairs.
 *   AOT_MAC_S8 (ARMv6-M): pixel j's int8 column at j*kp; one pixel against four
 *     output channels.
 * g: in_h in_w in_c out_h out_w out_c k_h k_w s_h s_w d_h d_w pad_t pad_l batches kp
 *    fast act
 * q: the pad value (see conv), output zero point, activation min, max */

/* n values of pixel j's column from k on: src's, or the pad value where src is 0. On
 * DSP cores with the fast requantization the values are stored doubled (dbl). */
AOT_SPECIALISE void aot_cg_put(void *buf, int32_t j, int32_t k, const int8_t *src, int32_t n,
                               int32_t pad, int32_t kp, int32_t dbl)
{
    int32_t i;
#if defined(AOT_MAC_Q15)
    (void)kp;
    if ((k & 3) == 0 && (n & 3) == 0) {
        uint32_t *p = (uint32_t *)buf + 2 * k + 2 * j;
        if (src) {
            for (i = 0; i < n; i += 4, p += 8) {
                const uint32_t v = aot_load4(src + i), e = aot_even(v), o = aot_odd(v);
                p[0] = dbl ? aot_sadd16(e, e) : e;
                p[1] = dbl ? aot_sadd16(o, o) : o;
            }
        } else {
            const uint32_t z = ((uint32_t)(pad << dbl) & 0xFFFFu) * 0x10001u;
            for (i = 0; i < n; i += 4, p += 8) {
                p[0] = z;
                p[1] = z;
            }
        }
        return;
    }
    for (i = 0; i < n; i++, k++) {
        const int32_t e = k & 3;
        ((int16_t *)buf)[(k >> 2) * 16 + 4 * j + (e & 1) * 2 + (e >> 1)] =
            (int16_t)((src ? src[i] : pad) << dbl);
    }
#elif defined(AOT_MAC_PAIRS)
    uint32_t *p = (uint32_t *)buf + 2 * k + (j >> 1);
    (void)kp;
    (void)dbl;
    if (j & 1) {
        if (src) {
            for (i = 0; i < n; i++, p += 2) {
                *p += (uint32_t)(int32_t)src[i] << 23;
            }
        } else {
            for (i = 0; i < n; i++, p += 2) {
                *p += (uint32_t)pad << 23;
            }
        }
    } else {
        if (src) {
            for (i = 0; i < n; i++, p += 2) {
                *p = (uint32_t)(int32_t)src[i];
            }
        } else {
            for (i = 0; i < n; i++, p += 2) {
                *p = (uint32_t)pad;
            }
        }
    }
#else
    int8_t *p = (int8_t *)buf + j * kp + k;
    (void)dbl;
    if (src) {
        for (i = 0; i < n; i++) {
            p[i] = src[i];
        }
    } else {
        for (i = 0; i < n; i++) {
            p[i] = (int8_t)pad;
        }
    }
#endif
}

/* Pixel (b, oy, ox)'s window into column j; x is batch b's image. */
AOT_SPECIALISE void aot_cg_column(void *buf, int32_t j, const int8_t *x, int32_t oy, int32_t ox,
                                  int32_t pad, const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], kh = g[6], kw = g[7], sh = g[8], sw = g[9];
    const int32_t dh = g[10], dw = g[11], pt = g[12], pl = g[13], kp = g[15], dbl = g[16];
    const int32_t y0 = oy * sh - pt, x0 = ox * sw - pl;
    int32_t ky, kx, k = 0;
    for (ky = 0; ky < kh; ky++) {
        const int32_t iy = y0 + ky * dh;
        if (iy < 0 || iy >= ih) {
            aot_cg_put(buf, j, k, 0, kw * ic, pad, kp, dbl);
        } else if (dw == 1 && x0 >= 0 && x0 + kw <= iw) {
            aot_cg_put(buf, j, k, x + (iy * iw + x0) * ic, kw * ic, pad, kp, dbl);
        } else {
            for (kx = 0; kx < kw; kx++) {
                const int32_t ix = x0 + kx * dw;
                aot_cg_put(buf, j, k + kx * ic,
                           ix >= 0 && ix < iw ? x + (iy * iw + ix) * ic : 0, ic, pad, kp, dbl);
            }
        }
        k += kw * ic;
    }
    if (k < kp) {
        aot_cg_put(buf, j, k, 0, kp - k, 0, kp, dbl);
    }
}

#if defined(AOT_MAC_Q15)
/* acc[j] += row w (kp int8) . column j, for the four columns of buf. */
AOT_SPECIALISE void aot_cg_mac(const int8_t *w, const uint32_t *b, int32_t kp, int32_t *acc)
{
#if defined(AOT_EMULATE_DSP)
    int32_t i, j;
    for (i = 0; i < kp; i += 4, b += 8) {
        const uint32_t v = aot_load4(w + i), we = aot_even(v), wo = aot_odd(v);
        for (j = 0; j < 4; j++) {
            acc[j] = aot_smlad(b[2 * j + 1], wo, aot_smlad(b[2 * j], we, acc[j]));
        }
    }
#else
#define AOT_Q15_GROUP                                          \
    "ldr %[we], [%[pw]], #4\n\t"                               \
    "ldm %[pb]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"             \
    "sxtb16 %[wo], %[we], ror #8\n\t"                          \
    "sxtb16 %[we], %[we]\n\t"                                  \
    "smlad %[a0], %[x0], %[we], %[a0]\n\t"                     \
    "smlad %[a0], %[x1], %[wo], %[a0]\n\t"                     \
    "smlad %[a1], %[x2], %[we], %[a1]\n\t"                     \
    "smlad %[a1], %[x3], %[wo], %[a1]\n\t"                     \
    "ldm %[pb]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"             \
    "smlad %[a2], %[x0], %[we], %[a2]\n\t"                     \
    "smlad %[a2], %[x1], %[wo], %[a2]\n\t"                     \
    "smlad %[a3], %[x2], %[we], %[a3]\n\t"                     \
    "smlad %[a3], %[x3], %[wo], %[a3]\n\t"
#define AOT_Q15_OPERANDS                                                                   \
    : [pw] "+r"(pw), [pb] "+r"(pb), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),           \
      [a3] "+r"(a3), [we] "=&r"(we), [wo] "=&r"(wo), [x0] "=&r"(x0), [x1] "=&r"(x1),       \
      [x2] "=&r"(x2), [x3] "=&r"(x3)                                                       \
    : [end] "r"(end)                                                                       \
    : "cc", "memory"
    /* Registers fixed so that LDM's list ascends; nothing spills. */
    register const int8_t *pw __asm__("r0") = w;
    register const uint32_t *pb __asm__("r1") = b;
    register const uint32_t *end __asm__("r2") = b + 2 * kp;
    register int32_t a0 __asm__("r8") = acc[0];
    register int32_t a1 __asm__("r9") = acc[1];
    register int32_t a2 __asm__("r10") = acc[2];
    register int32_t a3 __asm__("r11") = acc[3];
    register uint32_t we __asm__("r3"), wo __asm__("r12");
    register uint32_t x0 __asm__("r4"), x1 __asm__("r5"), x2 __asm__("r6"), x3 __asm__("r7");
#if !defined(__OPTIMIZE_SIZE__)
    if (kp % 16 == 0) {
        __asm__ volatile("1:\n\t" AOT_Q15_GROUP AOT_Q15_GROUP AOT_Q15_GROUP AOT_Q15_GROUP
                         "cmp %[pb], %[end]\n\t"
                         "bne 1b\n\t" AOT_Q15_OPERANDS);
    } else
#endif
    if (kp % 8 == 0) {
        __asm__ volatile("1:\n\t" AOT_Q15_GROUP AOT_Q15_GROUP
                         "cmp %[pb], %[end]\n\t"
                         "bne 1b\n\t" AOT_Q15_OPERANDS);
    } else {
        __asm__ volatile("1:\n\t" AOT_Q15_GROUP
                         "cmp %[pb], %[end]\n\t"
                         "bne 1b\n\t" AOT_Q15_OPERANDS);
    }
#undef AOT_Q15_GROUP
#undef AOT_Q15_OPERANDS
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#endif
}
#elif defined(AOT_MAC_PAIRS)
/* acc[2*o + p] += row o . packed pair p over n k (n <= 256), for rows w and w + kp. */
AOT_SPECIALISE void aot_cg_mac(const int8_t *w, const uint32_t *b, int32_t n, int32_t kp,
                               int64_t *acc)
{
#if defined(__thumb2__) && defined(__GNUC__)
#define AOT_PAIRS_K                                            \
    "ldm %[pb]!, {%[x0], %[x1]}\n\t"                           \
    "ldrsb %[wv], [%[pw], %[kp]]\n\t"                          \
    "smlal %[a10l], %[a10h], %[x0], %[wv]\n\t"                 \
    "smlal %[a11l], %[a11h], %[x1], %[wv]\n\t"                 \
    "ldrsb %[wv], [%[pw]], #1\n\t"                             \
    "smlal %[a00l], %[a00h], %[x0], %[wv]\n\t"                 \
    "smlal %[a01l], %[a01h], %[x1], %[wv]\n\t"
#define AOT_PAIRS_OPERANDS                                                                 \
    : [pw] "+r"(pw), [pb] "+r"(pb), [a00l] "+r"(a00l), [a00h] "+r"(a00h),                  \
      [a01l] "+r"(a01l), [a01h] "+r"(a01h), [a10l] "+r"(a10l), [a10h] "+r"(a10h),          \
      [a11l] "+r"(a11l), [a11h] "+r"(a11h), [x0] "=&r"(x0), [x1] "=&r"(x1), [wv] "=&r"(wv) \
    : [end] "r"(end), [kp] "i"(kp)                                                         \
    : "cc", "memory"
    register const int8_t *pw __asm__("r0") = w;
    register const uint32_t *pb __asm__("r1") = b;
    register const uint32_t *end __asm__("r2") = b + 2 * n;
    register uint32_t a00l __asm__("r4") = 0, a00h __asm__("r5") = 0;
    register uint32_t a01l __asm__("r6") = 0, a01h __asm__("r7") = 0;
    register uint32_t a10l __asm__("r8") = 0, a10h __asm__("r9") = 0;
    register uint32_t a11l __asm__("r10") = 0, a11h __asm__("r11") = 0;
    register uint32_t x0 __asm__("r3"), x1 __asm__("r12");
    register int32_t wv __asm__("lr");
#if !defined(__OPTIMIZE_SIZE__)
    if (n % 4 == 0) {
        __asm__ volatile("1:\n\t" AOT_PAIRS_K AOT_PAIRS_K AOT_PAIRS_K AOT_PAIRS_K
                         "cmp %[pb], %[end]\n\t"
                         "bne 1b\n\t" AOT_PAIRS_OPERANDS);
    } else
#endif
    if (n % 2 == 0) {
        __asm__ volatile("1:\n\t" AOT_PAIRS_K AOT_PAIRS_K
                         "cmp %[pb], %[end]\n\t"
                         "bne 1b\n\t" AOT_PAIRS_OPERANDS);
    } else {
        __asm__ volatile("1:\n\t" AOT_PAIRS_K
                         "cmp %[pb], %[end]\n\t"
                         "bne 1b\n\t" AOT_PAIRS_OPERANDS);
    }
#undef AOT_PAIRS_K
#undef AOT_PAIRS_OPERANDS
    acc[0] += (int64_t)(((uint64_t)a00h << 32) | a00l);
    acc[1] += (int64_t)(((uint64_t)a01h << 32) | a01l);
    acc[2] += (int64_t)(((uint64_t)a10h << 32) | a10l);
    acc[3] += (int64_t)(((uint64_t)a11h << 32) | a11l);
#else
    int32_t i;
    int64_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
    for (i = 0; i < n; i++, b += 2) {
        const int32_t x0 = (int32_t)b[0], x1 = (int32_t)b[1], v0 = w[i], v1 = w[kp + i];
        a00 += (int64_t)x0 * v0;
        a01 += (int64_t)x1 * v0;
        a10 += (int64_t)x0 * v1;
        a11 += (int64_t)x1 * v1;
    }
    acc[0] += a00;
    acc[1] += a01;
    acc[2] += a10;
    acc[3] += a11;
#endif
}

/* The two pixels' sums packed in a: x_a's in the low 23 bits (signed), x_b's above. */
AOT_SPECIALISE void aot_cg_unpack(int64_t a, int32_t *sa, int32_t *sb)
{
    const int32_t lo = (int32_t)((uint32_t)a << 9) >> 9;
    *sa += lo;
    *sb += (int32_t)((a - lo) >> 23);
}
#else
/* acc[t] += row t . column, for the four rows w + t*kp (ARMv6-M: LDRSB takes only a
 * register offset, so every row has its own end pointer and one index runs up to 0). */
AOT_SPECIALISE void aot_cg_mac(const int8_t *w, const int8_t *col, int32_t kp, int32_t *acc)
{
#if defined(__thumb__) && !defined(__thumb2__) && defined(__GNUC__)
    register int32_t i __asm__("r0") = -kp;
    register const int8_t *xe __asm__("r1") = col + kp;
    register const int8_t *w0 __asm__("r2") = w + kp;
    register const int8_t *w1 __asm__("r3") = w + 2 * kp;
    register const int8_t *w2 __asm__("r4") = w + 3 * kp;
    register const int8_t *w3 __asm__("r5") = w + 4 * kp;
    register int32_t xv __asm__("r6"), wv __asm__("r7");
    register int32_t a0 __asm__("r8") = acc[0];
    register int32_t a1 __asm__("r9") = acc[1];
    register int32_t a2 __asm__("r10") = acc[2];
    register int32_t a3 __asm__("r11") = acc[3];
    __asm__ volatile(
        ".syntax unified\n" /* gcc wraps Thumb-1 inline asm in divided syntax */
        "1:\n\t"
        "ldrsb %[xv], [%[xe], %[i]]\n\t"
        "ldrsb %[wv], [%[w0], %[i]]\n\t"
        "muls %[wv], %[xv], %[wv]\n\t"
        "add %[a0], %[wv]\n\t"
        "ldrsb %[wv], [%[w1], %[i]]\n\t"
        "muls %[wv], %[xv], %[wv]\n\t"
        "add %[a1], %[wv]\n\t"
        "ldrsb %[wv], [%[w2], %[i]]\n\t"
        "muls %[wv], %[xv], %[wv]\n\t"
        "add %[a2], %[wv]\n\t"
        "ldrsb %[wv], [%[w3], %[i]]\n\t"
        "muls %[wv], %[xv], %[wv]\n\t"
        "add %[a3], %[wv]\n\t"
        "adds %[i], #1\n\t"
        "bne 1b\n\t"
        : [i] "+l"(i), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
          [xv] "=&l"(xv), [wv] "=&l"(wv)
        : [xe] "l"(xe), [w0] "l"(w0), [w1] "l"(w1), [w2] "l"(w2), [w3] "l"(w3)
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#else
    int32_t i;
    for (i = 0; i < kp; i++) {
        const int32_t xv = col[i];
        acc[0] += xv * w[i];
        acc[1] += xv * w[kp + i];
        acc[2] += xv * w[2 * kp + i];
        acc[3] += xv * w[3 * kp + i];
    }
#endif
}
#endif

/* Output channels of the n (<= 4) pixels whose columns are in buf; y: the first's. */
AOT_SPECIALISE void aot_cg_block(void *buf, int8_t *y, const int8_t *w, const int32_t *bias,
                                 const int32_t *rq, const int32_t *q, int32_t n,
                                 const int16_t *g)
{
    const int32_t oc = g[5], kp = g[15], fast = g[16], act = g[17];
    const int32_t zp = q[1], lo = q[2], hi = q[3];
    int32_t o, j;
#if defined(AOT_MAC_Q15)
    /* With the fast requantization the columns hold doubled values: so do the sums. */
    const int32_t mode = fast ? 2 : 0;
    (void)j;
    for (o = 0; o < oc; o++, w += kp, rq += 3, y++) {
        const struct aot_rqp p = aot_rqp_load(rq);
        int32_t acc[4];
        acc[0] = acc[1] = acc[2] = acc[3] = (int32_t)((uint32_t)bias[o] << fast);
        aot_cg_mac(w, (const uint32_t *)buf, kp, acc);
        y[0] = aot_rqc_p(acc[0], p, mode, zp, lo, hi, act);
        if (n > 1) {
            y[oc] = aot_rqc_p(acc[1], p, mode, zp, lo, hi, act);
        }
        if (n > 2) {
            y[2 * oc] = aot_rqc_p(acc[2], p, mode, zp, lo, hi, act);
        }
        if (n > 3) {
            y[3 * oc] = aot_rqc_p(acc[3], p, mode, zp, lo, hi, act);
        }
    }
#elif defined(AOT_MAC_PAIRS)
    for (o = 0; o < oc; o += 2, w += 2 * kp, rq += 6) {
        int32_t s[8], k;
        for (j = 0; j < 4; j++) {
            s[j] = bias[o];
            s[4 + j] = o + 1 < oc ? bias[o + 1] : 0;
        }
        for (k = 0; k < kp; k += 256) {
            int64_t acc[4] = {0, 0, 0, 0};
            const int32_t m = kp - k < 256 ? kp - k : 256;
            /* the last odd channel runs against itself */
            if (o + 1 < oc) {
                aot_cg_mac(w + k, (const uint32_t *)buf + 2 * k, m, kp, acc);
            } else {
                aot_cg_mac(w + k, (const uint32_t *)buf + 2 * k, m, 0, acc);
            }
            aot_cg_unpack(acc[0], &s[0], &s[1]);
            aot_cg_unpack(acc[1], &s[2], &s[3]);
            aot_cg_unpack(acc[2], &s[4], &s[5]);
            aot_cg_unpack(acc[3], &s[6], &s[7]);
        }
        {
            const struct aot_rqp p0 = aot_rqp_load(rq), p1 = aot_rqp_load(rq + 3 * (o + 1 < oc));
            for (j = 0; j < n; j++) {
                y[j * oc + o] = aot_rqc_p(s[j], p0, fast, zp, lo, hi, act);
                if (o + 1 < oc) {
                    y[j * oc + o + 1] = aot_rqc_p(s[4 + j], p1, fast, zp, lo, hi, act);
                }
            }
        }
    }
#else
    for (o = 0; o + 3 < oc; o += 4, w += 4 * kp, rq += 12) {
        for (j = 0; j < n; j++) {
            int32_t acc[4];
            acc[0] = bias[o];
            acc[1] = bias[o + 1];
            acc[2] = bias[o + 2];
            acc[3] = bias[o + 3];
            aot_cg_mac(w, (const int8_t *)buf + j * kp, kp, acc);
            {
                const struct aot_rqp p0 = aot_rqp_load(rq), p1 = aot_rqp_load(rq + 3);
                const struct aot_rqp p2 = aot_rqp_load(rq + 6), p3 = aot_rqp_load(rq + 9);
                y[j * oc + o] = aot_rqc_p(acc[0], p0, fast, zp, lo, hi, act);
                y[j * oc + o + 1] = aot_rqc_p(acc[1], p1, fast, zp, lo, hi, act);
                y[j * oc + o + 2] = aot_rqc_p(acc[2], p2, fast, zp, lo, hi, act);
                y[j * oc + o + 3] = aot_rqc_p(acc[3], p3, fast, zp, lo, hi, act);
            }
        }
    }
    for (; o < oc; o++, w += kp, rq += 3) {
        for (j = 0; j < n; j++) {
            const int8_t *col = (const int8_t *)buf + j * kp;
            int32_t acc = bias[o], k;
            for (k = 0; k < kp; k++) {
                acc += col[k] * w[k];
            }
            y[j * oc + o] = aot_rqc(acc, rq, fast, zp, lo, hi, act);
        }
    }
#endif
}

AOT_SPECIALISE void aot_convg_s8(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *bias,
                                 const int32_t *rq, const int32_t *q, void *buf, const int16_t *g)
{
    const int32_t ih = g[0], iw = g[1], ic = g[2], oh = g[3], ow = g[4], oc = g[5], nb = g[14];
    const int32_t kp = g[15], total = nb * oh * ow, pad = q[0];
    int32_t p, j, b = 0, oy = 0, ox = 0;
    for (p = 0; p < total; p += 4, y += 4 * oc) {
        const int32_t n = total - p < 4 ? total - p : 4;
        for (j = 0; j < 4; j++) {
            if (j < n) {
                aot_cg_column(buf, j, x + b * ih * iw * ic, oy, ox, pad, g);
                if (++ox == ow) {
                    ox = 0;
                    if (++oy == oh) {
                        oy = 0;
                        b++;
                    }
                }
            } else {
                aot_cg_put(buf, j, 0, 0, kp, 0, kp, g[16]);
            }
        }
        aot_cg_block(buf, y, w, bias, rq, q, n, g);
    }
}

/* Output row oy of a one-batch convolution (a fused 1x1 conv's rows, pwdw_s8.c). */
AOT_SPECIALISE void aot_convg_row(const int8_t *x, int8_t *y, const int8_t *w,
                                  const int32_t *bias, const int32_t *rq, const int32_t *q,
                                  void *buf, const int16_t *g, int32_t oy)
{
    const int32_t ow = g[4], oc = g[5], kp = g[15], pad = q[0];
    int32_t ox, j;
    for (ox = 0; ox < ow; ox += 4, y += 4 * oc) {
        const int32_t n = ow - ox < 4 ? ow - ox : 4;
        for (j = 0; j < 4; j++) {
            if (j < n) {
                aot_cg_column(buf, j, x, oy, ox + j, pad, g);
            } else {
                aot_cg_put(buf, j, 0, 0, kp, 0, kp, g[16]);
            }
        }
        aot_cg_block(buf, y, w, bias, rq, q, n, g);
    }
}
