# How the compiled modules cut their rows: into chunks, which threads take
# one at a time and whose activations stay in cache through every layer, and
# into slices, between which Python's signal handlers run (Ctrl-C).

cdef enum:
    # Rows per chunk (dense, the forward pass): one chunk's activations stay
    # in cache through every layer. A multiple of every GEMM block height
    # (12, 6, 4 and 2 rows), so no chunk ends in a short block.
    CHUNK_ROWS = 120
    # Networks with a BLAS layer take bigger chunks: BLAS is efficient
    # only on tall matrices, and its working set is blocked for cache anyway.
    CHUNK_ROWS_WIDE = 1024
    # Below this many rows a forward pass or dense call stays on one thread:
    # starting the OpenMP workers costs more than they save.
    PARALLEL_MIN_ROWS_ = 256
    # Ctrl-C: a long forward pass, epoch or dense call runs in slices of
    # about this many multiply-adds per thread (a few milliseconds;
    # elementwise kernels a 16th of it in elements), and between slices
    # takes the GIL to let Python's signal handlers run
    # (PyErr_CheckSignals): SIGINT is answered within a slice. A batch-1
    # call is one slice and checks nothing.
    SLICE_WORK = 1 << 27
    # A forward pass over this many bytes of float input or more reads its
    # first layer with gemm_stream: X then comes from memory, not cache, and
    # the prefetches of the next rows pay (see docs/architecture.md); below
    # it they cost a few per cent.
    STREAM_MIN_BYTES = 1 << 23


cdef inline Py_ssize_t _slice_work(int threads) noexcept nogil:
    """SLICE_WORK times ``threads``, in Py_ssize_t (the enum is a C int)."""
    return <Py_ssize_t>SLICE_WORK * threads


cdef inline Py_ssize_t _chunks_per_grab(Py_ssize_t n_chunks, int threads) noexcept nogil:
    """Chunks of rows a thread takes at a time from a dynamic schedule.

    One while a batch is a few dozen chunks (the finest balance); for big
    batches, runs of consecutive chunks (about a 16th of a thread's share),
    so that each register block's prefetch of the next rows mostly lands in
    rows the same thread takes next.
    """
    return max(1, n_chunks // (threads * 16))
