# cython: language_level=3
"""The C kernels and the process-wide state of dlfr's compiled layer.

The C kernels (_simd.c, with the dispatch table that picks their SIMD level,
and the finite check of _finite.h) are compiled into this module alone, so
the level ``select_simd`` sets is the one every compiled module runs: the
others call the kernels through the cdef functions of _dispatch.pxd. The
thread cap is here for the same reason, one value per process. At import,
``DLFR_SIMD`` chooses the level.
"""

from operator import index

from cython cimport floating

from ._omp cimport (DLFR_BUILD_COMPILER, DLFR_BUILD_FLAGS, DLFR_HAVE_OPENMP,
                    omp_get_max_threads, omp_get_num_procs)
# the C kernels' declarations (_simd.h): enums, dispatch, dlfr_<kernel>_f32/f64
from ._simd cimport *


cdef extern from "_finite.h" nogil:
    Py_ssize_t dlfr_first_nonfinite_row_f32(const float *x, Py_ssize_t rows, Py_ssize_t cols)
    Py_ssize_t dlfr_first_nonfinite_row_f64(const double *x, Py_ssize_t rows, Py_ssize_t cols)


# Activation codes shared with the C kernels (enum dlfr_activation).
IDENTITY = DLFR_IDENTITY
SIGMOID = DLFR_SIGMOID
TANH = DLFR_TANH
RELU = DLFR_RELU
STEP = DLFR_STEP
SOFTMAX = DLFR_SOFTMAX
LEAKY_RELU = DLFR_LEAKY_RELU
ELU = DLFR_ELU
# leaky ReLU's slope below 0, as the C kernels have it (in the dtype's precision)
LEAKY_RELU_SLOPE = DLFR_LEAKY_RELU_SLOPE
PANEL = DLFR_PANEL
CACHE_LINE = DLFR_CACHE_LINE
NARROW_MAX = NARROW_MAX_
FEW_ROWS_OWN = FEW_ROWS_OWN_


# ---- threads: every count dlfr hands OpenMP, capped ----

# The most threads dlfr ever asks OpenMP for: THREADS_PER_PROC times the
# processors this process may run on (omp_get_num_procs() honours the CPU
# affinity mask), read once at import. Every thread count dlfr hands to
# OpenMP (n_threads arguments, OMP_NUM_THREADS through omp_get_max_threads())
# is lowered to it: more threads than that only share the same cores, and tens
# of thousands of them crash libgomp (thread creation fails; the process ends).
cdef enum:
    THREADS_PER_PROC = 4
cdef int THREAD_CAP_ = max(1, THREADS_PER_PROC * omp_get_num_procs())
THREAD_CAP = THREAD_CAP_


cdef int _max_threads() noexcept nogil:
    """omp_get_max_threads(), at most THREAD_CAP."""
    return max(1, min(omp_get_max_threads(), THREAD_CAP_))


cpdef int max_threads() noexcept:
    """OpenMP's current thread limit (1 without OpenMP; threadpoolctl can lower
    it), at most THREAD_CAP: the threads dlfr uses when not told otherwise."""
    return _max_threads()


cdef int _thread_count(object n_threads) except -1:
    """An ``n_threads`` argument as a thread count: None for _max_threads(),
    else a positive integer, at most THREAD_CAP; anything else raises."""
    if n_threads is None:
        return _max_threads()
    try:
        value = 0 if isinstance(n_threads, bool) else index(n_threads)
    except TypeError:
        value = 0
    if value >= 1:
        return min(value, THREAD_CAP_)
    raise ValueError(f"n_threads must be None or a positive integer; got {n_threads!r}")


# ---- CPU dispatch: the best SIMD level, unless DLFR_SIMD asks for less ----

# enum dlfr_simd_level. Families: x86-64 generic < avx2 < avx512, aarch64
# generic < neon. DLFR_SIMD=<level> runs the best level the CPU has that is not
# above it in its own family; a level of the other architecture runs generic.
SIMD_LEVELS = {"generic": DLFR_GENERIC, "avx2": DLFR_AVX2, "avx512": DLFR_AVX512,
               "neon": DLFR_NEON}


