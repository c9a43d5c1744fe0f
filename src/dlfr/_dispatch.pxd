# The C kernels and the process-wide state of dlfr's compiled layer, as the
# other compiled modules cimport them (see _dispatch.pyx).
#
# _simd.c is linked into _dispatch alone, so its dispatch table (the SIMD
# level select_simd sets) exists once per process. Every other compiled
# module reaches the C kernels through the functions declared here, which
# Cython exports in _dispatch's __pyx_capi__: a call is one call through a
# pointer, no Python. Those modules may cimport _simd.pxd's constants and
# types, never its functions (the shared object does not export them, so
# such a module would fail to import). The thread cap lives here too.

from cython cimport floating

from ._simd cimport dlfr_prefetch, dlfr_step


cdef enum:
    # Widest output a layer may have and still use dlfr's own GEMM on every
    # SIMD level; wider layers use it where the level's GEMM outruns BLAS at
    # any width (AVX-512, AVX2, NEON: dlfr_gemm_wide) and, at the generic
    # level, in calls of fewer than FEW_ROWS_OWN rows: there BLAS costs more
    # per call than the work (784->256 + sigmoid at one row: 195 us through
    # scipy's sgemm, 20 us on the generic kernels), while from 16 rows
    # OpenBLAS's AVX2 code outruns the generic build's 16-byte vectors.
    NARROW_MAX_ = 64
    FEW_ROWS_OWN_ = 8


# ---- which GEMM, and how many threads ----

cdef bint _own_wide(Py_ssize_t rows) noexcept nogil


cdef inline bint _own_gemm(Py_ssize_t n_out, bint own_wide) noexcept nogil:
    """Whether dlfr's GEMM (else BLAS) computes a layer this wide.

    ``own_wide``: _own_wide(rows of the call), read once per call and passed
    down, so that every decision in a call agrees even if another thread
    changes the SIMD level meanwhile (BLAS must never run inside the call's
    OpenMP region).
    """
    return n_out <= NARROW_MAX_ or own_wide


cdef int _max_threads() noexcept nogil
cdef int _thread_count(object n_threads) except -1


# ---- memory whose first byte starts a cache line (free: _aligned_free) ----

cdef void *_aligned_alloc(size_t nbytes) noexcept nogil
cdef void _aligned_free(void *p) noexcept nogil


# ---- the C kernels at the SIMD level in use (see _simd.h for each) ----

cdef void _activate(const floating *z, floating *out, Py_ssize_t n, int act) noexcept nogil
cdef void _sigmoid_prime(const floating *z, floating *out, Py_ssize_t n) noexcept nogil
cdef void _sigmoid_backward(const floating *grad, const floating *a, floating *out,
                            Py_ssize_t n) noexcept nogil
cdef void _bias_act(floating *Y, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ldy,
                    const floating *b, int act) noexcept nogil
cdef void _gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A, Py_ssize_t lda,
                const floating *B, Py_ssize_t ldb, const floating *bias, floating *C,
                Py_ssize_t ldc) noexcept nogil
cdef void _gemm_stream(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A,
                       Py_ssize_t lda, const floating *B, Py_ssize_t ldb, const floating *bias,
                       floating *C, Py_ssize_t ldc) noexcept nogil
cdef void _gemm_update(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A,
                       Py_ssize_t lda, const floating *B, Py_ssize_t ldb, floating *C,
                       Py_ssize_t ldc, floating alpha, const dlfr_prefetch *ahead) noexcept nogil
cdef double _output_delta(const floating *A, const floating *Y, const floating *w,
                          floating *D, Py_ssize_t rows, Py_ssize_t n_out, Py_ssize_t ld,
                          int act, int loss, double *hits) noexcept nogil
cdef void _act_backward(floating *D, const floating *A, Py_ssize_t rows, Py_ssize_t cols,
                        Py_ssize_t ld, int act) noexcept nogil
cdef void _bias_update(floating *b, const floating *D, Py_ssize_t rows, Py_ssize_t cols,
                       Py_ssize_t ld, floating alpha) noexcept nogil
cdef void _optimizer_step(floating *p, floating *grad, floating *s1, floating *s2,
                          Py_ssize_t n, const dlfr_step *step) noexcept nogil
cdef double _sum_squares(const floating *x, const floating *y, double c,
                         Py_ssize_t n) noexcept nogil
cdef Py_ssize_t _first_nonfinite_row(const floating *X, Py_ssize_t rows,
                                     Py_ssize_t cols) noexcept nogil
