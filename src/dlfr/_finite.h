/* The forward pass's check for NaN and inf (check_finite): of a chunk's first
 * layer outputs, then of the few rows of X they point at (_engine.pyx,
 * _first_bad_input_row, through _dispatch.pyx). A value is non-finite when its
 * exponent bits are all ones; the bits are compared as integers, so the loop
 * vectorises without -ffast-math. On x86-64 with GCC or clang an AVX2 clone
 * runs when the SIMD level in use has AVX2 (the module itself is compiled for
 * baseline x86-64). */
#ifndef DLFR_FINITE_H
#define DLFR_FINITE_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "_simd.h"

#define DLFR_NONFINITE_BODY(REAL, UINT, EXP)                 \
    UINT bad = 0;                                            \
    for (ptrdiff_t i = 0; i < n; i++) {                      \
        UINT u;                                              \
        memcpy(&u, x + i, sizeof u);                         \
        bad |= (UINT)((u & (EXP)) == (EXP));                 \
    }                                                        \
    return bad != 0;

static int dlfr_nonfinite_f32_base(const float *x, ptrdiff_t n)
{ DLFR_NONFINITE_BODY(float, uint32_t, 0x7f800000u) }
static int dlfr_nonfinite_f64_base(const double *x, ptrdiff_t n)
{ DLFR_NONFINITE_BODY(double, uint64_t, 0x7ff0000000000000ull) }

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define DLFR_FINITE_AVX2 1
__attribute__((target("avx2"))) static int dlfr_nonfinite_f32_avx2(const float *x, ptrdiff_t n)
{ DLFR_NONFINITE_BODY(float, uint32_t, 0x7f800000u) }
__attribute__((target("avx2"))) static int dlfr_nonfinite_f64_avx2(const double *x, ptrdiff_t n)
{ DLFR_NONFINITE_BODY(double, uint64_t, 0x7ff0000000000000ull) }
#else
#define DLFR_FINITE_AVX2 0
#endif

/* Whether any of x[0 .. n) is NaN or +-inf: the AVX2 clone where the SIMD
 * level in use has AVX2. */
#if DLFR_FINITE_AVX2
#define DLFR_USE_FINITE_AVX2 (dlfr_simd_level() == DLFR_AVX2 || dlfr_simd_level() == DLFR_AVX512)
#define DLFR_NONFINITE(S, REAL)                                                          \
    static inline int dlfr_nonfinite_##S(const REAL *x, ptrdiff_t n)                     \
    { return DLFR_USE_FINITE_AVX2 ? dlfr_nonfinite_##S##_avx2(x, n) : dlfr_nonfinite_##S##_base(x, n); }
#else
#define DLFR_NONFINITE(S, REAL)                                                          \
    static inline int dlfr_nonfinite_##S(const REAL *x, ptrdiff_t n)                     \
    { return dlfr_nonfinite_##S##_base(x, n); }
#endif
DLFR_NONFINITE(f32, float)
DLFR_NONFINITE(f64, double)

/* The first of rows x cols (contiguous rows) holding NaN or inf, or -1. */
#define DLFR_FIRST_NONFINITE_ROW(S, REAL)                                             \
    static inline ptrdiff_t dlfr_first_nonfinite_row_##S(const REAL *x, ptrdiff_t rows, \
                                                         ptrdiff_t cols)              \
    {                                                                                 \
        if (!dlfr_nonfinite_##S(x, rows * cols))                                      \
            return -1;                                                                \
        for (ptrdiff_t r = 0; r < rows; r++)                                          \
            if (dlfr_nonfinite_##S(x + r * cols, cols))                               \
                return r;                                                             \
        return -1;                                                                    \
    }
DLFR_FIRST_NONFINITE_ROW(f32, float)
DLFR_FIRST_NONFINITE_ROW(f64, double)
#endif
