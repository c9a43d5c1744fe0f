# cython: language_level=3
"""dlfr's compiled kernels.

Thin typed wrappers over the C kernels in _simd.c (vectorised activations,
the register-blocked GEMM) and BLAS from scipy. Callers validate first
(dlfr.kernels, dlfr._validation): these functions trust their arguments'
shapes and contiguity, never allocate behind the caller's back, and release
the GIL for all the work.
"""

from cython cimport floating
from cython.parallel cimport prange
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef extern from "_omp.h" nogil:
    int omp_get_max_threads()
    int DLFR_HAVE_OPENMP
    const char *dlfr_build_compiler
    const char *dlfr_build_flags


cdef extern from "_simd.h" nogil:
    int DLFR_PANEL
    enum:
        DLFR_IDENTITY
        DLFR_SIGMOID
        DLFR_TANH
        DLFR_RELU
        DLFR_STEP
        DLFR_SOFTMAX
    int dlfr_simd_supported()
    int dlfr_simd_select(int level)
    int dlfr_simd_level()
    const char *dlfr_simd_name(int level)

    void dlfr_sigmoid_f32(const float *z, float *out, Py_ssize_t n)
    void dlfr_sigmoid_f64(const double *z, double *out, Py_ssize_t n)
    void dlfr_sigmoid_prime_f32(const float *z, float *out, Py_ssize_t n)
    void dlfr_sigmoid_prime_f64(const double *z, double *out, Py_ssize_t n)
    void dlfr_sigmoid_backward_f32(const float *g, const float *a, float *out, Py_ssize_t n)
    void dlfr_sigmoid_backward_f64(const double *g, const double *a, double *out, Py_ssize_t n)
    void dlfr_activate_f32(const float *z, float *out, Py_ssize_t n, int act)
    void dlfr_activate_f64(const double *z, double *out, Py_ssize_t n, int act)
    void dlfr_bias_act_f32(float *Y, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ldy,
                           const float *b, int act)
    void dlfr_bias_act_f64(double *Y, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ldy,
                           const double *b, int act)
    void dlfr_gemm_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *A,
                       Py_ssize_t sa_r, Py_ssize_t sa_k, const float *B, Py_ssize_t ldb,
                       const float *bias, float *C, Py_ssize_t ldc, int accumulate,
                       float alpha)
    void dlfr_gemm_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *A,
                       Py_ssize_t sa_r, Py_ssize_t sa_k, const double *B, Py_ssize_t ldb,
                       const double *bias, double *C, Py_ssize_t ldc, int accumulate,
                       double alpha)
    void dlfr_gemm_nt_f32(Py_ssize_t m, Py_ssize_t n_out, Py_ssize_t n, const float *D,
                          Py_ssize_t ldd, const float *W, Py_ssize_t ldw, float *C,
                          Py_ssize_t ldc)
    void dlfr_gemm_nt_f64(Py_ssize_t m, Py_ssize_t n_out, Py_ssize_t n, const double *D,
                          Py_ssize_t ldd, const double *W, Py_ssize_t ldw, double *C,
                          Py_ssize_t ldc)
    void dlfr_act_backward_f32(float *delta, const float *a, Py_ssize_t rows,
                               Py_ssize_t cols, Py_ssize_t ld, int act)
    void dlfr_act_backward_f64(double *delta, const double *a, Py_ssize_t rows,
                               Py_ssize_t cols, Py_ssize_t ld, int act)


# Activation codes shared with the C kernels (enum dlfr_activation).
IDENTITY = DLFR_IDENTITY
SIGMOID = DLFR_SIGMOID
TANH = DLFR_TANH
RELU = DLFR_RELU
STEP = DLFR_STEP
SOFTMAX = DLFR_SOFTMAX
PANEL = DLFR_PANEL
# Widest output a layer may have and still use dlfr's own GEMM; wider layers
# go to BLAS, which wins once the panel of weights no longer fits in cache.
cdef enum:
    NARROW_MAX_ = 64
    # Elementwise work is split across threads only above this many elements:
    # below it, waking threads costs more than it saves.
    PARALLEL_MIN_ELEMENTS_ = 1 << 17
