# A network's layers as the compiled code sees them, and one layer's forward
# step: what _trainer cimports from _engine (see _engine.pyx).
#
# A network's layers are given as parallel lists: W (n_in, ld) and b (ld,)
# arrays, padded with zero columns to ld = n_out rounded up to PANEL, plus
# n_out and the activation code of each layer. The same padded arrays serve
# inference and training (dlfr.layers.Dense stores its weights that way), so
# nothing is repacked while the weights stay where they are.

from cython cimport floating


cdef enum:
    MAX_LAYERS = 64


cdef struct Net:
    int n_layers
    int wide            # some layer is wider than NARROW_MAX_ (see _dispatch.pxd, _own_gemm)
    Py_ssize_t n_in[MAX_LAYERS]
    Py_ssize_t n_out[MAX_LAYERS]
    Py_ssize_t ld[MAX_LAYERS]
    int act[MAX_LAYERS]
    void *W[MAX_LAYERS]
    void *b[MAX_LAYERS]
    Py_ssize_t max_ld


cdef inline Py_ssize_t _row_work(Net *net) noexcept nogil:
    """Multiply-adds (and adds) per row of the network, padding included."""
    cdef Py_ssize_t work = 0
    cdef int l
    for l in range(net.n_layers):
        work += (net.n_in[l] + 1) * net.ld[l]
    return max(work, 1)


cdef int _describe(Net *net, list weights, list biases, list n_outs, list acts,
                   Py_buffer *views, int *held, int writable) except -1
cdef void _release(Py_buffer *views, int held) noexcept
cdef Py_ssize_t _layer(Net *net, int l, bint own_wide, Py_ssize_t rows, const floating *A,
                       Py_ssize_t lda, floating *C, Py_ssize_t ldc,
                       bint check_finite, bint stream=*) noexcept nogil
