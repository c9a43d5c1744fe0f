# cython: language_level=3
"""Training: one epoch of mini-batch gradient descent per call (``Trainer.epoch``),
optionally with per-sample weights.

The forward pass is _engine's (_layer); the backward pass and the update
run on the C kernels through _dispatch, with the GIL released, in slices of
whole mini-batches between which Ctrl-C is answered.

Plain SGD folds each layer's step into its gradient GEMM (W += -lr/m A^T D).
Any other update (``Update``: momentum, Nesterov, Adam, L2 weight decay,
gradient clipping) materialises the batch's mean gradient in buffers of the
parameters' shapes, then takes one optimizer_step kernel per parameter array.
"""

from cpython.exc cimport PyErr_CheckSignals
from cpython.pyport cimport PY_SSIZE_T_MAX
from cython cimport floating
from libc.math cimport pow, sqrt
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

cimport numpy as cnp

from ._arrays cimport _ready
from ._chunks cimport _slice_work
from ._dispatch cimport (_act_backward, _aligned_alloc, _aligned_free, _bias_update, _gemm,
                         _gemm_update, _optimizer_step, _output_delta, _own_wide, _sum_squares)
from ._engine cimport MAX_LAYERS, Net, _describe, _layer, _release, _row_work
from ._simd cimport (DLFR_CROSS_ENTROPY, DLFR_MSE, DLFR_PANEL, DLFR_RULE_ADAM,
                     DLFR_RULE_MOMENTUM, DLFR_RULE_NESTEROV, DLFR_RULE_SGD, dlfr_prefetch,
                     dlfr_step)

cnp.import_array()

LOSS_MSE = DLFR_MSE
LOSS_CROSS_ENTROPY = DLFR_CROSS_ENTROPY
RULE_SGD = DLFR_RULE_SGD
RULE_MOMENTUM = DLFR_RULE_MOMENTUM
RULE_NESTEROV = DLFR_RULE_NESTEROV
RULE_ADAM = DLFR_RULE_ADAM


cdef struct Rule:
    # An Update as an epoch runs it (see Update)
    dlfr_step step      # the rule and its coefficients; lr and grad_scale set per batch
    double lr           # the epoch's learning rate
    double decay        # L2: lambda / n, on the weights alone
    double clip_norm    # the cap on the batch gradient's global norm (0: none)
    long long t         # steps taken (Adam's bias correction)
    void *s1[2 * MAX_LAYERS]  # the rule's state: layer l's W at 2l, its b at 2l + 1
    void *s2[2 * MAX_LAYERS]


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

cdef inline void _begin_step(Rule *rule) noexcept nogil:
    """A new mini-batch's step: its number and step size."""
    rule.t += 1
    rule.step.grad_scale = 1
    rule.step.lr = rule.lr
    if rule.step.rule == DLFR_RULE_ADAM:  # scikit-learn's bias-corrected step size
        rule.step.lr = (rule.lr * sqrt(1 - pow(rule.step.beta_2, <double>rule.t))
                        / (1 - pow(rule.step.beta_1, <double>rule.t)))


cdef void _clip(Net *net, Rule *rule, floating **GW, floating **Gb) noexcept nogil:
    """Scale the batch's whole gradient (L2's term included) down to clip_norm."""
    cdef double total = 0, norm
    cdef int l
    for l in range(net.n_layers):
        total += _sum_squares(<const floating *>GW[l], <const floating *>net.W[l], rule.decay,
                              net.n_in[l] * net.ld[l])
        total += _sum_squares(<const floating *>Gb[l], <const floating *>NULL, 0, net.ld[l])
    norm = sqrt(total)
    if norm > rule.clip_norm:
        rule.step.grad_scale = rule.clip_norm / norm


