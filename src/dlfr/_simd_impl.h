/* One instantiation of dlfr's kernels. _simd.c includes this file once per
 * (dtype, instruction set) with these macros defined:
 *   REAL      float or double
 *   UINT      the unsigned integer of the same width (bit tricks in exp)
 *   S         f32 or f64            T   generic, avx2, avx512 or neon
 *   VBYTES    vector width in bytes for the GEMM's accumulators (0: plain C)
 *   VREGS     vector registers of the instruction set (16 or 32)
 *   ISA_NEON  1 in the aarch64 NEON build (its sigmoid uses intrinsics)
 * No -ffast-math anywhere: the exp below rounds in SIMD with the
 * add-and-subtract trick instead, and NaN and the infinities are exact.
 */
#define CAT3_(a, b, c) a##_##b##_##c
#define CAT3(a, b, c) CAT3_(a, b, c)
#define FN(name) CAT3(name, S, T)

/* this level's kernels, name_S_T, declared from the one list in _simd.h */
#define PROTOTYPE(REAL_, S_, RET, NAME, PARAMS, ARGS) RET FN(NAME) PARAMS;
DLFR_KERNELS(PROTOTYPE, REAL, S)
#undef PROTOTYPE

#if defined(_OPENMP) || defined(DLFR_OMP_SIMD)
#define SIMD_LOOP _Pragma("omp simd")
#else
#define SIMD_LOOP
#endif

static inline UINT FN(bits)(REAL x) { union { REAL f; UINT u; } v; v.f = x; return v.u; }
static inline REAL FN(from_bits)(UINT u) { union { REAL f; UINT u; } v; v.u = u; return v.f; }

/* e^x's range reduction and polynomial, shared by exp_nonpos and the AVX-512
 * sigmoid: below EXP_LO e^x rounds to 0; x = k ln2 + r with |r| <= ln2/2, k
 * rounded by adding EXP_MAGIC, ln2 split so that k * EXP_LN2_HI is exact. */
#if DLFR_IS_F32
#define EXP_LO (-104.0f)
#define EXP_LOG2E 1.44269504088896341f
#define EXP_MAGIC 12582912.0f /* 1.5*2^23 */
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO (-2.12194440e-4f)
/* Cephes expf minimax polynomial on [-ln2/2, ln2/2], highest power first */
static const float FN(exp_poly)[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                     4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
#else
#define EXP_LO (-746.0)
#define EXP_LOG2E 1.4426950408889634
#define EXP_MAGIC 6755399441055744.0 /* 1.5*2^52 */
#define EXP_LN2_HI 6.93145751953125e-1
#define EXP_LN2_LO 1.42860682030941723212e-6
/* Taylor series to r^13: the truncation error is below 2^-60 on |r| <= ln2/2 */
static const double FN(exp_poly)[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
                                      1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0,
                                      1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0,
                                      1.0 / 6.0, 0.5};
#endif
#define EXP_TERMS (sizeof FN(exp_poly) / sizeof FN(exp_poly)[0])

/* The reduction and polynomial for x not above 0: x = k ln2 + r, returns
 * q = e^r - 1 = r + r^2 P(r) and sets *t, which holds k in its low mantissa
 * bits (read off as bits(t) - bits(EXP_MAGIC), no float->int conversion). */
static inline REAL FN(exp_reduced)(REAL x, REAL *t)
{
    *t = x * EXP_LOG2E + EXP_MAGIC;
    REAL kf = *t - EXP_MAGIC;
    REAL r = x - kf * EXP_LN2_HI;
    r = r - kf * EXP_LN2_LO;
    REAL p = FN(exp_poly)[0];
    for (size_t i = 1; i < EXP_TERMS; i++) p = p * r + FN(exp_poly)[i];
    return p * r * r + r;
}

#if DLFR_IS_F32
#define EXP_BIAS 127
#define EXP_MANT 23
#else
#define EXP_BIAS 1023
#define EXP_MANT 52
#endif

/* e^x for x <= 0 (or NaN), correct to about 1 ulp down into the denormals:
 * e^r = 1 + q, then 2^k put into the exponent bits in two halves so that k
 * may go below the normal range. */
static inline REAL FN(exp_nonpos)(REAL x)
{
    x = (x < EXP_LO) ? EXP_LO : x; /* NaN passes through */
    REAL t;
    REAL p = FN(exp_reduced)(x, &t) + 1;
#if DLFR_IS_F32
    int32_t k = (int32_t)(FN(bits)(t) - FN(bits)(EXP_MAGIC));
    int32_t k1 = k / 2, k2 = k - k1;
#else
    int64_t k = (int64_t)(FN(bits)(t) - FN(bits)(EXP_MAGIC));
    int64_t k1 = k / 2, k2 = k - k1;
#endif
    REAL s1 = FN(from_bits)((UINT)(k1 + EXP_BIAS) << EXP_MANT);
    REAL s2 = FN(from_bits)((UINT)(k2 + EXP_BIAS) << EXP_MANT);
    return p * s1 * s2;
}

/* e^x - 1 for x <= 0 (or NaN), to about 1 ulp however close x is to 0 (e^x
 * - 1 from exp_nonpos would cancel there): q = e^r - 1 without its 1 (k = 0
 * near 0 leaves r = x exactly), then e^x - 1 = 2^k q + (2^k - 1), where 2^k
 * - 1 is exact while it matters. Below EXPM1_LO the result rounds to -1, so
 * x is clamped there and 2^k stays a normal number, put in at once. */
#if DLFR_IS_F32
#define EXPM1_LO (-32.0f)
#else
#define EXPM1_LO (-64.0)
#endif
static inline REAL FN(expm1_nonpos)(REAL x)
{
    x = (x < EXPM1_LO) ? EXPM1_LO : x; /* NaN passes through */
    REAL t;
    REAL q = FN(exp_reduced)(x, &t);
    /* unsigned arithmetic: a NaN's bits give some s, and s q is NaN whatever it is */
    REAL s = FN(from_bits)((FN(bits)(t) - FN(bits)(EXP_MAGIC) + EXP_BIAS) << EXP_MANT);
    return s * q + (s - 1);
}

/* ELU (alpha 1): z where z >= 0 (and NaN), e^z - 1 below; -inf gives -1. */
static inline REAL FN(elu1)(REAL z)
{
    REAL e = FN(expm1_nonpos)(z < 0 ? z : 0); /* both sides, so the select vectorises */
    return z < 0 ? e : z;
}

/* sigma(z) with e = e^-|z| <= 1: never overflows, exact 0.5 at 0. */
static inline REAL FN(sigmoid1)(REAL z)
{
    REAL e = FN(exp_nonpos)(-RFABS(z));
    REAL s = (REAL)1 / ((REAL)1 + e);
    REAL es = e * s; /* computed on both sides so the select vectorises */
    return z >= 0 ? s : es;
}

/* One value through activation `act` (not softmax, which works on rows):
 * the definitions activate's loops vectorise, `act` being a constant there. */
static inline REAL FN(activate1)(REAL z, int act)
{
    switch (act) {
    case DLFR_SIGMOID: return FN(sigmoid1)(z);
    case DLFR_TANH: return RTANH(z);
    case DLFR_RELU: return z < 0 ? (REAL)0 : z;
    case DLFR_STEP: return z >= 0 ? (REAL)1 : (z < 0 ? (REAL)0 : z); /* NaN stays */
    case DLFR_LEAKY_RELU: return z < 0 ? z * (REAL)DLFR_LEAKY_RELU_SLOPE : z;
    case DLFR_ELU: return FN(elu1)(z);
    default: return z;
    }
}

/* out[:n] = KERNEL(z[:n]) for a sigmoid written on vectors of LANES values
 * (type VT): four vectors a step, so more independent work is in flight for
 * one vector's long dependency chain (AVX2 on Zen 3: one at a time 0.8 ns an
 * element in float32 and 2.3 in float64, four 0.65 and 1.8; four held in an
 * array 0.77, measured), then one at a time, then the last few through a
 * vector of their own. */
#define SIGMOID_BY_VECTORS(VT, LANES, LOAD, STORE, KERNEL)                           \
    ptrdiff_t i = 0;                                                                 \
    for (; i + 4 * (LANES) <= n; i += 4 * (LANES)) {                                 \
        VT a = KERNEL(LOAD(z + i)), b = KERNEL(LOAD(z + i + (LANES)));               \
        VT c = KERNEL(LOAD(z + i + 2 * (LANES))), d = KERNEL(LOAD(z + i + 3 * (LANES))); \
        STORE(out + i, a);                                                           \
        STORE(out + i + (LANES), b);                                                 \
        STORE(out + i + 2 * (LANES), c);                                             \
        STORE(out + i + 3 * (LANES), d);                                             \
    }                                                                                \
    for (; i + (LANES) <= n; i += (LANES)) STORE(out + i, KERNEL(LOAD(z + i)));      \
    if (i < n) {                                                                     \
        REAL tail[LANES] = {0};                                                      \
        memcpy(tail, z + i, (size_t)(n - i) * sizeof(REAL));                         \
        STORE(tail, KERNEL(LOAD(tail)));                                             \
        memcpy(out + i, tail, (size_t)(n - i) * sizeof(REAL));                       \
    }

#if DLFR_X86_DISPATCH && VBYTES >= 32
/* The x86 vector sigmoids' common start, in the intrinsics OP(name) of the
 * vector type VT: x = max(EXP_LO, -|z|) (NaN passes: max returns its second
 * operand when one is NaN), t = x log2(e) + EXP_MAGIC and kf = t - EXP_MAGIC
 * (k, rounded), and p = e^r by exp_nonpos's polynomial taken by pairs
 * (c[i] r + c[i+1], then Horner in r^2: half the dependent steps, so more
 * vectors are in flight at once), so that e^-|z| = p 2^k. */
#define X86_EXP_PARTS(VT, OP, z, t, kf, p)                                              \
    VT t, kf, p;                                                                        \
    {                                                                                   \
        const VT magic_ = OP(set1)(EXP_MAGIC);                                          \
        VT x_ = OP(max)(OP(set1)(EXP_LO), OP(or)(z, OP(set1)(-0.0)));                   \
        t = OP(fmadd)(x_, OP(set1)(EXP_LOG2E), magic_);                                 \
        kf = OP(sub)(t, magic_);                                                        \
        VT r_ = OP(fnmadd)(kf, OP(set1)(EXP_LN2_LO),                                    \
                           OP(fnmadd)(kf, OP(set1)(EXP_LN2_HI), x_));                   \
        const REAL *c_ = FN(exp_poly);                                                  \
        VT r2_ = OP(mul)(r_, r_);                                                       \
        p = OP(fmadd)(OP(set1)(c_[0]), r_, OP(set1)(c_[1]));                            \
        for (size_t i_ = 2; i_ < EXP_TERMS; i_ += 2)                                    \
            p = OP(fmadd)(p, r2_, OP(fmadd)(OP(set1)(c_[i_]), r_, OP(set1)(c_[i_ + 1]))); \
        p = OP(add)(OP(fmadd)(p, r2_, r_), OP(set1)(1));                                \
    }
#endif

#if VBYTES == 64 && DLFR_X86_DISPATCH
/* AVX-512: sigmoid1 written out, 21 vector instructions instead of the
 * compiler's 35 (float32: 15 -> 10 cycles a vector, measured; the 512-bit
 * pipes are the limit). vscalef puts 2^k in at once (rounding correctly into
 * the denormals) where sigmoid1 does it by halves; vrcp14 with Newton steps
 * replaces the divide (one step in float32, two in float64: below half an
 * ulp before the final rounding); a masked multiply does the select. Same
 * clamp, range reduction and polynomial as exp_nonpos. NaN passes: max
 * returns its second operand when one is NaN (vrange, one instruction for
 * -|z| and the clamp, does not). */
#if DLFR_IS_F32
#define ZV __m512
#define ZMASK __mmask16
#define ZOP(name) _mm512_##name##_ps
#define ZCMP _mm512_cmp_ps_mask
#else
#define ZV __m512d
#define ZMASK __mmask8
#define ZOP(name) _mm512_##name##_pd
#define ZCMP _mm512_cmp_pd_mask
#endif
#define ZL ((ptrdiff_t)(64 / sizeof(REAL)))

static inline ZV FN(sigmoid_zmm)(ZV z)
{
    const ZV one = ZOP(set1)(1);
    X86_EXP_PARTS(ZV, ZOP, z, t, kf, p);
    (void)t;
    ZV e = ZOP(scalef)(p, kf);            /* e^-|z| */
    ZV d = ZOP(add)(one, e);
    ZV s = ZOP(rcp14)(d);                 /* 1/d to 2^-14, then Newton */
    s = ZOP(fmadd)(s, ZOP(fnmadd)(d, s, one), s);
#if !DLFR_IS_F32
    s = ZOP(fmadd)(s, ZOP(fnmadd)(d, s, one), s);
#endif
    ZMASK negative = ZCMP(z, ZOP(setzero)(), _CMP_LT_OQ);
    return ZOP(mask_mul)(s, negative, e, s); /* z < 0: e s; else (NaN too) s */
}

void FN(sigmoid)(const REAL *z, REAL *out, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + ZL <= n; i += ZL) ZOP(storeu)(out + i, FN(sigmoid_zmm)(ZOP(loadu)(z + i)));
    if (i < n) {
        ZMASK tail = (ZMASK)((1u << (n - i)) - 1);
        ZOP(mask_storeu)(out + i, tail, FN(sigmoid_zmm)(ZOP(maskz_loadu)(tail, z + i)));
    }
}
#undef ZV
#undef ZMASK
#undef ZOP
#undef ZCMP
#undef ZL
#elif ISA_NEON
/* NEON: sigmoid1 written with intrinsics, after sigmoid_zmm above. The same
 * clamp, range reduction and polynomial (by pairs); 2^k goes in by halves as
 * in exp_nonpos (NEON has no vscalef), exact whichever way k is split since
 * p 2^k1 stays normal; the divide is a reciprocal estimate (8 bits) refined
 * by frecps Newton steps (2 - d s), the last step in the fused form s + s (1
 * - d s), below an ulp before the final rounding. NaN passes: fmax returns
 * NaN when either operand is NaN (fmaxnm would not). */
