# cython: language_level=3
"""Training: one epoch of mini-batch SGD per call (``Trainer.epoch``), optionally
with per-sample weights.

The forward pass is _engine's (_layer); the backward pass and the update
run on the C kernels through _dispatch, with the GIL released, in slices of
whole mini-batches between which Ctrl-C is answered.
"""

from cpython.exc cimport PyErr_CheckSignals
from cpython.pyport cimport PY_SSIZE_T_MAX
from cython cimport floating
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

cimport numpy as cnp

from ._arrays cimport _ready
from ._chunks cimport _slice_work
from ._dispatch cimport (_act_backward, _aligned_alloc, _aligned_free, _bias_update, _gemm,
                         _gemm_update, _output_delta, _own_gemm)
from ._engine cimport MAX_LAYERS, Net, _describe, _layer, _release, _row_work
from ._simd cimport DLFR_CROSS_ENTROPY, DLFR_MSE, DLFR_PANEL, dlfr_prefetch

cnp.import_array()

LOSS_MSE = DLFR_MSE
LOSS_CROSS_ENTROPY = DLFR_CROSS_ENTROPY


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
                       const floating *Y, const floating *S, Py_ssize_t n,
                       const int64_t *order, floating lr, int loss, double *loss_sum,
                       double *correct, Py_ssize_t s_begin, Py_ssize_t s_end) noexcept nogil:
    """The mini-batches of X[order] that start in [s_begin, s_end).

    S: the rows' sample weights, or NULL. With weights, each row's output delta
    and cost are scaled by its weight and the step is divided by the batch's
    weight sum instead of its size (a weighted mean); a batch whose weights
    are all zero is skipped.
    """
    cdef int L = net.n_layers, l
    cdef Py_ssize_t n_in = net.n_in[0], n_out = net.n_out[L - 1]
    cdef Py_ssize_t s = s_begin, m, r, lda
    cdef floating *Xb = work
    cdef floating *Yb = Xb + _whole_panels(batch * n_in)
    cdef floating *Sb = Yb + _whole_panels(batch * n_out)
    cdef floating *A[MAX_LAYERS]
    cdef floating *D[MAX_LAYERS]
    cdef floating *WT[MAX_LAYERS]
    cdef floating *p = Sb + _whole_panels(batch)  # then whole panel rows: aligned too
    cdef floating *W
    cdef floating *b
    cdef const floating *A_prev
    cdef const floating *X_batch
    cdef const floating *Y_batch
    cdef const floating *S_batch
    cdef double weight_sum
    cdef floating step
    cdef dlfr_prefetch next_rows  # the next batch's input rows
    cdef bint own_gemm = _own_gemm(batch)  # once per epoch
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
        S_batch = S + order[s] if S != NULL else NULL
        if not _consecutive(order + s, m):
            # a shuffled batch is gathered; a run of consecutive rows is used in place
            for r in range(m):
                memcpy(&Xb[r * n_in], &X[order[s + r] * n_in], n_in * sizeof(floating))
                memcpy(&Yb[r * n_out], &Y[order[s + r] * n_out], n_out * sizeof(floating))
                if S != NULL:
                    Sb[r] = S[order[s + r]]
            X_batch = Xb
            Y_batch = Yb
            S_batch = Sb if S != NULL else NULL
        if S_batch != NULL:
            weight_sum = 0
            for r in range(m):
                weight_sum += S_batch[r]
            if weight_sum == 0:  # nothing to learn from; -lr / 0 would make NaN
                s += m
                continue
            step = -lr / <floating>weight_sum  # the weighted mean (all ones: as -lr / m)
        # forward, keeping every layer's output
        A_prev = X_batch
        lda = n_in
        for l in range(L):
            _layer(net, l, own_gemm, m, A_prev, lda, A[l], net.ld[l], False)
            A_prev = A[l]
            lda = net.ld[l]
        loss_sum[0] += _output_delta(A[L - 1], Y_batch, S_batch, D[L - 1], m, n_out,
                                     net.ld[L - 1], net.act[L - 1], loss, correct)
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
                + _whole_panels(batch_size)  # the batch's sample weights
                + sum(2 * batch_size * ld for ld in lds)
                + sum(lds[l] * lds[l - 1] for l in range(1, len(lds))))  # W^T for backprop
        if size * itemsize > PY_SSIZE_T_MAX:
            raise MemoryError("dlfr: training buffers too large")
        words = size
        self.work = _aligned_alloc(words * itemsize)
        if self.work == NULL:
            raise MemoryError("dlfr: no memory for training buffers")
        # deltas' padding columns must start (and stay) zero
        memset(self.work, 0, words * itemsize)
        self.batch = batch_size
        self.itemsize = itemsize
        self.shape = (tuple(n_ins), tuple(lds), n_targets)

    def __dealloc__(self):
        _aligned_free(self.work)

    def epoch(self, list weights, list biases, list n_outs, list acts, object X, object Y,
              object order, double learning_rate, int loss, object sample_weight=None):
        """One epoch over X[order]; returns (summed loss, hits), both weighted by
        ``sample_weight`` (one weight per row of X, the network's dtype) if given.

        KeyboardInterrupt (Ctrl-C) stops it between mini-batches, leaving the
        weights of the last completed one (dlfr.training.fit restores the
        epoch's start)."""
        cdef Net net
        cdef Py_buffer views[2 * MAX_LAYERS]
        cdef int held = 0, typenum = cnp.NPY_FLOAT32 if self.itemsize == 4 else cnp.NPY_FLOAT64
        cdef double loss_sum = 0, correct = 0
        cdef Py_ssize_t n, s = 0, step
        cdef int l
        cdef void *x
        cdef void *y
        cdef void *w = NULL
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
            if sample_weight is not None:
                if not (_ready(sample_weight, 1, typenum)
                        and cnp.PyArray_DIM(<cnp.ndarray>sample_weight, 0) == n):
                    raise ValueError("dlfr._kernels.Trainer: sample_weight must be a "
                                     "C-contiguous native array of the network's dtype, one "
                                     "weight per row of X")
                w = cnp.PyArray_DATA(<cnp.ndarray>sample_weight)
            x = cnp.PyArray_DATA(<cnp.ndarray>X)
            y = cnp.PyArray_DATA(<cnp.ndarray>Y)
            idx = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>order)
            if not _all_below(idx, n):
                raise ValueError("dlfr._kernels.Trainer: order holds a row outside X")
            # in slices of whole mini-batches, answering signals between them
            # (see _chunks.pxd; a backward pass costs about two forward ones)
            step = max(1, _slice_work(1) // (3 * self.batch * _row_work(&net))) * self.batch
            while s < n:
                with nogil:
                    if self.itemsize == 4:
                        _train_epoch(&net, <float *>self.work, self.batch, <const float *>x,
                                     <const float *>y, <const float *>w, n, idx,
                                     <float>learning_rate, loss, &loss_sum, &correct, s,
                                     min(n, s + step))
                    else:
                        _train_epoch(&net, <double *>self.work, self.batch,
                                     <const double *>x, <const double *>y, <const double *>w,
                                     n, idx, learning_rate, loss, &loss_sum, &correct, s,
                                     min(n, s + step))
                s += step
                if s < n:
                    PyErr_CheckSignals()  # KeyboardInterrupt: the caller restores the weights
        finally:
            _release(views, held)
        return loss_sum, correct
