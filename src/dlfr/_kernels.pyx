# cython: language_level=3
"""dlfr's compiled kernels.

Thin typed wrappers over the C kernels in _simd.c (vectorised activations,
the register-blocked GEMM) and BLAS from scipy, plus the two whole-network
entry points (Engine: the forward pass; Trainer: an epoch of SGD). Callers
validate first (dlfr.kernels, dlfr.network, dlfr._validation); the entry
points that take Python objects check arrays only as far as they must to
stay memory-safe, allocate nothing but their results and working memory,
and release the GIL for the work (dense_fast keeps it for layers so small
that releasing it would cost more).
"""

from operator import index

from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE,
                             PyBuffer_Release, PyObject_GetBuffer)
from cython cimport floating
from cython.parallel cimport prange

cimport numpy as cnp
from cpython.exc cimport PyErr_CheckSignals
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

# the C kernels' declarations (_simd.h): enums, dispatch, dlfr_<kernel>_f32/f64
from ._simd cimport *


cdef extern from "_finite.h" nogil:
    Py_ssize_t dlfr_first_nonfinite_row_f32(const float *x, Py_ssize_t rows, Py_ssize_t cols)
    Py_ssize_t dlfr_first_nonfinite_row_f64(const double *x, Py_ssize_t rows, Py_ssize_t cols)


cdef extern from "_omp.h" nogil:
    int omp_get_max_threads()
    int omp_get_thread_num()
    int omp_get_num_procs()
    int DLFR_HAVE_OPENMP
    const char *dlfr_build_compiler
    const char *dlfr_build_flags


# Activation codes shared with the C kernels (enum dlfr_activation).
IDENTITY = DLFR_IDENTITY
SIGMOID = DLFR_SIGMOID
TANH = DLFR_TANH
RELU = DLFR_RELU
STEP = DLFR_STEP
SOFTMAX = DLFR_SOFTMAX
PANEL = DLFR_PANEL
CACHE_LINE = DLFR_CACHE_LINE
# Widest output a layer may have and still use dlfr's own GEMM on every SIMD
# level; wider layers use it where the level's GEMM outruns BLAS at any width
# (AVX-512, AVX2, NEON: dlfr_gemm_wide) and, at the generic level, in calls
# of fewer than FEW_ROWS_OWN rows: there BLAS costs more per call than the
# work (784->256 + sigmoid, one thread: at one row 195 us through scipy's
# sgemm, 20 us on the generic kernels; at 4 rows 189 against 67-94 us; at 16
# rows 278 against 352-367 us, where OpenBLAS's AVX2 code outruns 16-byte
# vectors without FMA; measured on a Zen 3 core).
cdef enum:
    NARROW_MAX_ = 64
    FEW_ROWS_OWN_ = 8
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
NARROW_MAX = NARROW_MAX_
FEW_ROWS_OWN = FEW_ROWS_OWN_
PARALLEL_MIN_ELEMENTS = PARALLEL_MIN_ELEMENTS_
cdef Py_ssize_t ELEMENT_CHUNK = 1 << 15

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


cdef inline int _max_threads() noexcept nogil:
    """omp_get_max_threads(), at most THREAD_CAP."""
    return max(1, min(omp_get_max_threads(), THREAD_CAP_))


def select_simd(int level):
    """Use at most this SIMD level (SIMD_LEVELS: 0 generic, 1 AVX2, 2 AVX-512, 3 NEON);
    returns the level in use: the best this CPU has that is not above ``level``
    in its own architecture's family (another architecture's level: generic).

    For tests and DLFR_SIMD at import: the kernel table it swaps is read by
    every running call, so not while another thread is inside dlfr.
    """
    return dlfr_simd_select(level)


def build_info():
    """Facts about this build and CPU, for dlfr.show_config()."""
    return {
        "compiler": dlfr_build_compiler.decode(),
        "flags": dlfr_build_flags.decode(),
        "openmp": bool(DLFR_HAVE_OPENMP),
        "max_threads": _max_threads(),
        "simd_supported": dlfr_simd_name(dlfr_simd_supported()).decode(),
        "simd_in_use": dlfr_simd_name(dlfr_simd_level()).decode(),
        "gemm": (("dlfr's kernels at every width" if dlfr_gemm_wide() else
                  f"dlfr's kernels up to {NARROW_MAX_} outputs, and at every width in "
                  f"calls of fewer than {FEW_ROWS_OWN_} rows; BLAS beyond")
                 + f" (dense: widths in whole {DLFR_PANEL}-column panels; others BLAS)"),
    }


def gemm_wide():
    """Whether the SIMD level in use runs layers of any width on dlfr's GEMM
    (every level but generic); if not, layers over NARROW_MAX units use BLAS
    in calls of FEW_ROWS_OWN rows or more.
    (dense's widths must also be whole panels; network layers are padded so.)"""
    return bool(dlfr_gemm_wide())


cpdef int max_threads() noexcept:
    """OpenMP's current thread limit (1 without OpenMP; threadpoolctl can lower
    it), at most THREAD_CAP: the threads dlfr uses when not told otherwise."""
    return _max_threads()


# ---- elementwise kernels (1-D contiguous views; the caller flattens) ----

cdef enum Elementwise:
    ACTIVATE
    SIGMOID_PRIME
    SIGMOID_BACKWARD