#if DLFR_IS_F32
#define NV_T float32x4_t
#define NI_T int32x4_t
#define NOP(name) name##q_f32
#define NI(name) name##q_s32
#define NDUP vdupq_n_f32
#define NI_DUP vdupq_n_s32
#define NI_SHR vshrq_n_s32
#define NI_SHL vshlq_n_s32
#define N_CVT vcvtq_s32_f32
#define N_AS_REAL vreinterpretq_f32_s32
#define N_BIAS 127
#define N_MANT 23
#define N_STEPS 1 /* frecps steps before the fused one: 8 -> 16 -> 32 bits */
#else
#define NV_T float64x2_t
#define NI_T int64x2_t
#define NOP(name) name##q_f64
#define NI(name) name##q_s64
#define NDUP vdupq_n_f64
#define NI_DUP vdupq_n_s64
#define NI_SHR vshrq_n_s64
#define NI_SHL vshlq_n_s64
#define N_CVT vcvtq_s64_f64
#define N_AS_REAL vreinterpretq_f64_s64
#define N_BIAS 1023
#define N_MANT 52
#define N_STEPS 2 /* 8 -> 16 -> 32 -> 64 bits */
#endif
#define NL ((ptrdiff_t)(16 / sizeof(REAL)))

static inline NV_T FN(sigmoid_neon)(NV_T z)
{
    const NV_T one = NDUP(1);
    NV_T x = NOP(vneg)(NOP(vabs)(z)); /* -|z| */
    x = NOP(vmax)(NDUP(EXP_LO), x);
    const NV_T magic = NDUP(EXP_MAGIC);
    NV_T kf = NOP(vsub)(NOP(vfma)(magic, x, NDUP(EXP_LOG2E)), magic);
    NV_T r = NOP(vfms)(x, kf, NDUP(EXP_LN2_HI));
    r = NOP(vfms)(r, kf, NDUP(EXP_LN2_LO));
    const REAL *c = FN(exp_poly);
    NV_T r2 = NOP(vmul)(r, r);
    NV_T p = NOP(vfma)(NDUP(c[1]), NDUP(c[0]), r);
    for (size_t i = 2; i < EXP_TERMS; i += 2)
        p = NOP(vfma)(NOP(vfma)(NDUP(c[i + 1]), NDUP(c[i]), r), p, r2);
    p = NOP(vadd)(NOP(vfma)(r, p, r2), one);
    /* e^-|z| = p 2^k1 2^k2, k = k1 + k2 (kf is a whole number; NaN -> 0) */
    NI_T k = N_CVT(kf);
    NI_T k1 = NI_SHR(k, 1), k2 = NI(vsub)(k, k1);
    NV_T s1 = N_AS_REAL(NI_SHL(NI(vadd)(k1, NI_DUP(N_BIAS)), N_MANT));
    NV_T s2 = N_AS_REAL(NI_SHL(NI(vadd)(k2, NI_DUP(N_BIAS)), N_MANT));
    NV_T e = NOP(vmul)(NOP(vmul)(p, s1), s2);
    NV_T d = NOP(vadd)(one, e);
    NV_T s = NOP(vrecpe)(d);
    for (int i = 0; i < N_STEPS; i++) s = NOP(vmul)(s, NOP(vrecps)(d, s));
    s = NOP(vfma)(s, s, NOP(vfms)(one, d, s));
    /* z < 0: e s; else (NaN too) s */
    return NOP(vbsl)(NOP(vclt)(z, NDUP(0)), NOP(vmul)(e, s), s);
}

void FN(sigmoid)(const REAL *z, REAL *out, ptrdiff_t n)
{
    SIGMOID_BY_VECTORS(NV_T, NL, NOP(vld1), NOP(vst1), FN(sigmoid_neon));
}
#undef NV_T
#undef NI_T
#undef NOP
#undef NI
#undef NDUP
#undef NI_DUP
#undef NI_SHR
#undef NI_SHL
#undef N_CVT
#undef N_AS_REAL
#undef N_BIAS
#undef N_MANT
#undef N_STEPS
#undef NL
#elif VBYTES == 32 && DLFR_X86_DISPATCH
/* AVX2: sigmoid1 written with intrinsics, after sigmoid_zmm above (the
 * compiler's loop over sigmoid1 took 0.95 ns an element in float32 and 2.7 in
 * float64 on one Zen 3 core, measured). The same clamp, range reduction and
 * polynomial (by pairs); 2^k goes in by halves as in exp_nonpos (AVX2 has no
 * vscalef), exact whichever way k is split since p 2^k1 stays normal; a true
 * divide (vrcpps has 12 bits, too few for float32 after one Newton step).
 * NaN passes: max returns its second operand when one is NaN. */
