# cython: language_level=3
"""A network's whole forward pass in one call (``Engine``), and predict's
labels (``decide_rows``).

Engine.run checks X through NumPy's C API, then runs every layer with the
GIL released: rows in chunks, on OpenMP threads for big batches, in slices
between which Ctrl-C is answered, with the finite check (check_finite) made
through the first layer's outputs. The C kernels run through _dispatch,
BLAS through _blas.
"""

from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE,
                             PyBuffer_Release, PyObject_GetBuffer)
from cpython.exc cimport PyErr_CheckSignals
from cython cimport floating
from cython.parallel cimport prange
from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

cimport numpy as cnp

from ._arrays cimport _new_rows, _ready
from ._blas cimport _blas_gemm_rowmajor, _blas_sizes_fit
from ._chunks cimport (CHUNK_ROWS, CHUNK_ROWS_WIDE, PARALLEL_MIN_ROWS_, STREAM_MIN_BYTES,
                       _chunks_per_grab, _slice_work)
from ._dispatch cimport (NARROW_MAX_, _aligned_alloc, _aligned_free, _bias_act,
                         _first_nonfinite_row, _gemm, _gemm_stream, _max_threads, _own_gemm,
                         _own_wide, _thread_count)
from ._omp cimport omp_get_thread_num
from ._simd cimport DLFR_PANEL, DLFR_SOFTMAX

cnp.import_array()

PARALLEL_MIN_ROWS = PARALLEL_MIN_ROWS_
# The most layers one compiled call takes (dlfr.Network refuses more).
MAX_NETWORK_LAYERS = MAX_LAYERS


# ---- the layers ----

cdef Py_ssize_t _slice_rows(Net *net, bint own_wide, int threads) noexcept nogil:
    """Rows per slice of a forward pass (see _chunks.pxd, SLICE_WORK): whole
    chunks, at least one a thread; where BLAS runs the layers (threaded by
    itself), one chunk at most."""
    cdef Py_ssize_t rows
    if _uses_blas(net, own_wide):
        rows = _slice_work(_max_threads()) // _row_work(net)
        return max(CHUNK_ROWS, min(rows, CHUNK_ROWS_WIDE))
    rows = _slice_work(threads) // _row_work(net)
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
                       bint check_finite, bint stream=False) noexcept nogil:
    """C = act(A @ W + b) for layer l: with ldc = ld, whole padded rows (the
    padding columns junk); with ldc = n_out, the real columns alone, rows one
    after another (a network's output).

    ``own_wide``: as for _own_gemm.
    ``check_finite``: returns the first row of A holding NaN or inf, C then
    unfinished (see _first_bad_input_row); else -1.
    ``stream``: A comes from memory (see STREAM_MIN_BYTES); the same sums.
    """
    cdef Py_ssize_t bad = -1
    cdef Py_ssize_t ld = net.ld[l], n_in = net.n_in[l]
    cdef const floating *W = <const floating *>net.W[l]
    cdef const floating *b = <const floating *>net.b[l]
    # Activate rows whole (one contiguous vectorised pass, padding included)
    # unless softmax, whose sum must see the real columns only.
    cdef Py_ssize_t cols = net.n_out[l] if net.act[l] == DLFR_SOFTMAX else ldc
    cdef bint own = _own_gemm(net.n_out[l], own_wide) or n_in == 0
    if own and stream:
        _gemm_stream(rows, ldc, n_in, A, lda, W, ld, b, C, ldc)
    elif own:
        _gemm(rows, ldc, n_in, A, lda, W, ld, b, C, ldc)
    else:
        _blas_gemm_rowmajor(rows, ldc, n_in, A, lda, W, ld, C, ldc, 0)
    if check_finite:
        bad = _first_bad_input_row(C, ldc, A, lda, rows, n_in)
        if bad >= 0:
            return bad
    _bias_act(C, rows, cols, ldc, <const floating *>NULL if own else b, net.act[l])
    return -1


# ---- check_finite: bad input rows found through the first layer's outputs ----

cdef Py_ssize_t _first_bad_input_row(const floating *Z, Py_ssize_t ldz, const floating *A,
                                     Py_ssize_t lda, Py_ssize_t rows,
                                     Py_ssize_t n_in) noexcept nogil:
    """The first of A's rows holding NaN or inf, found through Z = A @ W (+ b),
    the layer's outputs before the activation: a NaN or inf in a row of A
    makes every output of that row NaN or inf (NaN times anything, inf times
    0 and inf - inf are NaN), so only the rows whose outputs are not all
    finite are read again in A (a finite row's sum can overflow too). Z is
    rows x ldz, a few columns, where A is rows x n_in: 784-16-10's check
    reads 16 values a row instead of 784, and nothing when every output is
    finite."""
    cdef Py_ssize_t r = _first_nonfinite_row(Z, rows, ldz)
    if r < 0:
        return -1
    while r < rows:
        if (_first_nonfinite_row(Z + r * ldz, 1, ldz) >= 0
                and _first_nonfinite_row(A + r * lda, 1, n_in) >= 0):
            return r
        r += 1
    return -1