NARROW_MAX = NARROW_MAX_
PARALLEL_MIN_ELEMENTS = PARALLEL_MIN_ELEMENTS_
cdef Py_ssize_t ELEMENT_CHUNK = 1 << 15


def select_simd(int level):
    """Use at most this SIMD level (0 generic, 1 AVX2, 2 AVX-512); returns the level in use."""
    return dlfr_simd_select(level)


def build_info():
    """Facts about this build and CPU, for dlfr.show_config()."""
    return {
        "compiler": dlfr_build_compiler.decode(),
        "flags": dlfr_build_flags.decode(),
        "openmp": bool(DLFR_HAVE_OPENMP),
        "max_threads": omp_get_max_threads(),
        "simd_supported": dlfr_simd_name(dlfr_simd_supported()).decode(),
        "simd_in_use": dlfr_simd_name(dlfr_simd_level()).decode(),
    }


cpdef int max_threads() noexcept:
    """OpenMP's current thread limit (1 without OpenMP); threadpoolctl can lower it."""
    return omp_get_max_threads()


# ---- elementwise kernels (1-D contiguous views; the caller flattens) ----

cdef inline void _activate(const floating *z, floating *out, Py_ssize_t n, int act) noexcept nogil:
    if floating is float:
        dlfr_activate_f32(z, out, n, act)
    else:
        dlfr_activate_f64(z, out, n, act)


cdef inline void _sigmoid_prime(const floating *z, floating *out, Py_ssize_t n) noexcept nogil:
    if floating is float:
        dlfr_sigmoid_prime_f32(z, out, n)
    else:
        dlfr_sigmoid_prime_f64(z, out, n)


cdef inline void _sigmoid_backward(const floating *g, const floating *a, floating *out,
                                   Py_ssize_t n) noexcept nogil:
    if floating is float:
        dlfr_sigmoid_backward_f32(g, a, out, n)
    else:
        dlfr_sigmoid_backward_f64(g, a, out, n)


cdef inline int _threads_for(Py_ssize_t n) noexcept nogil:
    if n < PARALLEL_MIN_ELEMENTS_:
        return 1
    return omp_get_max_threads()


def activate(const floating[::1] z, floating[::1] out, int act):
    """out = act(z) elementwise (not softmax); out may alias z."""
    cdef Py_ssize_t n = z.shape[0], start, chunk = ELEMENT_CHUNK
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c
    cdef int threads = _threads_for(n)
    if n == 0:
        return
    with nogil:
        if threads == 1:
            _activate(&z[0], &out[0], n, act)
        else:
            for c in prange(n_chunks, num_threads=threads, schedule="static"):
                start = c * chunk
                _activate(&z[start], &out[start], min(chunk, n - start), act)


def sigmoid_prime(const floating[::1] z, floating[::1] out):
    """out = sigma(z) * (1 - sigma(z)) elementwise; out may alias z."""
    cdef Py_ssize_t n = z.shape[0], start, chunk = ELEMENT_CHUNK
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c
    cdef int threads = _threads_for(n)
    if n == 0:
        return
    with nogil:
        if threads == 1:
            _sigmoid_prime(&z[0], &out[0], n)
        else:
            for c in prange(n_chunks, num_threads=threads, schedule="static"):
                start = c * chunk
                _sigmoid_prime(&z[start], &out[start], min(chunk, n - start))


def sigmoid_backward(const floating[::1] grad, const floating[::1] a, floating[::1] out):
    """out = grad * a * (1 - a) elementwise; out may alias grad or a."""
    cdef Py_ssize_t n = grad.shape[0], start, chunk = ELEMENT_CHUNK
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c
    cdef int threads = _threads_for(n)
    if n == 0:
        return
    with nogil:
        if threads == 1:
            _sigmoid_backward(&grad[0], &a[0], &out[0], n)
        else:
            for c in prange(n_chunks, num_threads=threads, schedule="static"):
                start = c * chunk
                _sigmoid_backward(&grad[start], &a[start], &out[start], min(chunk, n - start))


# ---- the dense layer: GEMM, then bias and activation in one pass ----