#if DLFR_IS_F32
#define YV __m256
#define YOP(name) _mm256_##name##_ps
#define YI(name) _mm256_##name##_epi32
#define YI_SET1(x) _mm256_set1_epi32((int)(x))
#define Y_AS_INT _mm256_castps_si256
#define Y_AS_REAL _mm256_castsi256_ps
#define Y_BIAS 127
#define Y_MANT 23
#define Y_KOFF 256 /* k >= -151 here: k + Y_KOFF > 0, so a logical shift halves it */
#else
#define YV __m256d
#define YOP(name) _mm256_##name##_pd
#define YI(name) _mm256_##name##_epi64
#define YI_SET1(x) _mm256_set1_epi64x((long long)(x))
#define Y_AS_INT _mm256_castpd_si256
#define Y_AS_REAL _mm256_castsi256_pd
#define Y_BIAS 1023
#define Y_MANT 52
#define Y_KOFF 2048 /* k >= -1077 (AVX2 has no 64-bit arithmetic shift) */
#endif
#define YL ((ptrdiff_t)(32 / sizeof(REAL)))

static inline YV FN(sigmoid_ymm)(YV z)
{
    const YV one = YOP(set1)(1);
    X86_EXP_PARTS(YV, YOP, z, t, kf, p);
    (void)kf;
    /* k = t's integer part, read off its low mantissa bits; k = k1 + k2 */
    __m256i k = YI(sub)(Y_AS_INT(t), Y_AS_INT(YOP(set1)(EXP_MAGIC)));
    __m256i k1 = YI(sub)(YI(srli)(YI(add)(k, YI_SET1(Y_KOFF)), 1), YI_SET1(Y_KOFF / 2));
    __m256i k2 = YI(sub)(k, k1);
    YV s1 = Y_AS_REAL(YI(slli)(YI(add)(k1, YI_SET1(Y_BIAS)), Y_MANT));
    YV s2 = Y_AS_REAL(YI(slli)(YI(add)(k2, YI_SET1(Y_BIAS)), Y_MANT));
    YV e = YOP(mul)(YOP(mul)(p, s1), s2); /* e^-|z| */
    YV s = YOP(div)(one, YOP(add)(one, e));
    YV negative = YOP(cmp)(z, YOP(setzero)(), _CMP_LT_OQ);
    return YOP(blendv)(s, YOP(mul)(e, s), negative); /* z < 0: e s; else (NaN too) s */
}

void FN(sigmoid)(const REAL *z, REAL *out, ptrdiff_t n)
{
    SIGMOID_BY_VECTORS(YV, YL, YOP(loadu), YOP(storeu), FN(sigmoid_ymm));
}
#undef YV
#undef YOP
#undef YI
#undef YI_SET1
#undef Y_AS_INT
#undef Y_AS_REAL
#undef Y_BIAS
#undef Y_MANT
#undef Y_KOFF
#undef YL
#else
void FN(sigmoid)(const REAL *z, REAL *out, ptrdiff_t n)
{
    SIMD_LOOP
    for (ptrdiff_t i = 0; i < n; i++) out[i] = FN(sigmoid1)(z[i]);
}
#endif

/* sigma'(z) = e / (1 + e)^2 with e = e^-|z|: symmetric, accurate in the tails
 * where s * (1 - s) would round to 0. */
void FN(sigmoid_prime)(const REAL *z, REAL *out, ptrdiff_t n)
{
    SIMD_LOOP
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL e = FN(exp_nonpos)(-RFABS(z[i]));
        REAL s = (REAL)1 / ((REAL)1 + e);
        out[i] = e * s * s;
    }
}

void FN(sigmoid_backward)(const REAL *grad, const REAL *a, REAL *out, ptrdiff_t n)
{
    SIMD_LOOP
    for (ptrdiff_t i = 0; i < n; i++) out[i] = grad[i] * (a[i] * ((REAL)1 - a[i]));
}

static void FN(softmax_row)(REAL *y, ptrdiff_t cols)
{
    REAL m = y[0];
    for (ptrdiff_t j = 1; j < cols; j++) m = (y[j] > m || y[j] != y[j]) ? y[j] : m;
    if (m != m) { /* a NaN anywhere makes the whole row NaN */
        for (ptrdiff_t j = 0; j < cols; j++) y[j] = m;
        return;
    }
    REAL sum = 0;
    if (m == (REAL)INFINITY) { /* the +inf entries share the mass */
        for (ptrdiff_t j = 0; j < cols; j++) { y[j] = (y[j] == m); sum += y[j]; }
    } else {
        SIMD_LOOP
        for (ptrdiff_t j = 0; j < cols; j++) {
            y[j] = FN(exp_nonpos)(y[j] - m);
        }
        for (ptrdiff_t j = 0; j < cols; j++) sum += y[j];
    }
    REAL inv = (REAL)1 / sum;
    for (ptrdiff_t j = 0; j < cols; j++) y[j] *= inv;
}

void FN(activate)(const REAL *z, REAL *out, ptrdiff_t n, int act)
{
    switch (act) {
    case DLFR_SIGMOID: FN(sigmoid)(z, out, n); break;
    case DLFR_TANH:
        for (ptrdiff_t i = 0; i < n; i++) out[i] = RTANH(z[i]);
        break;
#define EACH(ACT)                                                          \
    do {                                                                   \
        SIMD_LOOP                                                          \
        for (ptrdiff_t i = 0; i < n; i++) out[i] = FN(activate1)(z[i], ACT); \
    } while (0)
    case DLFR_RELU: EACH(DLFR_RELU); break;
    case DLFR_STEP: EACH(DLFR_STEP); break;
    case DLFR_LEAKY_RELU: EACH(DLFR_LEAKY_RELU); break;
    case DLFR_ELU: EACH(DLFR_ELU); break;
#undef EACH
    default:
        if (out != z)
            for (ptrdiff_t i = 0; i < n; i++) out[i] = z[i];
    }
}

void FN(bias_act)(REAL *Y, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ldy, const REAL *b, int act)
{
    if (b)
        for (ptrdiff_t r = 0; r < rows; r++) {
            REAL *y = Y + r * ldy;
            SIMD_LOOP
            for (ptrdiff_t j = 0; j < cols; j++) y[j] += b[j];
        }
    if (act == DLFR_IDENTITY) return;
    if (act != DLFR_SOFTMAX && cols == ldy) {
        /* contiguous block: one long vectorised pass */
        FN(activate)(Y, Y, rows * cols, act);
        return;
    }
    for (ptrdiff_t r = 0; r < rows; r++) {
        if (act == DLFR_SOFTMAX)
            FN(softmax_row)(Y + r * ldy, cols);
        else
            FN(activate)(Y + r * ldy, Y + r * ldy, cols, act);
    }
}

void FN(act_backward)(REAL *delta, const REAL *a, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld,
                      int act)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        REAL *d = delta + r * ld;
        const REAL *y = a + r * ld;
        switch (act) {
        case DLFR_SIGMOID:
            SIMD_LOOP
            for (ptrdiff_t j = 0; j < cols; j++) d[j] *= y[j] * ((REAL)1 - y[j]);
            break;
        case DLFR_TANH:
            SIMD_LOOP
            for (ptrdiff_t j = 0; j < cols; j++) d[j] *= (REAL)1 - y[j] * y[j];
            break;
        case DLFR_RELU:
            SIMD_LOOP
            for (ptrdiff_t j = 0; j < cols; j++) d[j] = y[j] > 0 ? d[j] : (REAL)0;
            break;
        case DLFR_STEP: /* flat almost everywhere: no gradient flows */
            for (ptrdiff_t j = 0; j < cols; j++) d[j] = 0;
            break;
        case DLFR_LEAKY_RELU: /* a has z's sign */
            SIMD_LOOP
            for (ptrdiff_t j = 0; j < cols; j++)
                d[j] = y[j] > 0 ? d[j] : d[j] * (REAL)DLFR_LEAKY_RELU_SLOPE;
            break;
        case DLFR_ELU: /* a = e^z - 1 below 0: f'(z) = e^z = a + 1 */
            SIMD_LOOP
            for (ptrdiff_t j = 0; j < cols; j++) d[j] = y[j] > 0 ? d[j] : d[j] * (y[j] + 1);
            break;
        default:
            break;
        }
    }
}

/* ---- training: the output layer's delta, the bias step ---- */

static inline double FN(safe_log)(double x) { return log(x > DBL_MIN ? x : DBL_MIN); }

