/* Instantiates _simd_impl.h for float and double on each instruction set and
 * dispatches to the best one the CPU has. See _simd.h. */
#include "_simd.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define DLFR_X86_DISPATCH 1
#else
#define DLFR_X86_DISPATCH 0
#endif
#if DLFR_X86_DISPATCH
#include <immintrin.h>
#endif
/* aarch64 with GCC or Clang: a NEON level besides generic (ASIMD is
 * mandatory in ARMv8-A, so every aarch64 CPU has it; no flags needed) */
#if (defined(__aarch64__) || defined(__arm64__)) && (defined(__GNUC__) || defined(__clang__))
#define DLFR_ARM_DISPATCH 1
#include <arm_neon.h>
#else
#define DLFR_ARM_DISPATCH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define DLFR_VBYTES_GENERIC 16
#else
#define DLFR_VBYTES_GENERIC 0 /* MSVC: plain C loops, auto-vectorised */
#endif

/* ---- cache-line aligned memory: malloc's block, its address kept just before ---- */

void *dlfr_aligned_alloc(size_t bytes)
{
    if (bytes > SIZE_MAX - DLFR_CACHE_LINE - sizeof(void *)) return NULL;
    char *raw = malloc(bytes + DLFR_CACHE_LINE + sizeof(void *));
    if (raw == NULL) return NULL;
    uintptr_t first = (uintptr_t)(raw + sizeof(void *));
    char *aligned = raw + sizeof(void *) + (-first & (DLFR_CACHE_LINE - 1));
    ((void **)aligned)[-1] = raw;
    return aligned;
}

void dlfr_aligned_free(void *p)
{
    if (p != NULL) free(((void **)p)[-1]);
}

/* ---- prefetching ahead (struct dlfr_prefetch), a cache line at a time ---- */

struct prefetch_cursor {
    ptrdiff_t row, offset;
};

/* Lines to prefetch for ahead's rows: a row that does not start a line
 * touches one more than its length needs (an upper bound, used to share the
 * work out). */
static ptrdiff_t prefetch_lines(const struct dlfr_prefetch *ahead)
{
    return ahead->rows * ((ahead->row_bytes + DLFR_CACHE_LINE - 1) / DLFR_CACHE_LINE + 1);
}

/* Prefetch the next `lines` lines of ahead's rows from *at on (none past the
 * end): a tight loop along each row, from the line holding its first byte to
 * the one holding its last, the row's address found once. */
static void prefetch_next(const struct dlfr_prefetch *ahead, struct prefetch_cursor *at,
                          ptrdiff_t lines)
{
#if defined(__GNUC__) || defined(__clang__)
    while (lines > 0 && at->row < ahead->rows) {
        ptrdiff_t r = ahead->index ? (ptrdiff_t)ahead->index[at->row] : at->row;
        const char *row = ahead->base + r * ahead->row_bytes;
        const char *first = row - (uintptr_t)row % DLFR_CACHE_LINE;
        ptrdiff_t span = row + ahead->row_bytes - first; /* bytes from its first line on */
        ptrdiff_t end = at->offset + lines * DLFR_CACHE_LINE;
        if (end > span) end = span;
        for (ptrdiff_t o = at->offset; o < end; o += DLFR_CACHE_LINE, lines--)
            __builtin_prefetch(first + o, 0, 3);
        at->offset = end;
        if (end == span) {
            at->offset = 0;
            at->row++;
        }
    }
#else
    (void)ahead, (void)at, (void)lines;
#endif
}

/* ---- instantiations: every dtype on every instruction set ---- */
#define REAL float
#define UINT uint32_t
#define S f32
#define DLFR_IS_F32 1
#define RFABS fabsf
#define RTANH tanhf
#define RSQRT sqrtf
#include "_simd_levels.h"
#undef REAL
#undef UINT
#undef S
#undef DLFR_IS_F32
#undef RFABS
#undef RTANH
#undef RSQRT

#define REAL double
#define UINT uint64_t
#define S f64
#define DLFR_IS_F32 0
#define RFABS fabs
#define RTANH tanh
#define RSQRT sqrt
#include "_simd_levels.h"