cdef inline void _elementwise(Elementwise op, const floating *x, const floating *y,
                              floating *out, Py_ssize_t n, int act) noexcept nogil:
    """out = op(x[, y]) on n elements, serially."""
    if floating is float:
        if op == ACTIVATE:
            dlfr_activate_f32(x, out, n, act)
        elif op == SIGMOID_PRIME:
            dlfr_sigmoid_prime_f32(x, out, n)
        else:
            dlfr_sigmoid_backward_f32(x, y, out, n)
    else:
        if op == ACTIVATE:
            dlfr_activate_f64(x, out, n, act)
        elif op == SIGMOID_PRIME:
            dlfr_sigmoid_prime_f64(x, out, n)
        else:
            dlfr_sigmoid_backward_f64(x, y, out, n)


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
    answering signals between them (Ctrl-C: see SLICE_WORK)."""
    cdef Py_ssize_t step = max(ELEMENT_CHUNK, SLICE_WORK // 16), r = 0, m
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


# ---- the dense layer: GEMM, then bias and activation in one pass ----

cdef inline void _bias_act(floating *Y, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ldy,
                           const floating *b, int act) noexcept nogil:
    if floating is float:
        dlfr_bias_act_f32(Y, rows, cols, ldy, b, act)
    else:
        dlfr_bias_act_f64(Y, rows, cols, ldy, b, act)


cdef inline void _gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A,
                       Py_ssize_t lda, const floating *B, Py_ssize_t ldb,
                       const floating *bias, floating *C, Py_ssize_t ldc) noexcept nogil:
    """C = A @ B + bias (dlfr's register-blocked GEMM; see _simd.h)."""
    if floating is float:
        dlfr_gemm_f32(m, n, k, A, lda, B, ldb, bias, C, ldc)
    else:
        dlfr_gemm_f64(m, n, k, A, lda, B, ldb, bias, C, ldc)


cdef inline void _gemm_update(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *A,
                              Py_ssize_t lda, const floating *B, Py_ssize_t ldb, floating *C,
                              Py_ssize_t ldc, floating alpha,
                              const dlfr_prefetch *ahead) noexcept nogil:
    """C += alpha * A^T @ B, A being (k, m), prefetching ``ahead`` (may be NULL)."""
    if floating is float:
        dlfr_gemm_update_f32(m, n, k, A, lda, B, ldb, C, ldc, alpha, ahead)
    else:
        dlfr_gemm_update_f64(m, n, k, A, lda, B, ldb, C, ldc, alpha, ahead)


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


cdef inline bint _blas_sizes_fit(Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """Whether a layer's sizes fit BLAS's int arguments (k, n, lda, ldb, ldc)."""
    return n_in <= INT_MAX and n_out <= INT_MAX


cdef inline void _blas_gemm_rowmajor(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                     const floating *A, Py_ssize_t lda,
                                     const floating *B, Py_ssize_t ldb,
                                     floating *C, Py_ssize_t ldc, floating beta) noexcept nogil:
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


cdef inline bint _own_wide(Py_ssize_t rows) noexcept nogil:
    """Whether a call over this many rows runs layers of every width on dlfr's
    GEMM (see NARROW_MAX); the caller reads it once and passes it down."""
    return dlfr_gemm_wide() or rows < FEW_ROWS_OWN_


cdef inline bint _own_gemm(Py_ssize_t n_out, bint own_wide) noexcept nogil:
    """Whether dlfr's GEMM (else BLAS) computes a layer this wide.

    ``own_wide``: _own_wide(rows of the call), read once per call and passed
    down, so that every decision in a call agrees even if another thread
    changes the SIMD level meanwhile (BLAS must never run inside the call's
    OpenMP region).
    """
    return n_out <= NARROW_MAX_ or own_wide


cdef inline Py_ssize_t _chunks_per_grab(Py_ssize_t n_chunks, int threads) noexcept nogil:
    """Chunks of rows a thread takes at a time from a dynamic schedule.

    One while a batch is a few dozen chunks (the finest balance); for big
    batches, runs of consecutive chunks (about a 16th of a thread's share),
    so that each register block's prefetch of the next rows mostly lands in
    rows the same thread takes next: 65536 rows of 784-16-10 on two threads
    3-8 % faster, measured.
    """
    return max(1, n_chunks // (threads * 16))


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
            W_aligned = <floating *>dlfr_aligned_alloc(n_in * n_out * sizeof(floating))
            if W_aligned != NULL:
                memcpy(W_aligned, W, n_in * n_out * sizeof(floating))
                W = W_aligned
        _own_dense(X, W, b, out, n, n_in, n_out, act)
        dlfr_aligned_free(W_aligned)
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


def softmax_rows(floating[:, ::1] y):
    """Row-wise softmax in place."""
    if y.shape[0] == 0:
        return
    with nogil:
        _bias_act(&y[0, 0], y.shape[0], y.shape[1], y.shape[1], <const floating *>NULL,
                  DLFR_SOFTMAX)


cdef void _decide_rows(const floating *a, Py_ssize_t lda, Py_ssize_t rows, Py_ssize_t cols,
                       int64_t *labels) noexcept nogil:
    """labels[i] = row i's label: with one column, a >= 0.5 (NaN: 0); else the
    index of its largest value as NumPy's argmax gives it: the first of equal
    maxima, and the first NaN where a row holds one."""
    cdef Py_ssize_t i, j, best
    cdef floating v, m
    if cols == 1:
        for i in range(rows):
            labels[i] = a[i * lda] >= 0.5
        return
    for i in range(rows):
        best = 0
        m = a[i * lda]
        if m == m:
            for j in range(1, cols):
                v = a[i * lda + j]
                if v != v:  # NaN: NumPy takes the first one
                    best = j
                    break
                if v > m:
                    m = v
                    best = j
        labels[i] = best


def decide_rows(const floating[:, ::1] a, int64_t[::1] labels):
    """labels = predict's labels of a's rows (see _decide_rows).

    NumPy's own ``a.argmax(axis=1)`` walks short rows one call at a time:
    215 us for 10,000 rows of 10 float32, against 47 us here (measured).
    """
    if labels.shape[0] != a.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries for {a.shape[0]} rows")
    if a.shape[0] == 0 or a.shape[1] == 0:
        return
    with nogil:
        _decide_rows(&a[0, 0], a.shape[1], a.shape[0], a.shape[1], &labels[0])


cnp.import_array()


# ---- arrays the kernels take as they are (NumPy's C API: a check costs
# nanoseconds, where the buffer protocol costs a tenth of a microsecond) ----

cdef inline bint _ready(object a, int ndim, int typenum) noexcept:
    """An ndarray of this ndim and type: C-contiguous, aligned, native byte order."""
    return (cnp.PyArray_Check(a) and cnp.PyArray_NDIM(<cnp.ndarray>a) == ndim
            and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a))


cdef inline bint _overlaps(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef char *a0 = cnp.PyArray_BYTES(a)
    cdef char *b0 = cnp.PyArray_BYTES(b)
    return a0 < b0 + cnp.PyArray_NBYTES(b) and b0 < a0 + cnp.PyArray_NBYTES(a)


cdef inline object _new_rows(Py_ssize_t n, Py_ssize_t cols, int typenum):
    """An uninitialised C-ordered (n, cols) array."""
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = cols
    return cnp.PyArray_EMPTY(2, dims, typenum, 0)


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
    SLICE_WORK); rows are computed the same in any slice."""
    cdef Py_ssize_t itemsize = 4 if typenum == cnp.NPY_FLOAT32 else 8, r = 0, m
    cdef Py_ssize_t step = SLICE_WORK * _max_threads() // max(1, (n_in + 1) * n_out)
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


# ---- CPU dispatch: the best SIMD level, unless DLFR_SIMD asks for less ----

# enum dlfr_simd_level. Families: x86-64 generic < avx2 < avx512, aarch64
# generic < neon. DLFR_SIMD=<level> runs the best level the CPU has that is not
# above it in its own family; a level of the other architecture runs generic.
SIMD_LEVELS = {"generic": DLFR_GENERIC, "avx2": DLFR_AVX2, "avx512": DLFR_AVX512,
               "neon": DLFR_NEON}


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


# ---- networks: the whole forward pass, and a training epoch, in one call ----
#
# A network's layers are given as parallel lists: W (n_in, ld) and b (ld,)
# arrays, padded with zero columns to ld = n_out rounded up to PANEL, plus
# n_out and the activation code of each layer. The same padded arrays serve
# inference and training (dlfr.layers.Dense stores its weights that way), so
# nothing is repacked while the weights stay where they are.

cdef enum:
    MAX_LAYERS = 64
    # Rows per chunk of the forward pass: one chunk's activations stay in
    # cache through every layer. A multiple of every GEMM block height (12,
    # 6, 4 and 2 rows), so no chunk ends in a short block (128 rows left a
    # 6-row kernel a 2-row block per chunk: 1.5 % slower, measured).
    CHUNK_ROWS = 120
    # Networks with a BLAS layer take bigger chunks: BLAS is efficient
    # only on tall matrices, and its working set is blocked for cache anyway.
    CHUNK_ROWS_WIDE = 1024
    # Below this many rows a forward pass stays on one thread: starting the
    # OpenMP workers costs more than they save.
    PARALLEL_MIN_ROWS_ = 256

PARALLEL_MIN_ROWS = PARALLEL_MIN_ROWS_
# The most layers one compiled call takes (dlfr.Network refuses more).
MAX_NETWORK_LAYERS = MAX_LAYERS


cdef struct Net:
    int n_layers
    int wide            # some layer is wider than NARROW_MAX (see _own_gemm)
    Py_ssize_t n_in[MAX_LAYERS]
    Py_ssize_t n_out[MAX_LAYERS]
    Py_ssize_t ld[MAX_LAYERS]
    int act[MAX_LAYERS]
    void *W[MAX_LAYERS]
    void *b[MAX_LAYERS]
    Py_ssize_t max_ld


# Ctrl-C: a long forward pass, epoch or dense call runs in slices of about
# this many multiply-adds per thread (a few milliseconds; elementwise kernels
# a 16th of it in elements), and between slices takes the GIL to let Python's
# signal handlers run (PyErr_CheckSignals): SIGINT is answered within a slice.
# A batch-1 call is one slice and checks nothing.
cdef Py_ssize_t SLICE_WORK = 1 << 27


cdef inline Py_ssize_t _row_work(Net *net) noexcept nogil:
    """Multiply-adds (and adds) per row of the network, padding included."""
    cdef Py_ssize_t work = 0
    cdef int l
    for l in range(net.n_layers):
        work += (net.n_in[l] + 1) * net.ld[l]
    return max(work, 1)


cdef Py_ssize_t _slice_rows(Net *net, bint own_wide, int threads) noexcept nogil:
    """Rows per slice of a forward pass (see SLICE_WORK): whole chunks, at
    least one a thread; where BLAS runs the layers (threaded by itself), one
    chunk at most."""
    cdef Py_ssize_t rows
    if _uses_blas(net, own_wide):
        rows = SLICE_WORK * _max_threads() // _row_work(net)
        return max(CHUNK_ROWS, min(rows, CHUNK_ROWS_WIDE))
    rows = SLICE_WORK * threads // _row_work(net)
    rows = (rows + CHUNK_ROWS - 1) // CHUNK_ROWS * CHUNK_ROWS
    return max(rows, threads * CHUNK_ROWS)


cdef int _describe(Net *net, list weights, list biases, list n_outs, list acts,
                   Py_buffer *views, int *held, int writable) except -1:
    """Fill ``net`` from the layer lists, holding a buffer on each array.

    ``held`` counts the buffers taken, for _release, even when this raises.
    """
    cdef int i, L = len(weights)
    cdef int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (PyBUF_WRITABLE if writable else 0)
    cdef int typenum
    if L < 1 or L > MAX_LAYERS:
        raise ValueError(f"a network has 1 to {MAX_LAYERS} layers; got {L}")
    if len(biases) != L or len(n_outs) != L or len(acts) != L:
        raise ValueError("dlfr._kernels: one weight, bias, width and activation per layer")
    # the kernels read float32 or float64 by the item size: nothing else may pass
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>weights[0]) if cnp.PyArray_Check(weights[0]) else -1
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise ValueError("dlfr._kernels: layer weights must be float32 or float64 arrays")
    for i in range(L):
        if not (_ready(weights[i], 2, typenum) and _ready(biases[i], 1, typenum)):
            raise ValueError("dlfr._kernels: layer arrays must be C-contiguous, aligned, "
                             "native arrays of one float dtype")
    net.n_layers = L
    net.wide = 0
    net.max_ld = 0
    for i in range(L):
        PyObject_GetBuffer(weights[i], &views[held[0]], flags)
        held[0] += 1
        PyObject_GetBuffer(biases[i], &views[held[0]], flags)
        held[0] += 1
        net.n_in[i] = views[2 * i].shape[0]
        net.ld[i] = views[2 * i].shape[1]
        net.n_out[i] = n_outs[i]
        net.act[i] = acts[i]
        net.W[i] = views[2 * i].buf
        net.b[i] = views[2 * i + 1].buf
        if (net.ld[i] % DLFR_PANEL or net.ld[i] < net.n_out[i]
                or views[2 * i + 1].shape[0] != net.ld[i]
                or (i > 0 and net.n_in[i] != net.n_out[i - 1])):
            raise ValueError("dlfr._kernels: layer arrays do not chain or are not padded")
        if not _blas_sizes_fit(net.n_in[i], net.ld[i]):
            raise ValueError(f"layer {i}: dlfr takes at most {INT_MAX} inputs and outputs "
                             "per layer")
        if net.n_out[i] > NARROW_MAX_:
            net.wide = 1
        if net.ld[i] > net.max_ld:
            net.max_ld = net.ld[i]
    return 0


cdef inline bint _uses_blas(Net *net, bint own_wide) noexcept nogil:
    """Whether some layer of the network goes to BLAS (see _own_gemm)."""
    return net.wide and not own_wide


cdef void _release(Py_buffer *views, int held) noexcept:
    cdef int i
    for i in range(held):
        PyBuffer_Release(&views[i])


cdef Py_ssize_t _layer(Net *net, int l, bint own_wide, Py_ssize_t rows, const floating *A,
                       Py_ssize_t lda, floating *C, Py_ssize_t ldc,
                       bint check_finite=False) noexcept nogil:
    """C = act(A @ W + b) for layer l: with ldc = ld, whole padded rows (the
    padding columns junk); with ldc = n_out, the real columns alone, rows one
    after another (a network's output).

    ``own_wide``: as for _own_gemm.
    ``check_finite``: returns the first row of A holding NaN or inf, C then
    unfinished (see _first_bad_input_row); else -1.
    """
    cdef Py_ssize_t bad = -1
    cdef Py_ssize_t ld = net.ld[l], n_in = net.n_in[l]
    cdef const floating *W = <const floating *>net.W[l]
    cdef const floating *b = <const floating *>net.b[l]
    # Activate rows whole (one contiguous vectorised pass, padding included)
    # unless softmax, whose sum must see the real columns only.
    cdef Py_ssize_t cols = net.n_out[l] if net.act[l] == DLFR_SOFTMAX else ldc
    cdef bint own = _own_gemm(net.n_out[l], own_wide) or n_in == 0
    if own:
        _gemm(rows, ldc, n_in, A, lda, W, ld, b, C, ldc)
    else:
        _blas_gemm_rowmajor(rows, ldc, n_in, A, lda, W, ld, C, ldc, 0)
    if check_finite:
        bad = _first_bad_input_row(C, ldc, A, lda, rows, n_in)
        if bad >= 0:
            return bad
    _bias_act(C, rows, cols, ldc, <const floating *>NULL if own else b, net.act[l])
    return -1


cdef Py_ssize_t _first_bad_input_row(const floating *Z, Py_ssize_t ldz, const floating *A,
                                     Py_ssize_t lda, Py_ssize_t rows,
                                     Py_ssize_t n_in) noexcept nogil:
    """The first of A's rows holding NaN or inf, found through Z = A @ W (+ b),
    the layer's outputs before the activation: a NaN or inf in a row of A
    makes every output of that row NaN or inf (NaN times anything, inf times
    0 and inf - inf are NaN), so only the rows whose outputs are not all
    finite are read again in A (a finite row's sum can overflow too). Z is
    rows x ldz, a few columns, where A is rows x n_in: 784-16-10's check
    reads 16 values a row instead of 784 (checking A itself cost 10-18 % of
    a forward pass, measured), and nothing when every output is finite."""
    cdef Py_ssize_t r = _first_nonfinite_row(Z, rows, ldz)
    if r < 0:
        return -1
    while r < rows:
        if (_first_nonfinite_row(Z + r * ldz, 1, ldz) >= 0
                and _first_nonfinite_row(A + r * lda, 1, n_in) >= 0):
            return r
        r += 1
    return -1


cdef Py_ssize_t _forward_chunk(Net *net, bint own_wide, Py_ssize_t rows, const floating *X,
                               Py_ssize_t ldx, floating *out, int64_t *labels, floating *buf0,
                               floating *buf1, bint check_finite) noexcept nogil:
    """out (rows x n_out of the last layer) = the network applied to X's rows;
    with ``labels`` (out NULL), their labels instead, taken while in cache.

    ``check_finite``: returns the first of X's rows holding NaN or inf (the
    outputs then unfinished: see _layer), else -1.
    """
    cdef int l, last = net.n_layers - 1
    cdef const floating *A = X
    cdef Py_ssize_t lda = ldx, n_out = net.n_out[last], bad
    cdef floating *C
    for l in range(last + 1):
        if l == last and labels == NULL:
            C = out  # the real columns straight into the output: no padded rows to copy
        else:
            C = buf0 if l % 2 == 0 else buf1
        bad = _layer(net, l, own_wide, rows, A, lda, C, n_out if C == out else net.ld[l],
                     check_finite and l == 0)
        if bad >= 0:
            return bad
        A = C
        lda = net.ld[l]
    if labels != NULL:
        _decide_rows(A, net.ld[last], rows, n_out, labels)
    return -1


cdef void _scale_rows(const unsigned char *src, Py_ssize_t n, floating scale,
                      floating *dst) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = src[i] * scale


cdef inline Py_ssize_t _first_nonfinite_row(const floating *X, Py_ssize_t rows,
                                            Py_ssize_t cols) noexcept nogil:
    """The first of X's rows holding NaN or inf, or -1 (see _finite.h)."""
    if floating is float:
        return dlfr_first_nonfinite_row_f32(X, rows, cols)
    else:
        return dlfr_first_nonfinite_row_f64(X, rows, cols)


cdef void _run_chunk(Net *net, bint own_wide, const void *X, int x_is_u8, floating scale,
                     Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t chunk, floating *out,
                     int64_t *labels, floating *work, Py_ssize_t *bad) noexcept nogil:
    """Rows [r0, r0 + rows) of X through the network into out (or their
    labels into labels: see _forward_chunk).

    ``work`` holds two chunk-sized activation buffers, then (uint8 input)
    room for the chunk's rows converted to floats.
    ``bad`` (float input, check_finite; else NULL): the first row found
    holding NaN or inf (found through the first layer's outputs: see
    _first_bad_input_row) lowers bad[0] to its index, and the chunk is left
    unfinished.
    """
    cdef Py_ssize_t n_in = net.n_in[0], n_out = net.n_out[net.n_layers - 1], r
    cdef const floating *Xc
    if x_is_u8:
        Xc = work + 2 * chunk * net.max_ld
        _scale_rows(<const unsigned char *>X + r0 * n_in, rows * n_in, scale, <floating *>Xc)
    else:
        Xc = <const floating *>X + r0 * n_in
    r = _forward_chunk(net, own_wide, rows, Xc, n_in,
                       out + r0 * n_out if out != NULL else NULL,
                       labels + r0 if labels != NULL else NULL, work,
                       work + chunk * net.max_ld, bad != NULL)
    if r >= 0:
        bad[0] = min(bad[0], r0 + r)


cdef int _forward(Net *net, bint own_wide, Py_ssize_t n, const void *X, int x_is_u8,
                  floating scale, floating *out, int64_t *labels, int n_threads,
                  Py_ssize_t *first_bad) except -1 nogil:
    """The whole network over n rows into out (or their labels: see
    _forward_chunk), in chunks, on up to n_threads threads (1 when a layer
    goes to BLAS: see _uses_blas).

    ``first_bad`` (float input, check_finite; else NULL): set to the index of
    the first row holding NaN or inf (the lowest, whichever thread finds
    it), or n when there is none; out is then incomplete.
    """
    # a batch smaller than a chunk gets buffers its own size (batch 1: a
    # small allocation, 50 ns less than a chunk's, measured)
    cdef Py_ssize_t chunk = max(1, min(CHUNK_ROWS_WIDE if _uses_blas(net, own_wide)
                                       else CHUNK_ROWS, n))
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c
    cdef Py_ssize_t per_thread = 2 * chunk * net.max_ld + (chunk * net.n_in[0] if x_is_u8 else 0)
    cdef floating *work
    cdef int threads = <int>min(<Py_ssize_t>max(n_threads, 1), n_chunks), t
    cdef Py_ssize_t *bad = NULL  # one slot per thread (each writes its own), then the least
    work = <floating *>dlfr_aligned_alloc(threads * per_thread * sizeof(floating))
    if first_bad != NULL:
        first_bad[0] = n
        bad = <Py_ssize_t *>malloc(threads * sizeof(Py_ssize_t))
        if bad != NULL:
            for t in range(threads):
                bad[t] = n
    if work == NULL or (first_bad != NULL and bad == NULL):
        dlfr_aligned_free(work)
        free(bad)
        with gil:
            raise MemoryError("dlfr: no memory for the forward pass's working buffers")
    if threads == 1:
        for c in range(n_chunks):
            _run_chunk(net, own_wide, X, x_is_u8, scale, c * chunk, min(chunk, n - c * chunk),
                       chunk, out, labels, work, bad)
            if bad != NULL and bad[0] < n:
                break  # chunks in order: this is the first bad row
    else:
        # chunks (runs of them in a big batch: _chunks_per_grab) handed out
        # as threads come free: a core the host slows for a while then takes
        # fewer (static halves waited for it: up to 1.6x slower with the
        # other core half busy, measured); rows are computed the same on any
        # thread, so results do not change
        for c in prange(n_chunks, num_threads=threads, schedule="dynamic",
                        chunksize=_chunks_per_grab(n_chunks, threads)):
            _run_chunk(net, own_wide, X, x_is_u8, scale, c * chunk, min(chunk, n - c * chunk),
                       chunk, out, labels, work + omp_get_thread_num() * per_thread,
                       bad + omp_get_thread_num() if bad != NULL else NULL)
    if bad != NULL:
        for t in range(threads):
            first_bad[0] = min(first_bad[0], bad[t])
        free(bad)
    dlfr_aligned_free(work)
    return 0


cdef class Engine:
    """A network's forward pass, ready to run: the layer buffers are taken once.

    Holds a buffer on each layer's padded weight and bias arrays (they are
    written in place, never reallocated, so the pointers stay valid and every
    change to the weights is seen), so a call only has to look at X.
    """
    cdef Net net
    cdef Py_buffer views[2 * MAX_LAYERS]
    cdef int held
    cdef readonly object dtype
    cdef int typenum
    cdef Py_ssize_t itemsize

    def __cinit__(self, list weights, list biases, list n_outs, list acts):
        self.held = 0
        _describe(&self.net, weights, biases, n_outs, acts, self.views, &self.held, 0)
        self.dtype = weights[0].dtype
        self.typenum = cnp.PyArray_TYPE(<cnp.ndarray>weights[0])  # checked by _describe
        self.itemsize = 4 if self.typenum == cnp.NPY_FLOAT32 else 8

    def __dealloc__(self):
        _release(self.views, self.held)

    def __reduce__(self):
        raise TypeError("an Engine is rebuilt from its network, never pickled")

    def run(self, object X, object n_threads=None, double scale=1.0, bint labels=False,
            bint check_finite=True):
        """The output activations for X (``labels``: predict's int64 labels,
        see _decide_rows), or None when X is not ready as it is.

        Ready means a C-contiguous, aligned, native 2-D ndarray of the
        network's dtype (or uint8, read times ``scale``) with the right number
        of columns; anything else returns None and the caller converts it or
        raises the error.
        ``n_threads``: None for every core; batches below PARALLEL_MIN_ROWS
        stay on one thread; at most THREAD_CAP threads run whatever is asked.
        ``check_finite``: float X holding NaN or inf raises ValueError naming
        the first such row (found chunk by chunk through the first layer's
        outputs: see _first_bad_input_row; uint8 is always finite); False
        lets NaN propagate.
        """
        cdef int threads, is_u8 = _ready(X, 2, cnp.NPY_UINT8)
        cdef bint own_wide
        cdef Py_ssize_t n, first_bad = -1, r = 0, m, step, x_row, o_row
        cdef Py_ssize_t *check = NULL
        cdef void *x
        cdef void *o
        cdef int64_t *lab
        cdef cnp.npy_intp dims[1]
        if not ((is_u8 or _ready(X, 2, self.typenum))
                and cnp.PyArray_DIM(<cnp.ndarray>X, 1) == self.net.n_in[0]):
            return None
        threads = _thread_count(n_threads)
        n = cnp.PyArray_DIM(<cnp.ndarray>X, 0)
        own_wide = _own_wide(n)
        if n < PARALLEL_MIN_ROWS_ or _uses_blas(&self.net, own_wide):
            threads = 1  # BLAS threads its layers; one threading runtime per call
        dims[0] = n
        if labels:
            out = cnp.PyArray_EMPTY(1, &dims[0], cnp.NPY_INT64, 0)
            o = NULL
            lab = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>out)
        else:
            out = _new_rows(n, self.net.n_out[self.net.n_layers - 1], self.typenum)
            o = cnp.PyArray_DATA(<cnp.ndarray>out)
            lab = NULL
        if n == 0:
            return out
        x = cnp.PyArray_DATA(<cnp.ndarray>X)
        if check_finite and not is_u8:
            check = &first_bad
        x_row = self.net.n_in[0] * (1 if is_u8 else self.itemsize)
        o_row = self.net.n_out[self.net.n_layers - 1] * self.itemsize
        step = _slice_rows(&self.net, own_wide, threads)
        while True:  # in slices, answering signals between them (see SLICE_WORK)
            m = min(step, n - r)
            with nogil:
                if self.typenum == cnp.NPY_FLOAT32:
                    _forward(&self.net, own_wide, m, <char *>x + r * x_row, is_u8, <float>scale,
                             <float *>(<char *>o + r * o_row) if o != NULL else NULL,
                             lab + r if lab != NULL else NULL, threads, check)
                else:
                    _forward(&self.net, own_wide, m, <char *>x + r * x_row, is_u8,
                             <double>scale,
                             <double *>(<char *>o + r * o_row) if o != NULL else NULL,
                             lab + r if lab != NULL else NULL, threads, check)
            if check != NULL and first_bad < m:
                _refuse_non_finite(r + first_bad)
            r += m
            if r >= n:
                return out
            PyErr_CheckSignals()  # KeyboardInterrupt (or a handler's error) raises here


cdef int _refuse_non_finite(Py_ssize_t row) except -1:
    exc = ValueError(f"X holds NaN or inf in row {row}; pass check_finite=False to compute "
                     "such rows anyway (NaN propagates)")
    exc.dlfr_row = row  # for dlfr.dask, which names the row in the whole array
    raise exc


cdef int _thread_count(object n_threads) except -1:
    if n_threads is None:
        return _max_threads()
    try:
        value = 0 if isinstance(n_threads, bool) else index(n_threads)
    except TypeError:
        value = 0
    if value >= 1:
        return min(value, THREAD_CAP_)
    raise ValueError(f"n_threads must be None or a positive integer; got {n_threads!r}")


# ---- training: one epoch of mini-batch SGD per call ----

LOSS_MSE = DLFR_MSE
LOSS_CROSS_ENTROPY = DLFR_CROSS_ENTROPY


cdef inline double _output_delta(Net *net, Py_ssize_t m, const floating *A, const floating *Y,
                                 floating *D, int loss, Py_ssize_t *correct) noexcept nogil:
    """D = dC/dz of the output layer for each row; returns the summed cost."""
    cdef int L = net.n_layers - 1
    if floating is float:
        return dlfr_output_delta_f32(A, Y, D, m, net.n_out[L], net.ld[L], net.act[L], loss,
                                     correct)
    else:
        return dlfr_output_delta_f64(A, Y, D, m, net.n_out[L], net.ld[L], net.act[L], loss,
                                     correct)


cdef inline void _bias_update(floating *b, const floating *D, Py_ssize_t rows, Py_ssize_t cols,
                              Py_ssize_t ld, floating alpha) noexcept nogil:
    if floating is float:
        dlfr_bias_update_f32(b, D, rows, cols, ld, alpha)
    else:
        dlfr_bias_update_f64(b, D, rows, cols, ld, alpha)


cdef inline void _act_backward(floating *D, const floating *A, Py_ssize_t rows, Py_ssize_t cols,
                               Py_ssize_t ld, int act) noexcept nogil:
    if floating is float:
        dlfr_act_backward_f32(D, A, rows, cols, ld, act)
    else:
        dlfr_act_backward_f64(D, A, rows, cols, ld, act)


cdef inline void _transpose(const floating *W, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t ldw, floating *WT, Py_ssize_t ldt) noexcept nogil:
    """WT[j, i] = W[i, j] for i < rows, j < cols."""
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            WT[j * ldt + i] = W[i * ldw + j]


cdef inline bint _consecutive(const int64_t *idx, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(1, m):
        if idx[r] != idx[r - 1] + 1:
            return False
    return True


cdef bint _all_below(const int64_t *idx, Py_ssize_t n) noexcept nogil:
    """Every idx[i] (i < n) is a row number in [0, n)."""
    cdef Py_ssize_t i
    cdef bint ok = True
    for i in range(n):
        ok &= 0 <= idx[i] < n
    return ok


cdef inline Py_ssize_t _whole_panels(Py_ssize_t words) noexcept nogil:
    """words rounded up to whole panels, so that a buffer after them stays aligned."""
    return (words + DLFR_PANEL - 1) // DLFR_PANEL * DLFR_PANEL


cdef void _train_epoch(Net *net, floating *work, Py_ssize_t batch, const floating *X,
                       const floating *Y, Py_ssize_t n, const int64_t *order, floating lr,
                       int loss, double *loss_sum, Py_ssize_t *correct, Py_ssize_t s_begin,
                       Py_ssize_t s_end) noexcept nogil:
    """The mini-batches of X[order] that start in [s_begin, s_end)."""
    cdef int L = net.n_layers, l
    cdef Py_ssize_t n_in = net.n_in[0], n_out = net.n_out[L - 1]
    cdef Py_ssize_t s = s_begin, m, r, lda
    cdef floating *Xb = work
    cdef floating *Yb = Xb + _whole_panels(batch * n_in)
    cdef floating *A[MAX_LAYERS]
    cdef floating *D[MAX_LAYERS]
    cdef floating *WT[MAX_LAYERS]
    cdef floating *p = Yb + _whole_panels(batch * n_out)  # then whole panel rows: aligned too
    cdef floating *W
    cdef floating *b
    cdef const floating *A_prev
    cdef const floating *X_batch
    cdef const floating *Y_batch
    cdef floating step
    cdef dlfr_prefetch next_rows  # the next batch's input rows
    cdef bint own_wide = _own_wide(batch)  # once per epoch (see _own_gemm)
    for l in range(L):
        A[l] = p
        D[l] = p + batch * net.ld[l]
        p += 2 * batch * net.ld[l]
    for l in range(1, L):
        WT[l] = p  # W[l] transposed (ld[l] x ld[l-1]); padding stays zero
        p += net.ld[l] * net.ld[l - 1]
    next_rows.base = <const char *>X
    next_rows.row_bytes = n_in * sizeof(floating)
    while s < s_end:
        m = min(batch, n - s)
        next_rows.index = order + s + m
        next_rows.rows = min(batch, n - s - m)
        step = -lr / m  # the gradient is the mean over the mini-batch
        X_batch = X + order[s] * n_in
        Y_batch = Y + order[s] * n_out
        if not _consecutive(order + s, m):
            # a shuffled batch is gathered; a run of consecutive rows is used in place
            for r in range(m):
                memcpy(&Xb[r * n_in], &X[order[s + r] * n_in], n_in * sizeof(floating))
                memcpy(&Yb[r * n_out], &Y[order[s + r] * n_out], n_out * sizeof(floating))
            X_batch = Xb
            Y_batch = Yb
        # forward, keeping every layer's output
        A_prev = X_batch
        lda = n_in
        for l in range(L):
            _layer(net, l, own_wide, m, A_prev, lda, A[l], net.ld[l])
            A_prev = A[l]
            lda = net.ld[l]
        loss_sum[0] += _output_delta(net, m, A[L - 1], Y_batch, D[L - 1], loss, correct)
        # backward: each delta goes through W^T before W takes its step
        for l in range(L - 1, -1, -1):
            W = <floating *>net.W[l]
            b = <floating *>net.b[l]
            if l > 0:
                # D[l-1] = D[l] @ W^T through a transposed copy, so the same
                # register-blocked GEMM does it (the copy is 1/m of the update's work)
                _transpose(W, net.n_in[l], net.n_out[l], net.ld[l], WT[l], net.ld[l - 1])
                _gemm(m, net.ld[l - 1], net.n_out[l], D[l], net.ld[l], WT[l], net.ld[l - 1],
                      <const floating *>NULL, D[l - 1], net.ld[l - 1])
                _act_backward(D[l - 1], A[l - 1], m, net.n_out[l - 1], net.ld[l - 1],
                              net.act[l - 1])
                A_prev = A[l - 1]
                lda = net.ld[l - 1]
            else:
                A_prev = X_batch
                lda = n_in
            # W += step * A_prev^T @ D: the gradient GEMM with the update folded in
            # the input layer's update also fetches the next batch's rows from memory
            _gemm_update(net.n_in[l], net.ld[l], m, A_prev, lda, D[l], net.ld[l], W, net.ld[l],
                         step, &next_rows if l == 0 else NULL)
            _bias_update(b, D[l], m, net.n_out[l], net.ld[l], step)
        s += m


cdef class Trainer:
    """Working memory for training one network shape: allocated once per fit.

    ``epoch`` runs a whole epoch of mini-batch SGD in one call with the GIL
    released, updating the padded weight and bias arrays in place.
    """
    cdef void *work
    cdef Py_ssize_t batch, itemsize
    cdef tuple shape

    def __cinit__(self, list n_ins, list lds, Py_ssize_t n_targets, Py_ssize_t batch_size,
                  int itemsize):
        cdef Py_ssize_t words
        if itemsize != 4 and itemsize != 8:
            raise ValueError(f"dlfr._kernels.Trainer: itemsize must be 4 or 8; got {itemsize}")
        # summed in Python integers (a product too large for Py_ssize_t raises
        # OverflowError on its way into _whole_panels), as _train_epoch lays it out
        size = (_whole_panels(batch_size * n_ins[0]) + _whole_panels(batch_size * n_targets)
                + sum(2 * batch_size * ld for ld in lds)
                + sum(lds[l] * lds[l - 1] for l in range(1, len(lds))))  # W^T for backprop
        if size * itemsize > PY_SSIZE_T_MAX:
            raise MemoryError("dlfr: training buffers too large")
        words = size
        self.work = dlfr_aligned_alloc(words * itemsize)
        if self.work == NULL:
            raise MemoryError("dlfr: no memory for training buffers")
        # deltas' padding columns must start (and stay) zero
        memset(self.work, 0, words * itemsize)
        self.batch = batch_size
        self.itemsize = itemsize
        self.shape = (tuple(n_ins), tuple(lds), n_targets)

    def __dealloc__(self):
        dlfr_aligned_free(self.work)

    def epoch(self, list weights, list biases, list n_outs, list acts, object X, object Y,
              object order, double learning_rate, int loss):
        """One epoch over X[order]; returns (summed loss, number of hits).

        KeyboardInterrupt (Ctrl-C) stops it between mini-batches, leaving the
        weights of the last completed one (dlfr.training.fit restores the
        epoch's start)."""
        cdef Net net
        cdef Py_buffer views[2 * MAX_LAYERS]
        cdef int held = 0, typenum = cnp.NPY_FLOAT32 if self.itemsize == 4 else cnp.NPY_FLOAT64
        cdef double loss_sum = 0
        cdef Py_ssize_t correct = 0, n, s = 0, step
        cdef int l
        cdef void *x
        cdef void *y
        cdef const int64_t *idx
        try:
            _describe(&net, weights, biases, n_outs, acts, views, &held, 1)
            if not (_ready(X, 2, typenum) and _ready(Y, 2, typenum)
                    and _ready(order, 1, cnp.NPY_INT64)):
                raise ValueError("dlfr._kernels.Trainer: X, Y and order must be C-contiguous "
                                 "native arrays of the network's dtype (order: int64)")
            n = cnp.PyArray_DIM(<cnp.ndarray>X, 0)
            if ((tuple([net.n_in[l] for l in range(net.n_layers)]),
                 tuple([net.ld[l] for l in range(net.n_layers)]),
                 net.n_out[net.n_layers - 1]) != self.shape
                    or views[0].itemsize != self.itemsize
                    or cnp.PyArray_DIM(<cnp.ndarray>X, 1) != net.n_in[0]
                    or cnp.PyArray_DIM(<cnp.ndarray>Y, 0) != n
                    or cnp.PyArray_DIM(<cnp.ndarray>Y, 1) != net.n_out[net.n_layers - 1]
                    or cnp.PyArray_DIM(<cnp.ndarray>order, 0) != n):
                raise ValueError("dlfr._kernels.Trainer: arrays do not match the network")
            x = cnp.PyArray_DATA(<cnp.ndarray>X)
            y = cnp.PyArray_DATA(<cnp.ndarray>Y)
            idx = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>order)
            if not _all_below(idx, n):
                raise ValueError("dlfr._kernels.Trainer: order holds a row outside X")
            # in slices of whole mini-batches, answering signals between them
            # (see SLICE_WORK; a backward pass costs about two forward ones)
            step = max(1, SLICE_WORK // (3 * self.batch * _row_work(&net))) * self.batch
            while s < n:
                with nogil:
                    if self.itemsize == 4:
                        _train_epoch(&net, <float *>self.work, self.batch, <const float *>x,
                                     <const float *>y, n, idx, <float>learning_rate, loss,
                                     &loss_sum, &correct, s, min(n, s + step))
                    else:
                        _train_epoch(&net, <double *>self.work, self.batch,
                                     <const double *>x, <const double *>y, n, idx,
                                     learning_rate, loss, &loss_sum, &correct, s,
                                     min(n, s + step))
                s += step
                if s < n:
                    PyErr_CheckSignals()  # KeyboardInterrupt: the caller restores the weights
        finally:
            _release(views, held)
        return loss_sum, correct