double FN(output_delta)(const REAL *A, const REAL *Y, const REAL *w, REAL *D, ptrdiff_t rows,
                        ptrdiff_t n_out, ptrdiff_t ld, int act, int loss, double *hits)
{
    double total = 0, correct = 0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const REAL *a = A + r * ld, *y = Y + r * n_out;
        REAL *d = D + r * ld;
        double row = 0;
        SIMD_LOOP
        for (ptrdiff_t j = 0; j < n_out; j++) d[j] = a[j] - y[j];
        if (loss == DLFR_MSE)
            for (ptrdiff_t j = 0; j < n_out; j++) row += 0.5 * (double)d[j] * d[j];
        else if (act == DLFR_SOFTMAX)
            for (ptrdiff_t j = 0; j < n_out; j++) row -= y[j] * FN(safe_log)(a[j]);
        else
            for (ptrdiff_t j = 0; j < n_out; j++)
                row -= y[j] * FN(safe_log)(a[j]) + (1 - y[j]) * FN(safe_log)(1 - (double)a[j]);
        /* a weight of 1 multiplies exactly: weights of all ones train as none */
        REAL weight = w ? w[r] : (REAL)1;
        if (w) {
            SIMD_LOOP
            for (ptrdiff_t j = 0; j < n_out; j++) d[j] *= weight;
        }
        total += weight * row;
        if (n_out == 1) {
            correct += (a[0] >= (REAL)0.5) == (y[0] >= (REAL)0.5) ? (double)weight : 0.0;
            continue;
        }
        /* first maxima of a and y, without data-dependent branches */
        ptrdiff_t best_a = 0, best_y = 0;
        REAL max_a = a[0], max_y = y[0];
        for (ptrdiff_t j = 1; j < n_out; j++) {
            best_a = a[j] > max_a ? j : best_a;
            max_a = a[j] > max_a ? a[j] : max_a;
            best_y = y[j] > max_y ? j : best_y;
            max_y = y[j] > max_y ? y[j] : max_y;
        }
        correct += best_a == best_y ? (double)weight : 0.0;
    }
    /* the quadratic cost also goes through the output activation */
    if (loss == DLFR_MSE) FN(act_backward)(D, A, rows, n_out, ld, act);
    *hits += correct;
    return total;
}

void FN(bias_update)(REAL *b, const REAL *D, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld,
                     REAL alpha)
{
    enum { BLOCK = 64 }; /* columns summed at a time, in a vectorised pass per row */
    for (ptrdiff_t j0 = 0; j0 < cols; j0 += BLOCK) {
        ptrdiff_t w = cols - j0 < BLOCK ? cols - j0 : BLOCK;
        REAL sum[BLOCK] = {0};
        for (ptrdiff_t r = 0; r < rows; r++) {
            const REAL *d = D + r * ld + j0;
            SIMD_LOOP
            for (ptrdiff_t j = 0; j < w; j++) sum[j] += d[j];
        }
        SIMD_LOOP
        for (ptrdiff_t j = 0; j < w; j++) b[j0 + j] += alpha * sum[j];
    }
}

/* ---- GEMM: register-blocked, DLFR_PANEL output columns at a time ----
 * (on AVX-512, columns in whole blocks of WIDE_COLS go to the wide kernel
 * further down instead; FN(gemm) splits the columns)
 *
 * Batch invariance (forward): every output element is the same arithmetic
 * whatever block its row falls in (and so whatever the batch size or how
 * rows were split into chunks, threads or dask blocks): bias + a fixed tree
 * over S partial sums, partial s taking the products p = s, s + S, s + 2S,
 * ... in order. Blocks differ only in how many rows share a load of B.
 * S > 1 also gives a single row S independent FMA chains, so batch 1 is not
 * bound by the FMA latency. (AVX-512 float32 uses the pair kernel below
 * instead, with its own fixed tree; the wide kernel takes one in-order sum
 * per output.)
 *
 * The loops over rows, partial sums and vectors have constant trip counts
 * and are unrolled fully, so GCC keeps the accumulators in registers (an
 * array indexed by a variable would live in memory).
 */

#if VBYTES > 0
typedef REAL FN(vec) __attribute__((vector_size(VBYTES)));
typedef REAL FN(vec_u) __attribute__((vector_size(VBYTES), aligned(sizeof(REAL))));
#define VL ((ptrdiff_t)(VBYTES / sizeof(REAL)))
#define NV (DLFR_PANEL / VL)              /* vectors per panel row */
/* Rows per block: 8 accumulator vectors' worth, as in every configuration
 * since the batch sizes people use (8, 16, 32, 256, ...) then leave no
 * short blocks. On AVX-512 each element gets 3 partial sums (24 of the 32
 * registers); with AVX2's 16 registers there is room for one. (AVX-512
 * float32 forward passes take the pair kernel below, 12 rows a block;
 * below AVX-512 the forward pass takes the in-order tiles further down, and
 * MR sizes only the training update's blocks.) */
#define MR (8 / NV > 0 ? 8 / NV : 1)
#define SPLIT (VBYTES == 64 ? 3 : 1)
/* Rows per block of the training update: one partial sum, so AVX-512's 32
 * registers hold twice the rows (16 accumulators). */
#define UR (VBYTES == 64 ? 2 * MR : MR)
#define UNROLL _Pragma("GCC unroll 16")
/* On AVX-512 the forward kernels prefetch the next block's rows from inside
 * their k loop at the pace they read their own (see FN(micro) and
 * FN(wide_micro)), with prefetcht0 written out:
 * GCC keeps the accumulators in memory instead of registers when that loop
 * holds __builtin_prefetch or an asm with a memory operand (2.5x slower,
 * measured). Elsewhere a step reads 16 bytes or less in all (one prefetch a
 * step would mostly repeat itself: 5-10 % slower, measured), and FN(gemm)
 * starts each next block's rows itself, two lines of each; the in-order
 * tiles below AVX-512 prefetch only for gemm_stream, a line at a time. */
#if VBYTES == 64 && defined(__x86_64__)
#define LOOP_PREFETCH 1
#define PREFETCH(address) __asm__ volatile("prefetcht0 (%0)" : : "r"(address))
#else
#define LOOP_PREFETCH 0
#define PREFETCH(address) ((void)(address))
#endif

/* C rows [0, R) x one panel = bias + A rows [0, R) @ B panel; row i of A
 * starts at A + i*lda; only the first `cols` columns of C are written (the
 * last panel of a layer written straight into its output). Always inlined
 * into the fixed-R wrappers below. */
static inline __attribute__((always_inline)) void FN(micro)(
    const int R, const int S, ptrdiff_t k, const REAL *A, ptrdiff_t lda, const REAL *B,
    ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc, int cols)
{
    FN(vec) acc[R][S][NV];
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int t = 0; t < S; t++)
            UNROLL for (int v = 0; v < NV; v++) acc[r][t][v] = (FN(vec)){0};
    /* The R rows after these (the next block, when rows lie one after another
     * as a batch's do) are fetched toward the cache while this block runs,
     * walking that block's bytes at the pace this one reads its own: R * S
     * values (96 bytes) a step, so two lines a step cover every line. Streaming
     * a batch from memory is 1.4x faster so (the hardware prefetcher alone
     * starts late on each of the block's row streams), and the second line
     * another 7 %, measured. An address, not a pointer: it runs past the end
     * of A in the last block, and prefetcht0 never faults. */
    uintptr_t ahead = (uintptr_t)A + (uintptr_t)(R * lda) * sizeof(REAL);
    ptrdiff_t p = 0;
    for (; p + S <= k; p += S) {
        if (LOOP_PREFETCH) {
            PREFETCH(ahead);
            PREFETCH(ahead + DLFR_CACHE_LINE);
            ahead += R * S * sizeof(REAL);
        }
        UNROLL for (int t = 0; t < S; t++) {
            FN(vec) bv[NV];
            UNROLL for (int v = 0; v < NV; v++)
                bv[v] = *(const FN(vec_u) *)(B + (p + t) * ldb + v * VL);
            UNROLL for (int r = 0; r < R; r++) {
                REAL x = A[r * lda + p + t];
                UNROLL for (int v = 0; v < NV; v++) acc[r][t][v] += x * bv[v];
            }
        }
    }
    /* the k % S leftover products, partial t taking product p + t */
    UNROLL for (int t = 0; t < S - 1; t++)
        if (p + t < k)
            UNROLL for (int r = 0; r < R; r++) {
                REAL x = A[r * lda + p + t];
                UNROLL for (int v = 0; v < NV; v++)
                    acc[r][t][v] += x * *(const FN(vec_u) *)(B + (p + t) * ldb + v * VL);
            }
    UNROLL for (int r = 0; r < R; r++) {
        REAL part[DLFR_PANEL]; /* a partial panel's row, before its first columns go out */
        REAL *row = cols == DLFR_PANEL ? C + r * ldc : part;
        UNROLL for (int v = 0; v < NV; v++) {
            FN(vec) sum = acc[r][0][v]; /* the fixed tree over the partial sums */
            if (S == 3)
                sum = (acc[r][0][v] + acc[r][1][v]) + acc[r][2][v];
            *(FN(vec_u) *)(row + v * VL) = bias ? sum + *(const FN(vec_u) *)(bias + v * VL) : sum;
        }
        if (row == part) memcpy(C + r * ldc, part, (size_t)cols * sizeof(REAL));
    }
}

/* C rows [0, R) x one panel += alpha * (A^T @ B): A is (k, m) with row stride
 * lda, so C's row i takes column i of A (R consecutive values of each row p).
 * The training update: k is the mini-batch, short, so one partial sum per
 * element, and up to UR rows share each load of B. */
static inline __attribute__((always_inline)) void FN(update_micro)(
    const int R, ptrdiff_t k, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,
    REAL *C, ptrdiff_t ldc, REAL alpha)
{
    FN(vec) acc[R][NV];
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int v = 0; v < NV; v++) acc[r][v] = (FN(vec)){0};
    for (ptrdiff_t p = 0; p < k; p++) {
        FN(vec) bv[NV];
        UNROLL for (int v = 0; v < NV; v++) bv[v] = *(const FN(vec_u) *)(B + p * ldb + v * VL);
        UNROLL for (int r = 0; r < R; r++) {
            REAL x = A[p * lda + r];
            UNROLL for (int v = 0; v < NV; v++) acc[r][v] += x * bv[v];
        }
    }
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int v = 0; v < NV; v++) *(FN(vec_u) *)(C + r * ldc + v * VL) += alpha * acc[r][v];
}