/* ---- dispatch ---- */

/* The table: a pointer per kernel and dtype, in DLFR_KERNELS's order; a
 * level's row holds its name_S_T functions (TABLE_LEVEL = T). */
#define TABLE_FIELD(REAL, S, RET, NAME, PARAMS, ARGS) RET(*NAME##_##S) PARAMS;
struct dlfr_table {
    DLFR_KERNELS(TABLE_FIELD, float, f32)
    DLFR_KERNELS(TABLE_FIELD, double, f64)
};

#define TABLE_CAT3_(a, b, c) a##_##b##_##c
#define TABLE_CAT3(a, b, c) TABLE_CAT3_(a, b, c)
#define TABLE_ENTRY(REAL, S, RET, NAME, PARAMS, ARGS) .NAME##_##S = TABLE_CAT3(NAME, S, TABLE_LEVEL),
#define TABLE_ROW {DLFR_KERNELS(TABLE_ENTRY, float, f32) DLFR_KERNELS(TABLE_ENTRY, double, f64)}

#define TABLE_LEVEL generic
static const struct dlfr_table table_generic = TABLE_ROW;
#undef TABLE_LEVEL
#if DLFR_X86_DISPATCH
#define TABLE_LEVEL avx2
static const struct dlfr_table table_avx2 = TABLE_ROW;
#undef TABLE_LEVEL
#define TABLE_LEVEL avx512
static const struct dlfr_table table_avx512 = TABLE_ROW;
#undef TABLE_LEVEL
#endif
#if DLFR_ARM_DISPATCH
#define TABLE_LEVEL neon
static const struct dlfr_table table_neon = TABLE_ROW;
#undef TABLE_LEVEL
#endif

static const struct dlfr_table *table = &table_generic;
static int level_in_use = DLFR_GENERIC;

int dlfr_simd_supported(void)
{
#if DLFR_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        return DLFR_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return DLFR_AVX2;
#elif DLFR_ARM_DISPATCH
    return DLFR_NEON; /* ASIMD: every ARMv8-A CPU */
#endif
    return DLFR_GENERIC;
}

/* A level's architecture (0: generic, in every family) and rank in it. */
static int simd_family(int level)
{
    return level == DLFR_AVX2 || level == DLFR_AVX512 ? 1 : level == DLFR_NEON ? 2 : 0;
}
static int simd_rank(int level)
{
    return level == DLFR_AVX512 ? 2 : level == DLFR_AVX2 || level == DLFR_NEON ? 1 : 0;
}

int dlfr_simd_select(int level)
{
    int best = dlfr_simd_supported();
    if (level > DLFR_SIMD_LAST)
        level = best;
    else if (level < DLFR_GENERIC || simd_family(level) != simd_family(best))
        level = DLFR_GENERIC; /* generic, a CPU without the family's levels, another family */
    else if (simd_rank(level) > simd_rank(best))
        level = best;
#if DLFR_X86_DISPATCH
    table = level == DLFR_AVX512 ? &table_avx512 : level == DLFR_AVX2 ? &table_avx2 : &table_generic;
#elif DLFR_ARM_DISPATCH
    table = level == DLFR_NEON ? &table_neon : &table_generic;
#else
    table = &table_generic;
#endif
    level_in_use = level;
    return level;
}

int dlfr_simd_level(void) { return level_in_use; }

int dlfr_gemm_wide(void) { return level_in_use != DLFR_GENERIC; }

const char *dlfr_simd_name(int level)
{
    switch (level) {
    case DLFR_AVX512: return "avx512";
    case DLFR_AVX2: return "avx2";
    case DLFR_NEON: return "neon";
    default: return "generic";
    }
}

/* ---- entry points ---- */

/* dlfr_<name>_<S>: a call through the table */
#define ENTRY_POINT(REAL, S, RET, NAME, PARAMS, ARGS)                              \
    RET dlfr_##NAME##_##S PARAMS { DLFR_RETURN_##RET table->NAME##_##S ARGS; }

DLFR_KERNELS(ENTRY_POINT, float, f32)
DLFR_KERNELS(ENTRY_POINT, double, f64)
