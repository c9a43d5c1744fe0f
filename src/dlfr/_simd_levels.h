/* Instantiates _simd_impl.h for the current REAL on every instruction set:
 * generic, then (x86-64 with GCC or Clang) AVX2 and AVX-512 under target
 * pragmas. Included once per dtype by _simd.c. */
#define T generic
#define VBYTES DLFR_VBYTES_GENERIC
#include "_simd_impl.h"
#undef T
#undef VBYTES

#if DLFR_X86_DISPATCH
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define T avx2
#define VBYTES 32
#include "_simd_impl.h"
#undef T
#undef VBYTES
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
#include "_simd_impl.h"
#undef T
#undef VBYTES
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif /* DLFR_X86_DISPATCH */