#define FORWARD_WRAPPER(ROWS)                                                           \
    static __attribute__((noinline)) void FN(micro_##ROWS)(                             \
        ptrdiff_t k, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,        \
        const REAL *bias, REAL *C, ptrdiff_t ldc, int cols)                             \
    {                                                                                   \
        FN(micro)(ROWS < MR ? ROWS : MR, SPLIT, k, A, lda, B, ldb, bias, C, ldc, cols); \
    }
#define UPDATE_WRAPPER(ROWS)                                                            \
    static __attribute__((noinline)) void FN(update_##ROWS)(                            \
        ptrdiff_t k, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,        \
        REAL *C, ptrdiff_t ldc, REAL alpha)                                             \
    {                                                                                   \
        FN(update_micro)(ROWS < UR ? ROWS : UR, k, A, lda, B, ldb, C, ldc, alpha); \
    }
/* AVX-512 float32 forward panels all go to the pair kernel below */
#define PAIR_KERNEL (VBYTES == 64 && DLFR_X86_DISPATCH && DLFR_IS_F32)
/* narrower vectors forward by the in-order tiles below */
#define INORDER_KERNEL (VBYTES > 0 && VBYTES < 64)
#if !PAIR_KERNEL && !INORDER_KERNEL
FORWARD_WRAPPER(8) FORWARD_WRAPPER(4) FORWARD_WRAPPER(2) FORWARD_WRAPPER(1)
#endif
UPDATE_WRAPPER(16) UPDATE_WRAPPER(8) UPDATE_WRAPPER(4) UPDATE_WRAPPER(1)
#undef FORWARD_WRAPPER
#undef UPDATE_WRAPPER

#if PAIR_KERNEL
/* AVX-512 float32 forward GEMM by pairs of products. The kernel above
 * broadcasts one A value per FMA: with B's row that is 9 loads for 8 FMAs,
 * and the two load ports, not the FMA units, set its pace (88 % of peak).
 * Here one 8-byte broadcast brings two A values, (A[p], A[p+1]) in every lane
 * pair, against B's rows p and p+1 interleaved (lane 2j from row p, lane
 * 2j+1 from row p+1, column j): two FMAs cover 16 columns x 2 products.
 * Two partial sums per output, the even products in lane 2j and the odd ones
 * in lane 2j+1, and the output is even + odd + bias whatever block its row
 * falls in (batch-invariant). Rows per block: 12 (24 accumulators), so the
 * two permutes that interleave a pair of B's rows serve 24 FMAs. 784 -> 16
 * in a C loop with the data in cache, one Zen 5 core: 246-250 GFLOP/s with
 * 6 rows and four partial sums (four permutes per 24 FMAs), 258-262 with 12
 * rows and two, measured. */
#define PR 12 /* rows per full block */
/* It takes every sum, short ones too: 4096 rows x 16 columns with sigmoid on
 * one thread, k = 1-16 ran 5-15 % faster than on the kernel above and k =
 * 96-128 level with it; 784-16-10 at 4096 rows 9 % faster than with the
 * 6-row pair kernel, measured. The price is batch 1: each output is two
 * chains of k / 2 dependent FMAs (784 -> 16: 0.07 us more than with four
 * partial sums). */

static inline __attribute__((always_inline)) __m512 FN(pair_of)(const float *a)
{
    double two; /* A[p], A[p+1] as one 8-byte value, broadcast */
    memcpy(&two, a, sizeof two);
    return _mm512_castpd_ps(_mm512_set1_pd(two));
}

static inline __attribute__((always_inline)) void FN(pair_micro)(
    const int R, ptrdiff_t k, const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
    const float *bias, float *C, ptrdiff_t ldc, __mmask16 keep)
{
    /* lanes (2j, 2j+1) <- (first[j], second[j]), columns 0-7 and 8-15 */
    const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30,
                                           15, 31);
    __m512 acc[R][2]; /* [columns 0-7, columns 8-15], even and odd products interleaved */
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int h = 0; h < 2; h++) acc[r][h] = _mm512_setzero_ps();
    /* prefetch the next block's rows as in FN(micro): a step reads R pairs of
     * A values (96 bytes at 12 rows), two lines ahead cover them */
    uintptr_t ahead = (uintptr_t)A + (uintptr_t)(R * lda) * sizeof(float);
    ptrdiff_t p = 0;
    for (; p + 2 <= k; p += 2) {
        PREFETCH(ahead);
        if (2 * R * sizeof(float) > DLFR_CACHE_LINE) PREFETCH(ahead + DLFR_CACHE_LINE);
        ahead += 2 * R * sizeof(float);
        __m512 b0 = _mm512_loadu_ps(B + p * ldb), b1 = _mm512_loadu_ps(B + (p + 1) * ldb);
        /* each row loaded once into a register (GCC would fold the loads into
         * both permutes of a row: twice the loads, all split ones when B does
         * not start a cache line) */
        __asm__("" : "+v"(b0), "+v"(b1));
        __m512 x0 = _mm512_permutex2var_ps(b0, low, b1), x1 = _mm512_permutex2var_ps(b0, high, b1);
        /* rows 0-5 and 6-11 off two bases at 0-5 x lda: GCC then keeps every
         * address in a register (twelve row pointers left three reloaded
         * from the stack each step; this is ~1 % faster, measured) */
        const float *a_lo = A + p, *a_hi = R > 6 ? A + 6 * lda + p : a_lo;
        UNROLL for (int r = 0; r < R; r++) {
            __m512 two = FN(pair_of)((r < 6 ? a_lo : a_hi) + (r % 6) * lda);
            acc[r][0] = _mm512_fmadd_ps(two, x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(two, x1, acc[r][1]);
        }
    }
    if (p < k) { /* odd k: the last product with a 0 x 0 partner (adding +0 changes nothing) */
        __m512 b0 = _mm512_loadu_ps(B + p * ldb), b1 = _mm512_setzero_ps();
        __m512 x0 = _mm512_permutex2var_ps(b0, low, b1), x1 = _mm512_permutex2var_ps(b0, high, b1);
        UNROLL for (int r = 0; r < R; r++) {
            __m512 two = _mm512_setr4_ps(A[r * lda + p], 0.0f, A[r * lda + p], 0.0f);
            acc[r][0] = _mm512_fmadd_ps(two, x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(two, x1, acc[r][1]);
        }
    }
    /* column j = even + odd: lanes 2j and 2j+1 of the column's half */
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    UNROLL for (int r = 0; r < R; r++) {
        __m512 sum = _mm512_add_ps(_mm512_permutex2var_ps(acc[r][0], even, acc[r][1]),
                                   _mm512_permutex2var_ps(acc[r][0], odd, acc[r][1]));
        if (bias) sum = _mm512_add_ps(sum, _mm512_loadu_ps(bias));
        _mm512_mask_storeu_ps(C + r * ldc, keep, sum); /* `keep`: the columns written */
    }
}

#define PAIR_WRAPPER(ROWS)                                                              \
    static __attribute__((noinline)) void FN(pair_##ROWS)(                              \
        ptrdiff_t k, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,        \
        const REAL *bias, REAL *C, ptrdiff_t ldc, int cols)                             \
    {                                                                                   \
        FN(pair_micro)(ROWS, k, A, lda, B, ldb, bias, C, ldc,                           \
                       (__mmask16)(cols >= 16 ? 0xFFFF : (1u << cols) - 1));            \
    }
PAIR_WRAPPER(12) PAIR_WRAPPER(4) PAIR_WRAPPER(2) PAIR_WRAPPER(1)
#undef PAIR_WRAPPER
#endif

#if VBYTES == 64 && DLFR_X86_DISPATCH
/* AVX-512 wide layers: blocks of WR rows x WV vectors (6 x 64 float32 or 6 x
 * 32 float64 columns), one sum per output taking its products in order, so
 * every row is the same arithmetic whatever block it falls in
 * (batch-invariant). A step is WV loads of B and WR broadcasts of A for 24
 * FMAs, few enough that the FMA units set the pace: 4096 x 784 x 256 float32
 * at 246-254 GFLOP/s on one Zen 5 core in a C harness, where OpenBLAS's sgemm
 * ran 204-228 (numpy's and scipy's builds; float64 99 against 74-80,
 * measured). The narrow kernels above hold a 16-column panel and read A once
 * per panel; this one reads it once per WIDE_COLS columns. */
#define WIDE_KERNEL 1
#define WR 6
#define WV 4
#define WIDE_COLS (WV * VL)

/* C rows [0, R) x WIDE_COLS columns = bias + A rows @ B's columns; `fetch`:
 * bring the next block's rows toward the cache meanwhile (the first column
 * block of a row block does it, the others find them there). */
static inline __attribute__((always_inline)) void FN(wide_micro)(
    const int R, const int fetch, ptrdiff_t k, const REAL *A, ptrdiff_t lda, const REAL *B,
    ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)
{
    FN(vec) acc[R][WV];
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int v = 0; v < WV; v++) acc[r][v] = (FN(vec)){0};
    /* two steps read 2R values of A (48 bytes float32, 96 float64): one or two
     * prefetches every two steps walk the next block at the same pace */
    uintptr_t ahead = (uintptr_t)A + (uintptr_t)(R * lda) * sizeof(REAL);
    ptrdiff_t p = 0;
    for (; p < k; p += 2) {
        if (fetch) {
            PREFETCH(ahead);
            if (2 * R * sizeof(REAL) > DLFR_CACHE_LINE) PREFETCH(ahead + DLFR_CACHE_LINE);
            ahead += 2 * R * sizeof(REAL);
        }
        UNROLL for (int t = 0; t < 2; t++) {
            if (t == 1 && p + 1 == k) break; /* odd k: the last step alone */
            FN(vec) bv[WV];
            UNROLL for (int v = 0; v < WV; v++)
                bv[v] = *(const FN(vec_u) *)(B + (p + t) * ldb + v * VL);
            UNROLL for (int r = 0; r < R; r++) {
                REAL x = A[r * lda + p + t];
                UNROLL for (int v = 0; v < WV; v++) acc[r][v] += x * bv[v];
            }
        }
    }
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int v = 0; v < WV; v++) {
            FN(vec_u) *c = (FN(vec_u) *)(C + r * ldc + v * VL);
            *c = bias ? acc[r][v] + *(const FN(vec_u) *)(bias + v * VL) : acc[r][v];
        }
}

