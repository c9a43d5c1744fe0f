# cython: language_level=3
"""dlfr's kernels on arrays: activations elementwise, softmax by rows, and
the dense layer (GEMM, then bias and activation in one pass).

Thin typed wrappers: the C kernels run through _dispatch, BLAS through
_blas. Callers validate first (dlfr.kernels); ``dense_fast`` takes arrays
that need no conversion through NumPy's C API and keeps the GIL for layers
so small that releasing it would cost more.
"""

from cpython.exc cimport PyErr_CheckSignals
from cython cimport floating
from cython.parallel cimport prange
from libc.limits cimport INT_MAX
from libc.string cimport memcpy

cimport numpy as cnp

from ._arrays cimport _new_rows, _overlaps, _ready
from ._blas cimport _blas_gemm_rowmajor, _blas_sizes_fit
from ._chunks cimport CHUNK_ROWS, PARALLEL_MIN_ROWS_, _chunks_per_grab, _slice_work
from ._dispatch cimport (_activate, _aligned_alloc, _aligned_free, _bias_act, _gemm,
                         _max_threads, _own_gemm, _own_wide, _sigmoid_backward, _sigmoid_prime)
from ._simd cimport DLFR_CACHE_LINE, DLFR_PANEL, DLFR_SOFTMAX

cnp.import_array()

cdef enum:
    # Elementwise work is split across threads only above this many elements:
    # below it, waking threads costs more than it saves.
    PARALLEL_MIN_ELEMENTS_ = 1 << 17
    # dense copies a W that does not start a cache line into one that does
    # from this many rows on (the copy costs about as much as 64 rows save)
    ALIGN_COPY_MIN_ROWS = 256
    # dense_fast keeps the GIL for layers of fewer multiply-adds than this
    # (about 3 microseconds of work, 30 times the cost of releasing it)
    NOGIL_MIN_WORK = 1 << 16
    # dense splits its rows across threads from this many multiply-adds on
    # (about 10 microseconds of work, a few times the cost of waking them)
    PARALLEL_MIN_WORK = 1 << 21
PARALLEL_MIN_ELEMENTS = PARALLEL_MIN_ELEMENTS_
cdef Py_ssize_t ELEMENT_CHUNK = 1 << 15


# ---- elementwise kernels (1-D contiguous views; the caller flattens) ----

cdef enum Elementwise:
    ACTIVATE
    SIGMOID_PRIME
    SIGMOID_BACKWARD


cdef inline void _elementwise(Elementwise op, const floating *x, const floating *y,
                              floating *out, Py_ssize_t n, int act) noexcept nogil:
    """out = op(x[, y]) on n elements, serially."""
    if op == ACTIVATE:
        _activate(x, out, n, act)
    elif op == SIGMOID_PRIME:
        _sigmoid_prime(x, out, n)
    else:
        _sigmoid_backward(x, y, out, n)


cdef void _elementwise_threads(Elementwise op, const floating *x, const floating *y,
                               floating *out, Py_ssize_t n, int act) noexcept nogil:
    """op over n elements, in chunks on every thread when n is large enough."""
    cdef Py_ssize_t chunk = ELEMENT_CHUNK, n_chunks = (n + chunk - 1) // chunk, c
    cdef int threads = _max_threads()
    if n < PARALLEL_MIN_ELEMENTS_ or threads == 1:
        _elementwise(op, x, y, out, n, act)
        return
    for c in prange(n_chunks, num_threads=threads, schedule="static"):
        _elementwise(op, x + c * chunk, y + c * chunk if y != NULL else NULL, out + c * chunk,
                     min(chunk, n - c * chunk), act)


