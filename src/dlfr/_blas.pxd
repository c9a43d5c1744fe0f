# Row-major GEMM through scipy's BLAS, for the other compiled modules to
# cimport (see _blas.pyx). The most rows one BLAS call takes is process-wide
# state, kept in _blas alone (set_blas_max_rows).

from cython cimport floating
from libc.limits cimport INT_MAX


cdef inline bint _blas_sizes_fit(Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """Whether a layer's sizes fit BLAS's int arguments (k, n, lda, ldb, ldc)."""
    return n_in <= INT_MAX and n_out <= INT_MAX


cdef void _blas_gemm_rowmajor(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A,
                              Py_ssize_t lda, const floating *B, Py_ssize_t ldb, floating *C,
                              Py_ssize_t ldc, floating beta) noexcept nogil
