/* OpenMP's run-time calls, or their serial stand-ins when built without it;
 * the compiler and flags of the build (setup.py defines them). */
#ifndef DLFR_OMP_H
#define DLFR_OMP_H
#ifdef _OPENMP
#include <omp.h>
#define DLFR_HAVE_OPENMP 1
#else
#define DLFR_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_procs(void) { return 1; }
#endif
#ifndef DLFR_BUILD_COMPILER
#define DLFR_BUILD_COMPILER "unknown"
#endif
#ifndef DLFR_BUILD_FLAGS
#define DLFR_BUILD_FLAGS ""
#endif
#endif