cdef int _elementwise_sliced(Elementwise op, const floating *x, const floating *y,
                             floating *out, Py_ssize_t n, int act) except -1:
    """op over n elements in slices of SLICE_WORK / 16 (a few milliseconds),
    answering signals between them (Ctrl-C: see _chunks.pxd)."""
    cdef Py_ssize_t step = max(ELEMENT_CHUNK, _slice_work(1) // 16), r = 0, m
    while r < n:
        if r > 0:
            PyErr_CheckSignals()  # KeyboardInterrupt raises here
        m = min(step, n - r)
        with nogil:
            _elementwise_threads(op, x + r, y + r if y != NULL else NULL, out + r, m, act)
        r += m
    return 0


def activate(const floating[::1] z, floating[::1] out, int act):
    """out = act(z) elementwise (not softmax); out may alias z."""
    if z.shape[0]:
        _elementwise_sliced(ACTIVATE, &z[0], <const floating *>NULL, &out[0], z.shape[0], act)


def sigmoid_prime(const floating[::1] z, floating[::1] out):
    """out = sigma(z) * (1 - sigma(z)) elementwise; out may alias z."""
    if z.shape[0]:
        _elementwise_sliced(SIGMOID_PRIME, &z[0], <const floating *>NULL, &out[0], z.shape[0],
                            0)


def sigmoid_backward(const floating[::1] grad, const floating[::1] a, floating[::1] out):
    """out = grad * a * (1 - a) elementwise; out may alias grad or a."""
    if grad.shape[0]:
        _elementwise_sliced(SIGMOID_BACKWARD, &grad[0], &a[0], &out[0], grad.shape[0], 0)


def softmax_rows(floating[:, ::1] y):
    """Row-wise softmax in place."""
    if y.shape[0] == 0:
        return
    with nogil:
        _bias_act(&y[0, 0], y.shape[0], y.shape[1], y.shape[1], <const floating *>NULL,
                  DLFR_SOFTMAX)


# ---- the dense layer: GEMM, then bias and activation in one pass ----

cdef void _own_dense(const floating *X, const floating *W, const floating *b, floating *out,
                     Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, int act) noexcept nogil:
    """_dense by dlfr's GEMM, in chunks of rows (each activated while it is
    still in cache), on every thread for a big batch."""
    cdef Py_ssize_t chunk = CHUNK_ROWS, n_chunks = (n + chunk - 1) // chunk, c
    cdef int threads = 1
    if n >= PARALLEL_MIN_ROWS_ and n * n_in * n_out >= PARALLEL_MIN_WORK:
        threads = _max_threads()
    if threads == 1:
        for c in range(n_chunks):
            _dense_rows(X, W, b, out, c * chunk, min(chunk, n - c * chunk), n_in, n_out, act)
    else:
        for c in prange(n_chunks, num_threads=threads, schedule="dynamic",
                        chunksize=_chunks_per_grab(n_chunks, threads)):
            _dense_rows(X, W, b, out, c * chunk, min(chunk, n - c * chunk), n_in, n_out, act)


cdef inline void _dense_rows(const floating *X, const floating *W, const floating *b,
                             floating *out, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t n_in,
                             Py_ssize_t n_out, int act) noexcept nogil:
    _gemm(rows, n_out, n_in, X + r0 * n_in, n_in, W, n_out, b, out + r0 * n_out, n_out)
    _bias_act(out + r0 * n_out, rows, n_out, n_out, <const floating *>NULL, act)


cdef void _dense(const floating *X, const floating *W, const floating *b, floating *out,
                 Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, int act) noexcept nogil:
    """out = act(X @ W + b).

    Layers whose width is a whole number of panels run dlfr's own
    register-blocked GEMM (when _own_gemm), which adds the bias as it stores
    each block, in chunks of rows each activated while in cache (_own_dense);
    every other shape goes to BLAS (sgemm/dgemm), then bias and activation
    in one pass.
    """
    cdef Py_ssize_t r
    cdef floating *W_aligned = NULL
    if n == 0 or n_out == 0:
        return
    if n_in == 0:  # no inputs: each row is act(b)
        for r in range(n):
            memcpy(&out[r * n_out], b, n_out * sizeof(floating))
        _bias_act(out, n, n_out, n_out, <const floating *>NULL, act)
    elif n_out % DLFR_PANEL == 0 and _own_gemm(n_out, _own_wide(n)):
        if n >= ALIGN_COPY_MIN_ROWS and <size_t>W % DLFR_CACHE_LINE != 0:
            # W's panel rows straddle cache lines (two loads each): for a batch
            # this large an aligned copy of W costs less than it saves
            W_aligned = <floating *>_aligned_alloc(n_in * n_out * sizeof(floating))
            if W_aligned != NULL:
                memcpy(W_aligned, W, n_in * n_out * sizeof(floating))
                W = W_aligned
        _own_dense(X, W, b, out, n, n_in, n_out, act)
        _aligned_free(W_aligned)
    else:
        _blas_gemm_rowmajor(n, n_out, n_in, X, n_in, W, n_out, out, n_out, 0)
        _bias_act(out, n, n_out, n_out, b, act)


def dense(const floating[:, ::1] X, const floating[:, ::1] W, const floating[::1] b,
          floating[:, ::1] out, int act):
    """out = act(X @ W + b) for validated arguments (see _dense)."""
    if not _blas_sizes_fit(W.shape[0], W.shape[1]):
        raise ValueError(f"W has shape {tuple(W.shape)}: dlfr takes at most {INT_MAX} "
                         "inputs and outputs per layer")
    if X.shape[0] == 0 or W.shape[1] == 0:
        return
    _dense_sliced(cnp.NPY_FLOAT32 if floating is float else cnp.NPY_FLOAT64, &X[0, 0],
                  &W[0, 0], &b[0], &out[0, 0], X.shape[0], X.shape[1], W.shape[1], act, False)


def dense_fast(object X, object W, object b, object out, int act):
    """``dense`` for arguments that need no conversion; None when they do.

    The hot path of kernels.dense at small batches, where Python-level checks
    cost more than the layer: it accepts only C-contiguous native float
    arrays of one dtype with matching shapes and an ``out`` that is either
    None or a writeable, non-overlapping array of the result's shape. Anything
    else returns None and goes through the full validation in Python, which
    converts what it may and raises the errors.
    """
    cdef int typenum
    cdef Py_ssize_t n, n_in, n_out
    if not cnp.PyArray_Check(W):
        return None
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>W)
    if not ((typenum == cnp.NPY_FLOAT32 or typenum == cnp.NPY_FLOAT64)
            and _ready(W, 2, typenum) and _ready(X, 2, typenum) and _ready(b, 1, typenum)):
        return None
    n = cnp.PyArray_DIM(<cnp.ndarray>X, 0)
    n_in = cnp.PyArray_DIM(<cnp.ndarray>W, 0)
    n_out = cnp.PyArray_DIM(<cnp.ndarray>W, 1)
    if (cnp.PyArray_DIM(<cnp.ndarray>X, 1) != n_in or cnp.PyArray_DIM(<cnp.ndarray>b, 0) != n_out
            or not _blas_sizes_fit(n_in, n_out)):  # the full path raises the error
        return None
    if out is None:
        out = _new_rows(n, n_out, typenum)
    elif not (_ready(out, 2, typenum) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)
              and cnp.PyArray_DIM(<cnp.ndarray>out, 0) == n
              and cnp.PyArray_DIM(<cnp.ndarray>out, 1) == n_out
              and not _overlaps(<cnp.ndarray>out, <cnp.ndarray>X)
              and not _overlaps(<cnp.ndarray>out, <cnp.ndarray>W)
              and not _overlaps(<cnp.ndarray>out, <cnp.ndarray>b)):
        return None
    cdef void *x = cnp.PyArray_DATA(<cnp.ndarray>X)
    cdef void *w = cnp.PyArray_DATA(<cnp.ndarray>W)
    cdef void *bias = cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef void *o = cnp.PyArray_DATA(<cnp.ndarray>out)
    # a small layer keeps the GIL: releasing it would cost more
    _dense_sliced(typenum, x, w, bias, o, n, n_in, n_out, act,
                  n * (n_in + 1) * n_out < NOGIL_MIN_WORK)
    return out