#define WIDE_WRAPPER(ROWS)                                                              \
    static __attribute__((noinline)) void FN(wide_##ROWS)(                              \
        int fetch, ptrdiff_t k, const REAL *A, ptrdiff_t lda, const REAL *B,            \
        ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)                        \
    {                                                                                   \
        if (fetch)                                                                      \
            FN(wide_micro)(ROWS, 1, k, A, lda, B, ldb, bias, C, ldc);                   \
        else                                                                            \
            FN(wide_micro)(ROWS, 0, k, A, lda, B, ldb, bias, C, ldc);                   \
    }
WIDE_WRAPPER(6) WIDE_WRAPPER(4) WIDE_WRAPPER(2) WIDE_WRAPPER(1)
#undef WIDE_WRAPPER

/* C[:, :n] for n a multiple of WIDE_COLS: row blocks of 6, then 4, 2, 1 */
static void FN(gemm_wide)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
                          const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)
{
    typedef void (*kernel)(int, ptrdiff_t, const REAL *, ptrdiff_t, const REAL *, ptrdiff_t,
                           const REAL *, REAL *, ptrdiff_t);
    const kernel kernels[4] = {FN(wide_6), FN(wide_4), FN(wide_2), FN(wide_1)};
    const int rows[4] = {WR, 4, 2, 1};
    ptrdiff_t i = 0;
    for (int b = 0; b < 4; b++)
        for (; i + rows[b] <= m; i += rows[b])
            for (ptrdiff_t j = 0; j < n; j += WIDE_COLS)
                kernels[b](j == 0, k, A + i * lda, lda, B + j, ldb, bias ? bias + j : NULL,
                           C + i * ldc + j, ldc);
}
#else
#define WIDE_KERNEL 0
#endif

#if !INORDER_KERNEL
/* C[:, :n] in panels of DLFR_PANEL columns (the narrow kernels); a last
 * panel of fewer columns reads whole panels of B and bias but writes only
 * its columns of C */
static void FN(gemm_panels)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
                            const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)
{
    typedef void (*kernel)(ptrdiff_t, const REAL *, ptrdiff_t, const REAL *, ptrdiff_t,
                           const REAL *, REAL *, ptrdiff_t, int);
    /* full blocks (12 rows by pairs, MR otherwise), then the rest in blocks
     * of 4, 2 and 1 rows (clamped to MR, so a block never exceeds the
     * registers) */
#if PAIR_KERNEL
    const kernel kernels[4] = {FN(pair_12), FN(pair_4), FN(pair_2), FN(pair_1)};
    const int rows[4] = {PR, 4, 2, 1};
#else
    const kernel kernels[4] = {FN(micro_8), FN(micro_4), FN(micro_2), FN(micro_1)};
    const int rows[4] = {MR, 4 < MR ? 4 : MR, 2 < MR ? 2 : MR, 1};
#endif
    ptrdiff_t i = 0;
    for (int b = 0; b < 4; b++)
        for (; i + rows[b] <= m; i += rows[b]) {
            if (!LOOP_PREFETCH) /* the next block's rows: two lines of each */
                for (ptrdiff_t r = i + rows[b]; r < i + 2 * rows[b] && r < m; r++) {
                    __builtin_prefetch(A + r * lda, 0, 3);
                    __builtin_prefetch((const char *)(A + r * lda) + 64, 0, 3);
                }
            for (ptrdiff_t j = 0; j < n; j += DLFR_PANEL)
                kernels[b](k, A + i * lda, lda, B + j, ldb, bias ? bias + j : NULL,
                           C + i * ldc + j, ldc, n - j < DLFR_PANEL ? (int)(n - j) : DLFR_PANEL);
        }
}

#endif /* !INORDER_KERNEL */

#if INORDER_KERNEL
/* SIMD levels narrower than AVX-512 (AVX2, the generic build's 16-byte
 * vectors, NEON): every output is ONE sum taking its products in order, then
 * the bias, on every tile and block below (batch-invariant, and the same
 * arithmetic as the AVX-512 wide kernel's order). Tiles are R rows x V vectors
 * of accumulators, sized from the registers the level has (ACC of VREGS);
 * which tile a row or column falls in changes how many rows share a load of
 * B, never the sum.
 *   rows in whole blocks of IR: tiles of IR x IV vectors, with k cut in
 *     blocks of IKC so a block of B stays in L1 while every row block of the
 *     call walks it (a block's partial sums wait in C, in REAL, so the chain
 *     continues exactly where it stopped);
 *     the rows after the last whole block go with the blocks, tile by tile;
 *   calls of fewer than IR rows (batch 1-5 on AVX2): wide tiles of up to 8
 *     vectors a row, B streamed once, so a layer's weights are read once for
 *     a handful of rows instead of once per row. */
#define ACC (VREGS >= 32 ? 24 : 12) /* accumulator registers a tile may hold */
/* vectors per panel row (NV in the preprocessor's terms: it sizes the tiles
 * below, and sizeof is not one) */
#define INV (DLFR_PANEL * (DLFR_IS_F32 ? 4 : 8) / VBYTES)
#define IV (INV < 4 ? INV : 4)           /* vectors per row of a blocked tile */
#define IR (ACC / IV)                    /* rows per block */
#define IKC ((ptrdiff_t)(16384 / (IV * VBYTES))) /* products per k block: B's block is 16 KB */
/* vectors per row of a few-row tile of R rows: as many as the registers
 * allow, up to 8, in whole IV-vector steps */
#define FEW_CAP(R) (ACC / (R) < 8 ? ACC / (R) : 8)
#define FEWV(R) (FEW_CAP(R) / IV * IV > 0 ? FEW_CAP(R) / IV * IV : IV)

/* C rows [0, R) x columns [0, V*VL) (only `cols` of them written when
 * cols < V*VL) = bias + A rows @ B columns over k products. `first`: the
 * sums start at 0, else from C's stored partial sums; `last`: add the bias
 * and write the result, else store the partial sums (whole tiles only). */
static inline __attribute__((always_inline)) void FN(tile)(
    const int PF, const int R, const int V, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
    const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc, int cols, int first,
    int last)
{
    FN(vec) acc[R][8]; /* a constant bound (V is at most 8): a VLA would live in memory */
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int v = 0; v < V; v++)
            acc[r][v] = first ? (FN(vec)){0} : *(const FN(vec_u) *)(C + r * ldc + v * VL);
#define TILE_STEP(P)                                                                     \
    do {                                                                                 \
        FN(vec) bv[8];                                                                   \
        UNROLL for (int v = 0; v < V; v++) bv[v] = *(const FN(vec_u) *)(B + (P) * ldb + v * VL); \
        UNROLL for (int r = 0; r < R; r++) {                                             \
            REAL x = A[r * lda + (P)];                                                   \
            UNROLL for (int v = 0; v < V; v++) acc[r][v] += x * bv[v];                   \
        }                                                                                \
    } while (0)
    enum { LINE = DLFR_CACHE_LINE / sizeof(REAL) };
    ptrdiff_t p = 0;
    /* PF (A streaming from memory): a line of each of the next R rows per
     * line of these, so they arrive while this tile computes */
    if (PF)
        for (; p + LINE <= k; p += LINE) {
            UNROLL for (int r = 0; r < R; r++) __builtin_prefetch(A + (R + r) * lda + p);
            for (int q = 0; q < LINE; q++) TILE_STEP(p + q);
        }
    for (; p < k; p++) TILE_STEP(p);
#undef TILE_STEP
    UNROLL for (int r = 0; r < R; r++) {
        REAL part[8 * VL]; /* a partial tile's row, before its first columns go out */
        REAL *row = cols == V * VL ? C + r * ldc : part;
        UNROLL for (int v = 0; v < V; v++) {
            FN(vec) sum = acc[r][v];
            if (last && bias) sum += *(const FN(vec_u) *)(bias + v * VL);
            *(FN(vec_u) *)(row + v * VL) = sum;
        }
        if (row == part) memcpy(C + r * ldc, part, (size_t)cols * sizeof(REAL));
    }
}

typedef void (*FN(tile_fn))(ptrdiff_t, const REAL *, ptrdiff_t, const REAL *, ptrdiff_t,
                            const REAL *, REAL *, ptrdiff_t, int, int, int);
