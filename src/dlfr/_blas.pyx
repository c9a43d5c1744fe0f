# cython: language_level=3
"""Row-major GEMM through scipy's BLAS (scipy.linalg.cython_blas), in row
pieces that fit BLAS's int arguments.

BLAS runs where dlfr's own GEMM does not: widths that are not whole panels
in dense, and wide layers at the generic SIMD level (see _dispatch.pxd,
NARROW_MAX_). Its functions come from scipy's capsules at import, never
from a linked libblas.
"""

from libc.limits cimport INT_MAX
from scipy.linalg.cython_blas cimport dgemm, sgemm

# BLAS takes sizes as C ints: a call over more rows than this is made in row
# pieces (the other sizes, columns and leading dimensions, are checked to fit
# before any work: _blas_sizes_fit). A variable so that tests can shrink it.
cdef Py_ssize_t BLAS_MAX_ROWS = INT_MAX


def set_blas_max_rows(Py_ssize_t rows):
    """For tests: the most rows one BLAS call takes (1 .. 2**31 - 1); returns
    the previous value. Not while another thread is inside dlfr."""
    global BLAS_MAX_ROWS
    if not 1 <= rows <= INT_MAX:
        raise ValueError(f"rows must be in 1 .. {INT_MAX}; got {rows}")
    previous, BLAS_MAX_ROWS = BLAS_MAX_ROWS, rows
    return previous


cdef void _blas_gemm_rowmajor(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A,
                              Py_ssize_t lda, const floating *B, Py_ssize_t ldb, floating *C,
                              Py_ssize_t ldc, floating beta) noexcept nogil:
    """C (m x n) = A (m x k) @ B (k x n) + beta*C, row-major, via column-major BLAS.

    Row-major C is column-major C^T = B^T A^T: swap the operands, no copies.
    m is split into pieces of at most BLAS_MAX_ROWS rows; n, k and the leading
    dimensions must fit in an int (the callers check: _blas_sizes_fit).
    """
    cdef char no = b'N'
    cdef Py_ssize_t r = 0, piece
    cdef int im, inn = <int>n, ik = <int>k
    cdef int ilda = <int>lda, ildb = <int>ldb, ildc = <int>ldc
    cdef floating one = 1
    while r < m:
        piece = min(m - r, BLAS_MAX_ROWS)
        im = <int>piece
        if floating is float:
            sgemm(&no, &no, &inn, &im, &ik, &one, <float *>B, &ildb, <float *>(A + r * lda),
                  &ilda, &beta, C + r * ldc, &ildc)
        else:
            dgemm(&no, &no, &inn, &im, &ik, &one, <double *>B, &ildb, <double *>(A + r * lda),
                  &ilda, &beta, C + r * ldc, &ildc)
        r += piece
