/* Instantiates _simd_impl.h for the current REAL on every instruction set:
 * generic, then AVX2 and AVX-512 under target pragmas (x86-64 with GCC or
 * Clang) or NEON (aarch64 with GCC or Clang: ASIMD is baseline there, no
 * pragma needed). Included once per dtype by _simd.c. Each instantiation
 * defines T (its name), VBYTES (GEMM vector width in bytes), VREGS (the
 * vector registers the instruction set has, for sizing register tiles) and
 * ISA_NEON (1: the NEON build, whose sigmoid is written with intrinsics). */
#define T generic
#define VBYTES DLFR_VBYTES_GENERIC
#define VREGS 16
#define ISA_NEON 0
#include "_simd_impl.h"
#undef T
#undef VBYTES
#undef VREGS
#undef ISA_NEON

#if DLFR_X86_DISPATCH
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define T avx2
#define VBYTES 32
#define VREGS 16
#define ISA_NEON 0
#include "_simd_impl.h"
#undef T
#undef VBYTES
#undef VREGS
#undef ISA_NEON
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512")
#endif
#define T avx512
#define VBYTES 64
#define VREGS 32
#define ISA_NEON 0
#include "_simd_impl.h"
#undef T
#undef VBYTES
#undef VREGS
#undef ISA_NEON
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif /* DLFR_X86_DISPATCH */

#if DLFR_ARM_DISPATCH
/* GCC's vector extensions compile to NEON here, and -ffp-contract=fast
 * fuses their a*b+c into fmla */
#define T neon
#define VBYTES 16
#define VREGS 32
#define ISA_NEON 1
#include "_simd_impl.h"
#undef T
#undef VBYTES
#undef VREGS
#undef ISA_NEON
#endif /* DLFR_ARM_DISPATCH */