cdef inline void _bias_act(floating *Y, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ldy,
                           const floating *b, int act) noexcept nogil:
    if floating is float:
        dlfr_bias_act_f32(Y, rows, cols, ldy, b, act)
    else:
        dlfr_bias_act_f64(Y, rows, cols, ldy, b, act)


cdef inline void _gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A,
                       Py_ssize_t sa_r, Py_ssize_t sa_k, const floating *B, Py_ssize_t ldb,
                       const floating *bias, floating *C, Py_ssize_t ldc, int accumulate,
                       floating alpha) noexcept nogil:
    if floating is float:
        dlfr_gemm_f32(m, n, k, A, sa_r, sa_k, B, ldb, bias, C, ldc, accumulate, alpha)
    else:
        dlfr_gemm_f64(m, n, k, A, sa_r, sa_k, B, ldb, bias, C, ldc, accumulate, alpha)


cdef inline void _blas_gemm_rowmajor(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                     const floating *A, Py_ssize_t lda,
                                     const floating *B, Py_ssize_t ldb,
                                     floating *C, Py_ssize_t ldc, floating beta) noexcept nogil:
    """C (m x n) = A (m x k) @ B (k x n) + beta*C, row-major, via column-major BLAS.

    Row-major C is column-major C^T = B^T A^T: swap the operands, no copies.
    """
    cdef char no = b'N'
    cdef int im = <int>m, inn = <int>n, ik = <int>k
    cdef int ilda = <int>lda, ildb = <int>ldb, ildc = <int>ldc
    cdef floating one = 1
    if floating is float:
        sgemm(&no, &no, &inn, &im, &ik, &one, <float *>B, &ildb, <float *>A, &ilda,
              &beta, C, &ildc)
    else:
        dgemm(&no, &no, &inn, &im, &ik, &one, <double *>B, &ildb, <double *>A, &ilda,
              &beta, C, &ildc)


def dense(const floating[:, ::1] X, const floating[:, ::1] W, const floating[::1] b,
          floating[:, ::1] out, int act):
    """out = act(X @ W + b): one GEMM, then bias and activation in one pass.

    Narrow layers whose width is a whole number of panels run dlfr's own
    register-blocked GEMM with the bias folded into the accumulators; every
    other shape goes to BLAS (sgemm/dgemm).
    """
    cdef Py_ssize_t n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    if n == 0 or n_out == 0:
        return
    with nogil:
        if n_in == 0:
            _gemm(n, n_out, 0, <const floating *>NULL, 0, 1, <const floating *>NULL, n_out,
                  &b[0], &out[0, 0], n_out, 0, 1)
            _bias_act(&out[0, 0], n, n_out, n_out, <const floating *>NULL, act)
        elif n_out % DLFR_PANEL == 0 and n_out <= NARROW_MAX_:
            _gemm(n, n_out, n_in, &X[0, 0], n_in, 1, &W[0, 0], n_out, &b[0],
                  &out[0, 0], n_out, 0, 1)
            _bias_act(&out[0, 0], n, n_out, n_out, <const floating *>NULL, act)
        else:
            _blas_gemm_rowmajor(n, n_out, n_in, &X[0, 0], n_in, &W[0, 0], n_out,
                                &out[0, 0], n_out, 0)
            _bias_act(&out[0, 0], n, n_out, n_out, &b[0], act)


def softmax_rows(floating[:, ::1] y):
    """Row-wise softmax in place."""
    if y.shape[0] == 0:
        return
    with nogil:
        _bias_act(&y[0, 0], y.shape[0], y.shape[1], y.shape[1], <const floating *>NULL,
                  DLFR_SOFTMAX)


# ---- CPU dispatch: the best SIMD level, unless DLFR_SIMD asks for less ----

SIMD_LEVELS = {"generic": 0, "avx2": 1, "avx512": 2}


def _select_simd_from_environment():
    import os
    requested = os.environ.get("DLFR_SIMD", "").strip().lower()
    if requested in ("", "auto", "best"):
        return dlfr_simd_select(2)
    if requested not in SIMD_LEVELS:
        raise ValueError(
            f"DLFR_SIMD must be one of 'auto', {', '.join(map(repr, SIMD_LEVELS))}; "
            f"got {requested!r}")
    return dlfr_simd_select(SIMD_LEVELS[requested])


_select_simd_from_environment()
