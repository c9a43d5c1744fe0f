# Cython's view of _omp.h: OpenMP's run-time calls (serial stand-ins in a
# build without OpenMP) and the build's own description. OpenMP's state is
# the process's one runtime (libgomp), shared by every compiled module that
# cimports this; dlfr's cap on it lives in _dispatch (_max_threads).

cdef extern from "_omp.h" nogil:
    int omp_get_max_threads()
    int omp_get_thread_num()
    int omp_get_num_procs()
    int DLFR_HAVE_OPENMP
    const char *DLFR_BUILD_COMPILER
    const char *DLFR_BUILD_FLAGS
