# Arrays the compiled entry points take as they are, checked through NumPy's
# C API (a check costs nanoseconds, where the buffer protocol costs a tenth
# of a microsecond: the batch-1 paths of dense_fast, Engine.run and
# Trainer.epoch). Inline, so each module that cimports these compiles them
# in; such a module calls cnp.import_array() once at import.

cimport numpy as cnp


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