cdef int _refuse_non_finite(Py_ssize_t row) except -1:
    exc = ValueError(f"X holds NaN or inf in row {row}; pass check_finite=False to compute "
                     "such rows anyway (NaN propagates)")
    exc.dlfr_row = row  # for dlfr.dask, which names the row in the whole array
    raise exc


# ---- predict's labels ----

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

    NumPy's own ``a.argmax(axis=1)`` walks short rows one call at a time,
    several times slower on rows of 10.
    """
    if labels.shape[0] != a.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries for {a.shape[0]} rows")
    if a.shape[0] == 0 or a.shape[1] == 0:
        return
    with nogil:
        _decide_rows(&a[0, 0], a.shape[1], a.shape[0], a.shape[1], &labels[0])


# ---- the forward pass: chunks of rows through every layer ----

cdef Py_ssize_t _forward_chunk(Net *net, bint own_wide, bint stream, Py_ssize_t rows,
                               const floating *X, Py_ssize_t ldx, floating *out, int64_t *labels,
                               floating *buf0, floating *buf1, bint check_finite) noexcept nogil:
    """out (rows x n_out of the last layer) = the network applied to X's rows;
    with ``labels`` (out NULL), their labels instead, taken while in cache.

    ``stream``: X comes from memory (the first layer's GEMM prefetches it).
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
                     check_finite and l == 0, stream and l == 0)
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


cdef void _run_chunk(Net *net, bint own_wide, bint stream, const void *X, int x_is_u8,
                     floating scale,
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
    r = _forward_chunk(net, own_wide, stream and not x_is_u8, rows, Xc, n_in,
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
    # smaller allocation than a chunk's)
    cdef Py_ssize_t chunk = max(1, min(CHUNK_ROWS_WIDE if _uses_blas(net, own_wide)
                                       else CHUNK_ROWS, n))
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c
    # float X this large comes from memory, not cache (uint8 rows are
    # converted into a chunk buffer first)
    cdef bint stream = not x_is_u8 and n * net.n_in[0] * sizeof(floating) >= STREAM_MIN_BYTES
    cdef Py_ssize_t per_thread = 2 * chunk * net.max_ld + (chunk * net.n_in[0] if x_is_u8 else 0)
    cdef floating *work
    cdef int threads = <int>min(<Py_ssize_t>max(n_threads, 1), n_chunks), t
    cdef Py_ssize_t *bad = NULL  # one slot per thread (each writes its own), then the least
    work = <floating *>_aligned_alloc(threads * per_thread * sizeof(floating))
    if first_bad != NULL:
        first_bad[0] = n
        bad = <Py_ssize_t *>malloc(threads * sizeof(Py_ssize_t))
        if bad != NULL:
            for t in range(threads):
                bad[t] = n
    if work == NULL or (first_bad != NULL and bad == NULL):
        _aligned_free(work)
        free(bad)
        with gil:
            raise MemoryError("dlfr: no memory for the forward pass's working buffers")
    if threads == 1:
        for c in range(n_chunks):
            _run_chunk(net, own_wide, stream, X, x_is_u8, scale, c * chunk,
                       min(chunk, n - c * chunk), chunk, out, labels, work, bad)
            if bad != NULL and bad[0] < n:
                break  # chunks in order: this is the first bad row
    else:
        # chunks (runs of them in a big batch: _chunks_per_grab) handed out
        # as threads come free: a core the host slows for a while then takes
        # fewer (static halves would wait for it); rows are computed the same
        # on any thread, so results do not change
        for c in prange(n_chunks, num_threads=threads, schedule="dynamic",
                        chunksize=_chunks_per_grab(n_chunks, threads)):
            _run_chunk(net, own_wide, stream, X, x_is_u8, scale, c * chunk,
                       min(chunk, n - c * chunk), chunk, out, labels,
                       work + omp_get_thread_num() * per_thread,
                       bad + omp_get_thread_num() if bad != NULL else NULL)
    if bad != NULL:
        for t in range(threads):
            first_bad[0] = min(first_bad[0], bad[t])
        free(bad)
    _aligned_free(work)
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
        while True:  # in slices, answering signals between them (see _chunks.pxd)
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