def select_simd(int level):
    """Use at most this SIMD level (SIMD_LEVELS: 0 generic, 1 AVX2, 2 AVX-512, 3 NEON);
    returns the level in use: the best this CPU has that is not above ``level``
    in its own architecture's family (another architecture's level: generic).

    For tests and DLFR_SIMD at import: the kernel table it swaps is read by
    every running call, so not while another thread is inside dlfr.
    """
    return dlfr_simd_select(level)


def gemm_wide():
    """Whether the SIMD level in use runs layers of any width on dlfr's GEMM
    (every level but generic); if not, layers over NARROW_MAX units use BLAS
    in calls of FEW_ROWS_OWN rows or more.
    (dense's widths must also be whole panels; network layers are padded so.)"""
    return bool(dlfr_gemm_wide())


cdef bint _own_wide(Py_ssize_t rows) noexcept nogil:
    """Whether a call over this many rows runs layers of every width on dlfr's
    GEMM (see NARROW_MAX_); the caller reads it once and passes it down."""
    return dlfr_gemm_wide() or rows < FEW_ROWS_OWN_


def build_info():
    """Facts about this build and CPU, for dlfr.show_config()."""
    return {
        "compiler": DLFR_BUILD_COMPILER.decode(),
        "flags": DLFR_BUILD_FLAGS.decode(),
        "openmp": bool(DLFR_HAVE_OPENMP),
        "max_threads": _max_threads(),
        "simd_supported": dlfr_simd_name(dlfr_simd_supported()).decode(),
        "simd_in_use": dlfr_simd_name(dlfr_simd_level()).decode(),
        "gemm": (("dlfr's kernels at every width" if dlfr_gemm_wide() else
                  f"dlfr's kernels up to {NARROW_MAX_} outputs, and at every width in "
                  f"calls of fewer than {FEW_ROWS_OWN_} rows; BLAS beyond")
                 + f" (dense: widths in whole {DLFR_PANEL}-column panels; others BLAS)"),
    }


def _select_simd_from_environment():
    import os
    requested = os.environ.get("DLFR_SIMD", "").strip().lower()
    if requested in ("", "auto", "best"):
        return dlfr_simd_select(dlfr_simd_supported())
    if requested not in SIMD_LEVELS:
        raise ValueError(
            f"DLFR_SIMD must be one of 'auto', {', '.join(map(repr, SIMD_LEVELS))}; "
            f"got {requested!r}")
    return dlfr_simd_select(SIMD_LEVELS[requested])


_select_simd_from_environment()


# ---- the C kernels, typed over float and double, for the other modules ----

cdef void *_aligned_alloc(size_t nbytes) noexcept nogil:
    return dlfr_aligned_alloc(nbytes)


cdef void _aligned_free(void *p) noexcept nogil:
    dlfr_aligned_free(p)


cdef void _activate(const floating *z, floating *out, Py_ssize_t n, int act) noexcept nogil:
    """out = act(z) elementwise (not softmax)."""
    if floating is float:
        dlfr_activate_f32(z, out, n, act)
    else:
        dlfr_activate_f64(z, out, n, act)


cdef void _sigmoid_prime(const floating *z, floating *out, Py_ssize_t n) noexcept nogil:
    """out = sigma(z) * (1 - sigma(z)) elementwise."""
    if floating is float:
        dlfr_sigmoid_prime_f32(z, out, n)
    else:
        dlfr_sigmoid_prime_f64(z, out, n)


cdef void _sigmoid_backward(const floating *grad, const floating *a, floating *out,
                            Py_ssize_t n) noexcept nogil:
    """out = grad * a * (1 - a) elementwise."""
    if floating is float:
        dlfr_sigmoid_backward_f32(grad, a, out, n)
    else:
        dlfr_sigmoid_backward_f64(grad, a, out, n)


cdef void _bias_act(floating *Y, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ldy,
                    const floating *b, int act) noexcept nogil:
    """Y[r, :cols] = act(Y[r, :cols] + b) for each row (b may be NULL)."""
    if floating is float:
        dlfr_bias_act_f32(Y, rows, cols, ldy, b, act)
    else:
        dlfr_bias_act_f64(Y, rows, cols, ldy, b, act)