cdef int _dense_sliced(int typenum, const void *X, const void *W, const void *b, void *out,
                       Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, int act,
                       bint keep_gil) except -1:
    """_dense over n rows in slices of about SLICE_WORK multiply-adds per
    thread (whole chunks), answering signals between them (Ctrl-C: see
    _chunks.pxd); rows are computed the same in any slice."""
    cdef Py_ssize_t itemsize = 4 if typenum == cnp.NPY_FLOAT32 else 8, r = 0, m
    cdef Py_ssize_t step = _slice_work(_max_threads()) // max(1, (n_in + 1) * n_out)
    step = max(CHUNK_ROWS, step // CHUNK_ROWS * CHUNK_ROWS)
    while r < n:
        if r > 0:
            PyErr_CheckSignals()  # KeyboardInterrupt raises here
        m = min(step, n - r)
        if keep_gil:
            _dense_any(typenum, <const char *>X + r * n_in * itemsize, W, b,
                       <char *>out + r * n_out * itemsize, m, n_in, n_out, act)
        else:
            with nogil:
                _dense_any(typenum, <const char *>X + r * n_in * itemsize, W, b,
                           <char *>out + r * n_out * itemsize, m, n_in, n_out, act)
        r += m
    return 0


cdef inline void _dense_any(int typenum, const void *X, const void *W, const void *b, void *out,
                            Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out,
                            int act) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        _dense(<const float *>X, <const float *>W, <const float *>b, <float *>out, n, n_in,
               n_out, act)
    else:
        _dense(<const double *>X, <const double *>W, <const double *>b, <double *>out, n,
               n_in, n_out, act)