#define TILE_WRAPPER_PF(PF, ROWS, VECS, NAME)                                           \
    static __attribute__((noinline)) void FN(NAME)(                                     \
        ptrdiff_t k, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,        \
        const REAL *bias, REAL *C, ptrdiff_t ldc, int cols, int first, int last)        \
    {                                                                                   \
        FN(tile)(PF, ROWS, VECS, k, A, lda, B, ldb, bias, C, ldc, cols, first, last);   \
    }
#define TILE_WRAPPER(ROWS, VECS, NAME) TILE_WRAPPER_PF(0, ROWS, VECS, NAME)
/* rows 1..IR (IR is at most 6 here): a blocked tile and a wide few-row tile each */
TILE_WRAPPER(IR, IV, tile_block)
TILE_WRAPPER_PF(1, IR, IV, tile_block_stream)
TILE_WRAPPER(1, IV, tile_1) TILE_WRAPPER(1, FEWV(1), few_1)
#if IR > 1
TILE_WRAPPER(2, IV, tile_2) TILE_WRAPPER(2, FEWV(2), few_2)
#endif
#if IR > 2
TILE_WRAPPER(3, IV, tile_3) TILE_WRAPPER(3, FEWV(3), few_3)
#endif
#if IR > 3
TILE_WRAPPER(4, IV, tile_4) TILE_WRAPPER(4, FEWV(4), few_4)
#endif
#if IR > 4
TILE_WRAPPER(5, IV, tile_5) TILE_WRAPPER(5, FEWV(5), few_5)
#endif
#undef TILE_WRAPPER
#undef TILE_WRAPPER_PF

/* Rows [0, rows) (rows < IR, or any count) with B streamed once: column
 * tiles as wide as the registers allow for that many rows, then IV-vector
 * tiles for the columns left; a tile never reads past B's padded width np. */
static void FN(gemm_few)(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t np, ptrdiff_t k, const REAL *A,
                         ptrdiff_t lda, const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C,
                         ptrdiff_t ldc)
{
    static const struct { int rows, few_vecs; FN(tile_fn) few, narrow; } tiles[] = {
        {1, FEWV(1), FN(few_1), FN(tile_1)},
#if IR > 1
        {2, FEWV(2), FN(few_2), FN(tile_2)},
#endif
#if IR > 2
        {3, FEWV(3), FN(few_3), FN(tile_3)},
#endif
#if IR > 3
        {4, FEWV(4), FN(few_4), FN(tile_4)},
#endif
#if IR > 4
        {5, FEWV(5), FN(few_5), FN(tile_5)},
#endif
    };
    const int n_tiles = (int)(sizeof tiles / sizeof tiles[0]);
    ptrdiff_t i = 0;
    while (i < rows) {
        int t = (int)(rows - i < n_tiles ? rows - i : n_tiles) - 1;
        const ptrdiff_t wide = tiles[t].few_vecs * VL, narrow = IV * VL;
        ptrdiff_t j = 0;
        for (; j + wide <= np; j += wide)
            if (n - j > 0)
                tiles[t].few(k, A + i * lda, lda, B + j, ldb, bias ? bias + j : NULL,
                             C + i * ldc + j, ldc, (int)(n - j < wide ? n - j : wide), 1, 1);
        for (; j < np; j += narrow)
            if (n - j > 0)
                tiles[t].narrow(k, A + i * lda, lda, B + j, ldb, bias ? bias + j : NULL,
                                C + i * ldc + j, ldc, (int)(n - j < narrow ? n - j : narrow), 1, 1);
        i += tiles[t].rows;
    }
}

static void FN(gemm_inorder)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
                             const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C,
                             ptrdiff_t ldc, int stream)
{
    const FN(tile_fn) block = stream ? FN(tile_block_stream) : FN(tile_block);
    const ptrdiff_t np = (n + DLFR_PANEL - 1) / DLFR_PANEL * DLFR_PANEL; /* B's padded width */
    const ptrdiff_t tw = IV * VL, blocked = m - m % IR, full = n - n % tw;
    /* B's rows lie ldb apart: a k block of them one tile wide maps onto few
     * L1 sets when that stride is a multiple of a large power of two (256
     * float32 columns: 4 of 64 sets) and does not stay in L1 while the row
     * blocks walk it. Copied to consecutive rows it does, when enough row
     * blocks share it to repay the copy: 784->256 at 120 rows, AVX2 float64
     * 33 -> 40 GFLOP/s, float32 80 -> 81-83 (C loop, measured). */
    REAL packed[IKC * IV * VL] __attribute__((aligned(64)));
    /* all of B in 64 KB (784->16): it stays in L2 whole, and rows read in
     * one pass are what the prefetchers follow best; k is not cut (nor B
     * packed) */
    const int cut = k * np * (ptrdiff_t)sizeof(REAL) > 65536;
    const int pack = cut && ldb != tw && blocked >= 4 * IR;
    /* rows after the whole blocks (fewer than IR) go with them, tile by tile */
    const FN(tile_fn) narrow[IR] = {NULL, FN(tile_1),
#if IR > 2
                                    FN(tile_2),
#endif
#if IR > 3
                                    FN(tile_3),
#endif
#if IR > 4
                                    FN(tile_4),
#endif
#if IR > 5
                                    FN(tile_5),
#endif
    };
    const FN(tile_fn) rest = narrow[m - blocked];
    if (blocked > 0) {
        /* k blocks outermost: the rows' block of A stays in L2 while every
         * column tile walks it */
        /* k in equal blocks of at most IKC (784 in four of 196, not three of
         * 256 and a short one of 16, whose partial sums cost as much to
         * store and reload as its products take) */
        const ptrdiff_t n_kb = cut ? (k + IKC - 1) / IKC : 1,
                        kc = n_kb > 1 ? (k + n_kb - 1) / n_kb : k;
        ptrdiff_t p = 0;
        do {
            ptrdiff_t kb = k - p < kc ? k - p : kc;
            for (ptrdiff_t j = 0; j < full; j += tw) {
                const REAL *Bj = B + p * ldb + j;
                ptrdiff_t ldp = ldb;
                if (pack) {
                    for (ptrdiff_t q = 0; q < kb; q++)
                        memcpy(packed + q * tw, Bj + q * ldb, (size_t)tw * sizeof(REAL));
                    Bj = packed;
                    ldp = tw;
                }
                for (ptrdiff_t i = 0; i < blocked; i += IR)
                    block(kb, A + i * lda + p, lda, Bj, ldp, bias ? bias + j : NULL,
                                   C + i * ldc + j, ldc, (int)tw, p == 0, p + kb == k);
                if (rest) /* the last rows, while B's block is at hand */
                    rest(kb, A + blocked * lda + p, lda, Bj, ldp, bias ? bias + j : NULL,
                         C + blocked * ldc + j, ldc, (int)tw, p == 0, p + kb == k);
            }
            p += kb;
        } while (p < k);
        /* a last, partial tile (a layer written straight into its output has
         * no room there for partial sums): all of k at once */
        if (full < n) {
            for (ptrdiff_t i = 0; i < blocked; i += IR)
                FN(tile_block)(k, A + i * lda, lda, B + full, ldb, bias ? bias + full : NULL,
                               C + i * ldc + full, ldc, (int)(n - full), 1, 1);
            if (rest)
                rest(k, A + blocked * lda, lda, B + full, ldb, bias ? bias + full : NULL,
                     C + blocked * ldc + full, ldc, (int)(n - full), 1, 1);
        }
    } else {
        FN(gemm_few)(m, n, np, k, A, lda, B, ldb, bias, C, ldc);
    }
}
#endif /* INORDER_KERNEL */

void FN(gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
              const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)
{
    /* the columns a wide block covers go to the wide kernel, the rest (and
     * everything on narrower vectors) to the panels: which kernel a column
     * gets depends on n alone, never on the batch */
#if INORDER_KERNEL
    FN(gemm_inorder)(m, n, k, A, lda, B, ldb, bias, C, ldc, 0);
#else
    ptrdiff_t wide = 0;
#if WIDE_KERNEL
    wide = n - n % WIDE_COLS;
    if (wide > 0) FN(gemm_wide)(m, wide, k, A, lda, B, ldb, bias, C, ldc);
#endif
    if (wide < n)
        FN(gemm_panels)(m, n - wide, k, A, lda, B + wide, ldb, bias ? bias + wide : NULL,
                        C + wide, ldc);
#endif
}

void FN(gemm_stream)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
                     const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)
{
#if INORDER_KERNEL
    FN(gemm_inorder)(m, n, k, A, lda, B, ldb, bias, C, ldc, 1);
#else /* the AVX-512 kernels prefetch the next rows at every batch size */
    FN(gemm)(m, n, k, A, lda, B, ldb, bias, C, ldc);
#endif
}

void FN(gemm_update)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
                     const REAL *B, ptrdiff_t ldb, REAL *C, ptrdiff_t ldc, REAL alpha,
                     const struct dlfr_prefetch *ahead)
{
    typedef void (*kernel)(ptrdiff_t, const REAL *, ptrdiff_t, const REAL *, ptrdiff_t,
                           REAL *, ptrdiff_t, REAL);
    const kernel kernels[4] = {FN(update_16), FN(update_8), FN(update_4), FN(update_1)};
    const int rows[4] = {UR, 8 < UR ? 8 : UR, 4 < UR ? 4 : UR, 1};
    /* the prefetches spread evenly over the blocks: a few at a time keep
     * memory busy while this compute-bound loop runs (all at once, most
     * would be dropped) */
    struct prefetch_cursor ahead_at = {0, 0};
    ptrdiff_t blocks = m / UR > 0 ? m / UR : 1; /* the full blocks; the rest get none */
    ptrdiff_t lines_per_block = ahead ? (prefetch_lines(ahead) + blocks - 1) / blocks : 0;
    ptrdiff_t i = 0;
    for (int b = 0; b < 4; b++)
        for (; i + rows[b] <= m; i += rows[b]) {
            if (ahead) prefetch_next(ahead, &ahead_at, lines_per_block);
            for (ptrdiff_t j = 0; j < n; j += DLFR_PANEL)
                kernels[b](k, A + i, lda, B + j, ldb, C + i * ldc + j, ldc, alpha);
        }
}