cdef void _gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A, Py_ssize_t lda,
                const floating *B, Py_ssize_t ldb, const floating *bias, floating *C,
                Py_ssize_t ldc) noexcept nogil:
    """C = A @ B + bias (dlfr's register-blocked GEMM; see _simd.h)."""
    if floating is float:
        dlfr_gemm_f32(m, n, k, A, lda, B, ldb, bias, C, ldc)
    else:
        dlfr_gemm_f64(m, n, k, A, lda, B, ldb, bias, C, ldc)


cdef void _gemm_stream(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A,
                       Py_ssize_t lda, const floating *B, Py_ssize_t ldb, const floating *bias,
                       floating *C, Py_ssize_t ldc) noexcept nogil:
    """_gemm's sums for an A streaming from memory (see _simd.h)."""
    if floating is float:
        dlfr_gemm_stream_f32(m, n, k, A, lda, B, ldb, bias, C, ldc)
    else:
        dlfr_gemm_stream_f64(m, n, k, A, lda, B, ldb, bias, C, ldc)


cdef void _gemm_update(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A,
                       Py_ssize_t lda, const floating *B, Py_ssize_t ldb, floating *C,
                       Py_ssize_t ldc, floating alpha, const dlfr_prefetch *ahead) noexcept nogil:
    """C += alpha * A^T @ B, A being (k, m), prefetching ``ahead`` (may be NULL)."""
    if floating is float:
        dlfr_gemm_update_f32(m, n, k, A, lda, B, ldb, C, ldc, alpha, ahead)
    else:
        dlfr_gemm_update_f64(m, n, k, A, lda, B, ldb, C, ldc, alpha, ahead)


cdef double _output_delta(const floating *A, const floating *Y, const floating *w,
                          floating *D, Py_ssize_t rows, Py_ssize_t n_out, Py_ssize_t ld,
                          int act, int loss, double *hits) noexcept nogil:
    """D = w * dC/dz of the output layer for each row (w NULL: all 1); returns the
    weighted sum of the rows' costs."""
    if floating is float:
        return dlfr_output_delta_f32(A, Y, w, D, rows, n_out, ld, act, loss, hits)
    else:
        return dlfr_output_delta_f64(A, Y, w, D, rows, n_out, ld, act, loss, hits)


cdef void _act_backward(floating *D, const floating *A, Py_ssize_t rows, Py_ssize_t cols,
                        Py_ssize_t ld, int act) noexcept nogil:
    """D[r, :cols] *= f'(.) of the layer's output A (row stride ld)."""
    if floating is float:
        dlfr_act_backward_f32(D, A, rows, cols, ld, act)
    else:
        dlfr_act_backward_f64(D, A, rows, cols, ld, act)


cdef void _bias_update(floating *b, const floating *D, Py_ssize_t rows, Py_ssize_t cols,
                       Py_ssize_t ld, floating alpha) noexcept nogil:
    """b[:cols] += alpha * (column sums of D[:rows, :cols], row stride ld)."""
    if floating is float:
        dlfr_bias_update_f32(b, D, rows, cols, ld, alpha)
    else:
        dlfr_bias_update_f64(b, D, rows, cols, ld, alpha)


cdef void _optimizer_step(floating *p, floating *grad, floating *s1, floating *s2,
                          Py_ssize_t n, const dlfr_step *step) noexcept nogil:
    """One optimizer step on p[:n] from grad (then zeroed); see _simd.h's dlfr_step."""
    if floating is float:
        dlfr_optimizer_step_f32(p, grad, s1, s2, n, step)
    else:
        dlfr_optimizer_step_f64(p, grad, s1, s2, n, step)


cdef double _sum_squares(const floating *x, const floating *y, double c,
                         Py_ssize_t n) noexcept nogil:
    """The sum of (x[i] + c y[i])^2 over i < n, in double (y may be NULL)."""
    if floating is float:
        return dlfr_sum_squares_f32(x, y, c, n)
    else:
        return dlfr_sum_squares_f64(x, y, c, n)


cdef Py_ssize_t _first_nonfinite_row(const floating *X, Py_ssize_t rows,
                                     Py_ssize_t cols) noexcept nogil:
    """The first of X's rows holding NaN or inf, or -1 (see _finite.h)."""
    if floating is float:
        return dlfr_first_nonfinite_row_f32(X, rows, cols)
    else:
        return dlfr_first_nonfinite_row_f64(X, rows, cols)