cdef double _step_layer(Net *net, Rule *rule, int l, floating *GW, floating *Gb,
                        double rows) noexcept nogil:
    """Layer l's optimizer step (zeroing its gradient); returns L2's share of
    the batch's summed loss, rows lambda/(2n) ||W||^2, at the weights before it
    (rows: the batch's size, or its weight sum with sample weights)."""
    cdef floating *W = <floating *>net.W[l]
    cdef Py_ssize_t size = net.n_in[l] * net.ld[l]
    cdef double penalty = 0
    if rule.decay > 0:
        penalty = 0.5 * rule.decay * rows * _sum_squares(<const floating *>W,
                                                      <const floating *>NULL, 0, size)
    rule.step.decay = rule.decay
    _optimizer_step(W, GW, <floating *>rule.s1[2 * l], <floating *>rule.s2[2 * l], size,
                    &rule.step)
    rule.step.decay = 0  # biases are not decayed
    _optimizer_step(<floating *>net.b[l], Gb, <floating *>rule.s1[2 * l + 1],
                    <floating *>rule.s2[2 * l + 1], net.ld[l], &rule.step)
    return penalty


cdef void _train_epoch(Net *net, floating *work, Py_ssize_t batch, const floating *X,
                       const floating *Y, const floating *S, Py_ssize_t n,
                       const int64_t *order, floating lr, int loss, Rule *rule,
                       double *loss_sum, double *correct, Py_ssize_t s_begin,
                       Py_ssize_t s_end) noexcept nogil:
    """The mini-batches of X[order] that start in [s_begin, s_end).

    ``rule`` NULL: plain SGD at rate lr, folded into the gradient GEMMs; else
    the rule's step (at rule.lr) on the materialised mean gradient.

    S: the rows' sample weights, or NULL. With weights, each row's output delta
    and cost are scaled by its weight and the gradient is divided by the
    batch's weight sum instead of its size (a weighted mean), with or without
    a rule; a batch whose weights are all zero is skipped (no step: Adam's
    step count does not advance).
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
    cdef floating *GW[MAX_LAYERS]  # the batch's mean gradient (with an Update)
    cdef floating *Gb[MAX_LAYERS]
    cdef floating *p = Sb + _whole_panels(batch)  # then whole panel rows: aligned too
    cdef floating *W
    cdef floating *b
    cdef const floating *A_prev
    cdef const floating *X_batch
    cdef const floating *Y_batch
    cdef const floating *S_batch
    cdef double weight_sum
    cdef floating step, mean
    cdef dlfr_prefetch next_rows  # the next batch's input rows
    cdef bint own_wide = _own_wide(batch)  # once per epoch (see _own_gemm)
    for l in range(L):
        A[l] = p
        D[l] = p + batch * net.ld[l]
        p += 2 * batch * net.ld[l]
    for l in range(1, L):
        WT[l] = p  # W[l] transposed (ld[l] x ld[l-1]); padding stays zero
        p += net.ld[l] * net.ld[l - 1]
    for l in range(L):
        GW[l] = p  # zero between batches: the optimizer step leaves them so
        p += net.n_in[l] * net.ld[l]
        Gb[l] = p
        p += net.ld[l]
    next_rows.base = <const char *>X
    next_rows.row_bytes = n_in * sizeof(floating)
    while s < s_end:
        m = min(batch, n - s)
        next_rows.index = order + s + m
        next_rows.rows = min(batch, n - s - m)
        step = -lr / m  # the gradient is the mean over the mini-batch
        mean = (<floating>1) / m
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
        weight_sum = m  # the batch's total weight: its size without weights
        if S_batch != NULL:
            weight_sum = 0
            for r in range(m):
                weight_sum += S_batch[r]
            if weight_sum == 0:  # nothing to learn from; -lr / 0 would make NaN
                s += m
                continue
            step = -lr / <floating>weight_sum  # the weighted mean (all ones: as -lr / m)
            mean = (<floating>1) / <floating>weight_sum
        # forward, keeping every layer's output
        A_prev = X_batch
        lda = n_in
        for l in range(L):
            _layer(net, l, own_wide, m, A_prev, lda, A[l], net.ld[l], False)
            A_prev = A[l]
            lda = net.ld[l]
        loss_sum[0] += _output_delta(A[L - 1], Y_batch, S_batch, D[L - 1], m, n_out,
                                     net.ld[L - 1], net.act[L - 1], loss, correct)
        if rule != NULL:
            _begin_step(rule)
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
            if rule == NULL:
                # W += step * A_prev^T @ D: the gradient GEMM with the update folded in
                # the input layer's update also fetches the next batch's rows from memory
                _gemm_update(net.n_in[l], net.ld[l], m, A_prev, lda, D[l], net.ld[l], W,
                             net.ld[l], step, &next_rows if l == 0 else NULL)
                _bias_update(b, D[l], m, net.n_out[l], net.ld[l], step)
                continue
            _gemm_update(net.n_in[l], net.ld[l], m, A_prev, lda, D[l], net.ld[l], GW[l],
                         net.ld[l], mean, &next_rows if l == 0 else NULL)
            _bias_update(Gb[l], D[l], m, net.n_out[l], net.ld[l], mean)
            if rule.clip_norm == 0:  # the step at once, while the gradient is in cache
                loss_sum[0] += _step_layer(net, rule, l, GW[l], Gb[l], weight_sum)
        if rule != NULL and rule.clip_norm > 0:  # the whole gradient's norm first
            _clip(net, rule, GW, Gb)
            for l in range(L):
                loss_sum[0] += _step_layer(net, rule, l, GW[l], Gb[l], weight_sum)
        s += m


cdef class Update:
    """How ``Trainer.epoch`` moves the weights when it is not plain SGD.

    ``rule``: RULE_SGD, RULE_MOMENTUM, RULE_NESTEROV or RULE_ADAM, with its
    coefficients (see dlfr_step in _simd.h); ``decay``: L2's lambda/n, on the
    weights (biases are not decayed); ``clip_norm``: the cap on each batch
    gradient's global L2 norm (0: none). ``first`` and ``second``: the rule's
    state, one array per parameter array in the order W0, b0, W1, b1, ...,
    each of that array's size and the network's dtype, C-contiguous and
    writable: the velocity (the momentum rules' ``first``), Adam's moments
    (``first`` and ``second``); None where the rule keeps none. ``steps``:
    the mini-batch steps taken so far (Adam's t), advanced by each epoch.
    """
    cdef readonly int rule
    cdef readonly double momentum, beta_1, beta_2, epsilon, decay, clip_norm
    cdef readonly object first, second
    cdef public long long steps

    def __cinit__(self, int rule, *, double momentum=0, double beta_1=0, double beta_2=0,
                  double epsilon=0, double decay=0, double clip_norm=0, object first=None,
                  object second=None, long long steps=0):
        if rule not in (DLFR_RULE_SGD, DLFR_RULE_MOMENTUM, DLFR_RULE_NESTEROV, DLFR_RULE_ADAM):
            raise ValueError(f"dlfr._kernels.Update: unknown rule {rule}")
        if not (decay >= 0 and clip_norm >= 0 and steps >= 0):
            raise ValueError("dlfr._kernels.Update: decay, clip_norm and steps must be >= 0")
        self.rule = rule
        self.momentum, self.beta_1, self.beta_2, self.epsilon = momentum, beta_1, beta_2, epsilon
        self.decay, self.clip_norm = decay, clip_norm
        self.first = None if first is None else tuple(first)
        self.second = None if second is None else tuple(second)
        self.steps = steps

    cdef int _fill(self, Rule *rule, Net *net, int typenum, double lr) except -1:
        """``rule`` for an epoch of ``net`` at rate lr, its state arrays checked."""
        cdef int used = (2 if self.rule == DLFR_RULE_ADAM
                         else 1 if self.rule in (DLFR_RULE_MOMENTUM, DLFR_RULE_NESTEROV) else 0)
        cdef int k, which
        cdef object arrays
        rule.step.rule = self.rule
        rule.step.momentum = self.momentum
        rule.step.beta_1 = self.beta_1
        rule.step.beta_2 = self.beta_2
        rule.step.epsilon = self.epsilon
        rule.step.lr = lr
        rule.step.grad_scale = 1
        rule.step.decay = 0
        rule.lr = lr
        rule.decay = self.decay
        rule.clip_norm = self.clip_norm
        rule.t = self.steps
        for which in range(2):
            arrays = self.first if which == 0 else self.second
            for k in range(2 * net.n_layers):
                if which == 0:
                    rule.s1[k] = NULL
                else:
                    rule.s2[k] = NULL
            if which >= used:
                continue
            if arrays is None or len(arrays) != 2 * net.n_layers:
                raise ValueError("dlfr._kernels.Update: the rule's state needs one array per "
                                 "weight and bias array")
            for k in range(2 * net.n_layers):
                a = arrays[k]
                if not (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
                        and cnp.PyArray_ISCARRAY(<cnp.ndarray>a)
                        and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)
                        and cnp.PyArray_SIZE(<cnp.ndarray>a)
                        == (net.ld[k // 2] * (net.n_in[k // 2] if k % 2 == 0 else 1))):
                    raise ValueError("dlfr._kernels.Update: state arrays must be writable, "
                                     "C-contiguous native arrays of the network's dtype and "
                                     "of its parameter arrays' sizes")
                if which == 0:
                    rule.s1[k] = cnp.PyArray_DATA(<cnp.ndarray>a)
                else:
                    rule.s2[k] = cnp.PyArray_DATA(<cnp.ndarray>a)
        return 0


cdef class Trainer:
    """Working memory for training one network shape: allocated once per fit.

    ``epoch`` runs a whole epoch of mini-batch gradient descent in one call
    with the GIL released, updating the padded weight and bias arrays in place.
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
                + sum(lds[l] * lds[l - 1] for l in range(1, len(lds)))  # W^T for backprop
                + sum(n_in * ld + ld for n_in, ld in zip(n_ins, lds)))  # the gradient
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
              object order, double learning_rate, int loss, Update update=None,
              object sample_weight=None):
        """One epoch over X[order]; returns (summed loss, hits), both weighted by
        ``sample_weight`` (one weight per row of X, the network's dtype) if given.

        Plain SGD at ``learning_rate`` without ``update``; with it, its rule
        (the summed loss then includes L2's penalty, each batch's at the
        weights it saw). KeyboardInterrupt (Ctrl-C) stops it between
        mini-batches, leaving the weights (and update's state and steps) of
        the last completed one (dlfr.training.fit restores the epoch's start)."""
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
        cdef Rule rule
        cdef Rule *rule_ptr = NULL
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
            if update is not None:
                update._fill(&rule, &net, typenum, learning_rate)
                rule_ptr = &rule
            # in slices of whole mini-batches, answering signals between them
            # (see _chunks.pxd; a backward pass costs about two forward ones)
            step = max(1, _slice_work(1) // (3 * self.batch * _row_work(&net))) * self.batch
            while s < n:
                with nogil:
                    if self.itemsize == 4:
                        _train_epoch(&net, <float *>self.work, self.batch, <const float *>x,
                                     <const float *>y, <const float *>w, n, idx,
                                     <float>learning_rate, loss, rule_ptr, &loss_sum,
                                     &correct, s, min(n, s + step))
                    else:
                        _train_epoch(&net, <double *>self.work, self.batch,
                                     <const double *>x, <const double *>y, <const double *>w,
                                     n, idx, learning_rate, loss, rule_ptr, &loss_sum,
                                     &correct, s,
                                     min(n, s + step))
                s += step
                if s < n:
                    PyErr_CheckSignals()  # KeyboardInterrupt: the caller restores the weights
        finally:
            _release(views, held)
            if rule_ptr != NULL:
                update.steps = rule.t
        return loss_sum, correct