#else /* plain C (MSVC): one row at a time, 4 partial sums; batch-invariant too */
#define SPLIT 4
void FN(gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
              const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)
{
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j += DLFR_PANEL) {
            REAL acc[SPLIT][DLFR_PANEL] = {{0}};
            for (ptrdiff_t p = 0; p < k; p++) {
                REAL x = A[i * lda + p];
                for (int l = 0; l < DLFR_PANEL; l++) acc[p % SPLIT][l] += x * B[p * ldb + j + l];
            }
            for (int l = 0; l < DLFR_PANEL && j + l < n; l++) {
                REAL sum = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
                C[i * ldc + j + l] = bias ? sum + bias[j + l] : sum;
            }
        }
}

void FN(gemm_stream)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
                     const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc)
{
    FN(gemm)(m, n, k, A, lda, B, ldb, bias, C, ldc);
}

void FN(gemm_update)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
                     const REAL *B, ptrdiff_t ldb, REAL *C, ptrdiff_t ldc, REAL alpha,
                     const struct dlfr_prefetch *ahead)
{
    (void)ahead; /* no prefetch instruction in plain C */
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j += DLFR_PANEL) {
            REAL acc[DLFR_PANEL] = {0};
            for (ptrdiff_t p = 0; p < k; p++) {
                REAL x = A[p * lda + i];
                for (int l = 0; l < DLFR_PANEL; l++) acc[l] += x * B[p * ldb + j + l];
            }
            for (int l = 0; l < DLFR_PANEL; l++) C[i * ldc + j + l] += alpha * acc[l];
        }
}
#endif

/* ---- optimizers: one step on a parameter array (struct dlfr_step) ---- */

#if VBYTES > 0
/* The square root of each lane. A loop calling sqrt stays scalar (the C
 * library's sqrt may set errno, which the compiler must honour); the
 * instructions round correctly, as sqrt does, so every level agrees. */
#if DLFR_IS_F32
#define SQRT_X86(OP, VT, x) (FN(vec)) OP##_sqrt_ps((VT)(x))
#define SQRT_NEON(x) (FN(vec)) vsqrtq_f32((float32x4_t)(x))
#else
#define SQRT_X86(OP, VT, x) (FN(vec)) OP##_sqrt_pd((VT##d)(x))
#define SQRT_NEON(x) (FN(vec)) vsqrtq_f64((float64x2_t)(x))
#endif
static inline FN(vec) FN(vsqrt)(FN(vec) x)
{
#if DLFR_X86_DISPATCH && VBYTES == 64
    return SQRT_X86(_mm512, __m512, x);
#elif DLFR_X86_DISPATCH && VBYTES == 32
    return SQRT_X86(_mm256, __m256, x);
#elif DLFR_X86_DISPATCH && VBYTES == 16 /* SSE2: every x86-64 CPU */
    return SQRT_X86(_mm, __m128, x);
#elif DLFR_ARM_DISPATCH && VBYTES == 16 /* ASIMD: every aarch64 CPU */
    return SQRT_NEON(x);
#else
    for (ptrdiff_t l = 0; l < VL; l++) x[l] = RSQRT(x[l]);
    return x;
#endif
}
#undef SQRT_X86
#undef SQRT_NEON
#endif

/* Adam, a vector of lanes at a time where the level has vectors (the sqrt
 * above), the last few elements one at a time with the same operations. */
static void FN(adam_step)(REAL *p, REAL *grad, REAL *m, REAL *s, ptrdiff_t n,
                          const struct dlfr_step *step)
{
    const REAL lr = (REAL)step->lr, scale = (REAL)step->grad_scale, decay = (REAL)step->decay;
    const REAL b1 = (REAL)step->beta_1, c1 = (REAL)(1 - step->beta_1);
    const REAL b2 = (REAL)step->beta_2, c2 = (REAL)(1 - step->beta_2);
    const REAL eps = (REAL)step->epsilon;
    ptrdiff_t i = 0;
#if VBYTES > 0
    const FN(vec) zero = {0};
    for (; i + VL <= n; i += VL) {
        FN(vec) pv, gv, mv, sv;
        memcpy(&pv, p + i, sizeof pv);
        memcpy(&gv, grad + i, sizeof gv);
        memcpy(&mv, m + i, sizeof mv);
        memcpy(&sv, s + i, sizeof sv);
        gv = scale * (gv + decay * pv);
        mv = b1 * mv + c1 * gv;
        sv = b2 * sv + c2 * (gv * gv);
        pv = pv - lr * mv / (FN(vsqrt)(sv) + eps);
        memcpy(p + i, &pv, sizeof pv);
        memcpy(m + i, &mv, sizeof mv);
        memcpy(s + i, &sv, sizeof sv);
        memcpy(grad + i, &zero, sizeof zero);
    }
#endif
    for (; i < n; i++) {
        REAL g = scale * (grad[i] + decay * p[i]);
        REAL mi = b1 * m[i] + c1 * g;
        REAL si = b2 * s[i] + c2 * (g * g);
        p[i] = p[i] - lr * mi / (RSQRT(si) + eps);
        m[i] = mi;
        s[i] = si;
        grad[i] = 0;
    }
}

void FN(optimizer_step)(REAL *p, REAL *grad, REAL *s1, REAL *s2, ptrdiff_t n,
                        const struct dlfr_step *step)
{
    const REAL lr = (REAL)step->lr, scale = (REAL)step->grad_scale, decay = (REAL)step->decay;
    const REAL mu = (REAL)step->momentum;
    switch (step->rule) {
    case DLFR_RULE_SGD:
        SIMD_LOOP
        for (ptrdiff_t i = 0; i < n; i++) {
            REAL g = scale * (grad[i] + decay * p[i]);
            p[i] = p[i] - lr * g;
            grad[i] = 0;
        }
        break;
    case DLFR_RULE_MOMENTUM:
    case DLFR_RULE_NESTEROV: {
        /* p += a v - c g: the velocity itself (a = 1, c = 0, exactly v), or
         * Nesterov's look ahead along it (a = momentum, c = lr) */
        const int nesterov = step->rule == DLFR_RULE_NESTEROV;
        const REAL a = nesterov ? mu : 1, c = nesterov ? lr : 0;
        SIMD_LOOP
        for (ptrdiff_t i = 0; i < n; i++) {
            REAL g = scale * (grad[i] + decay * p[i]);
            REAL v = mu * s1[i] - lr * g;
            s1[i] = v;
            p[i] = p[i] + (a * v - c * g);
            grad[i] = 0;
        }
        break;
    }
    case DLFR_RULE_ADAM:
        FN(adam_step)(p, grad, s1, s2, n, step);
        break;
    default: /* the callers pass the rules above alone */
        break;
    }
}

/* Eight independent sums, each over every eighth term in order (the
 * compiler may hold them in vector registers), added in a fixed tree: the
 * same order at every level. */
#define SQUARES(TERM)                                                               \
    double acc[8] = {0};                                                            \
    ptrdiff_t i = 0;                                                                \
    for (; i + 8 <= n; i += 8)                                                      \
        for (int l = 0; l < 8; l++) {                                               \
            double t = TERM(i + l);                                                 \
            acc[l] += t * t;                                                        \
        }                                                                           \
    for (int l = 0; i < n; i++, l++) {                                              \
        double t = TERM(i);                                                         \
        acc[l] += t * t;                                                            \
    }                                                                               \
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))

double FN(sum_squares)(const REAL *x, const REAL *y, double c, ptrdiff_t n)
{
#define X_ONLY(j) ((double)x[j])
#define X_PLUS_CY(j) ((double)x[j] + c * (double)y[j])
    if (y == NULL) {
        SQUARES(X_ONLY);
    } else {
        SQUARES(X_PLUS_CY);
    }
#undef X_ONLY
#undef X_PLUS_CY
}
#undef SQUARES

#undef UNROLL
#undef PREFETCH
#undef EXP_LO
#undef EXP_LOG2E
#undef EXP_MAGIC
#undef EXP_LN2_HI
#undef EXP_LN2_LO
#undef EXP_TERMS
#undef EXPM1_LO
#undef EXP_BIAS
#undef EXP_MANT
#undef LOOP_PREFETCH
#undef PAIR_KERNEL
#undef FEWV
#undef IKC
#undef IR
#undef IV
#undef FEW_CAP
#undef SIGMOID_BY_VECTORS
#undef X86_EXP_PARTS
#undef INV
#undef ACC
#undef INORDER_KERNEL
#undef WIDE_KERNEL
#undef WR
#undef WV
#undef WIDE_COLS
#undef PR
#undef UR
#undef MR
#undef SPLIT
#undef NV
#undef VL
#undef FN
#undef CAT3
#undef CAT3_
#undef SIMD_LOOP
