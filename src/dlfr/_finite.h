/* The forward pass's check for NaN and inf (check_finite): of a chunk's first
 * layer outputs, then of the few rows of X they point at (_kernels.pyx,
 * _first_bad_input_row). A value is non-finite when its
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

/* Whether any of x[0 .. n) is NaN or +-inf. */
static inline int dlfr_nonfinite_f32(const float *x, ptrdiff_t n)
{
#if DLFR_FINITE_AVX2
    if (dlfr_simd_level() == DLFR_AVX2 || dlfr_simd_level() == DLFR_AVX512)
        return dlfr_nonfinite_f32_avx2(x, n);
#endif
    return dlfr_nonfinite_f32_base(x, n);
}

static inline int dlfr_nonfinite_f64(const double *x, ptrdiff_t n)
{
#if DLFR_FINITE_AVX2
    if (dlfr_simd_level() == DLFR_AVX2 || dlfr_simd_level() == DLFR_AVX512)
        return dlfr_nonfinite_f64_avx2(x, n);
#endif
    return dlfr_nonfinite_f64_base(x, n);
}

/* The first of rows x cols (contiguous rows) holding NaN or inf, or -1. */
static inline ptrdiff_t dlfr_first_nonfinite_row_f32(const float *x, ptrdiff_t rows,
                                                     ptrdiff_t cols)
{
    if (!dlfr_nonfinite_f32(x, rows * cols))
        return -1;
    for (ptrdiff_t r = 0; r < rows; r++)
        if (dlfr_nonfinite_f32(x + r * cols, cols))
            return r;
    return -1;
}

static inline ptrdiff_t dlfr_first_nonfinite_row_f64(const double *x, ptrdiff_t rows,
                                                     ptrdiff_t cols)
{
    if (!dlfr_nonfinite_f64(x, rows * cols))
        return -1;
    for (ptrdiff_t r = 0; r < rows; r++)
        if (dlfr_nonfinite_f64(x + r * cols, cols))
            return r;
    return -1;
}
#endif
