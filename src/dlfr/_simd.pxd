# Cython's view of the C kernels (_simd.h). Their functions are called from
# _dispatch.pyx alone, the one module _simd.c is linked into; the other
# compiled modules cimport only the constants and types here and call the
# kernels through _dispatch.pxd.
#
# _simd.h lists each kernel once (DLFR_KERNELS) and expands everything in C
# from that list; Cython cannot read the macro, so each kernel is declared
# here too, once per dtype. A kernel added to DLFR_KERNELS gets its lines here
# (tests/test_simd_c.py checks that every name in the list is declared).

from libc.stdint cimport int64_t


cdef extern from "_simd.h" nogil:
    int DLFR_PANEL
    int DLFR_CACHE_LINE
    double DLFR_LEAKY_RELU_SLOPE
    enum:
        DLFR_IDENTITY
        DLFR_SIGMOID
        DLFR_TANH
        DLFR_RELU
        DLFR_STEP
        DLFR_SOFTMAX
        DLFR_LEAKY_RELU
        DLFR_ELU
    enum:
        DLFR_MSE
        DLFR_CROSS_ENTROPY
    enum:
        DLFR_RULE_SGD
        DLFR_RULE_MOMENTUM
        DLFR_RULE_NESTEROV
        DLFR_RULE_ADAM
    enum:
        DLFR_GENERIC
        DLFR_AVX2
        DLFR_AVX512
        DLFR_NEON
    struct dlfr_prefetch:
        const char *base
        const int64_t *index
        Py_ssize_t rows, row_bytes
    struct dlfr_step:
        int rule
        double lr, momentum, beta_1, beta_2, epsilon, grad_scale, decay
    void *dlfr_aligned_alloc(size_t nbytes)
    void dlfr_aligned_free(void *p)
    int dlfr_simd_supported()
    int dlfr_simd_select(int level)
    int dlfr_simd_level()
    const char *dlfr_simd_name(int level)
    int dlfr_gemm_wide()

    void dlfr_sigmoid_f32(const float *z, float *out, Py_ssize_t n)
    void dlfr_sigmoid_f64(const double *z, double *out, Py_ssize_t n)
    void dlfr_sigmoid_prime_f32(const float *z, float *out, Py_ssize_t n)
    void dlfr_sigmoid_prime_f64(const double *z, double *out, Py_ssize_t n)
    void dlfr_sigmoid_backward_f32(const float *g, const float *a, float *out, Py_ssize_t n)
    void dlfr_sigmoid_backward_f64(const double *g, const double *a, double *out, Py_ssize_t n)
    void dlfr_activate_f32(const float *z, float *out, Py_ssize_t n, int act)
    void dlfr_activate_f64(const double *z, double *out, Py_ssize_t n, int act)
    void dlfr_bias_act_f32(float *Y, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ldy,
                           const float *b, int act)
    void dlfr_bias_act_f64(double *Y, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ldy,
                           const double *b, int act)
    void dlfr_gemm_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *A,
                       Py_ssize_t lda, const float *B, Py_ssize_t ldb, const float *bias,
                       float *C, Py_ssize_t ldc)
    void dlfr_gemm_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *A,
                       Py_ssize_t lda, const double *B, Py_ssize_t ldb, const double *bias,
                       double *C, Py_ssize_t ldc)
    void dlfr_gemm_stream_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *A,
                              Py_ssize_t lda, const float *B, Py_ssize_t ldb,
                              const float *bias, float *C, Py_ssize_t ldc)
    void dlfr_gemm_stream_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *A,
                              Py_ssize_t lda, const double *B, Py_ssize_t ldb,
                              const double *bias, double *C, Py_ssize_t ldc)
    void dlfr_gemm_update_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *A,
                              Py_ssize_t lda, const float *B, Py_ssize_t ldb, float *C,
                              Py_ssize_t ldc, float alpha, const dlfr_prefetch *ahead)
    void dlfr_gemm_update_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *A,
                              Py_ssize_t lda, const double *B, Py_ssize_t ldb, double *C,
                              Py_ssize_t ldc, double alpha, const dlfr_prefetch *ahead)
    void dlfr_act_backward_f32(float *delta, const float *a, Py_ssize_t rows,
                               Py_ssize_t cols, Py_ssize_t ld, int act)
    void dlfr_act_backward_f64(double *delta, const double *a, Py_ssize_t rows,
                               Py_ssize_t cols, Py_ssize_t ld, int act)
    double dlfr_output_delta_f32(const float *A, const float *Y, const float *w, float *D,
                                 Py_ssize_t rows, Py_ssize_t n_out, Py_ssize_t ld, int act,
                                 int loss, double *hits)
    double dlfr_output_delta_f64(const double *A, const double *Y, const double *w, double *D,
                                 Py_ssize_t rows, Py_ssize_t n_out, Py_ssize_t ld, int act,
                                 int loss, double *hits)
    void dlfr_bias_update_f32(float *b, const float *D, Py_ssize_t rows, Py_ssize_t cols,
                              Py_ssize_t ld, float alpha)
    void dlfr_bias_update_f64(double *b, const double *D, Py_ssize_t rows, Py_ssize_t cols,
                              Py_ssize_t ld, double alpha)
    void dlfr_optimizer_step_f32(float *p, float *grad, float *s1, float *s2, Py_ssize_t n,
                                 const dlfr_step *step)
    void dlfr_optimizer_step_f64(double *p, double *grad, double *s1, double *s2, Py_ssize_t n,
                                 const dlfr_step *step)
    double dlfr_sum_squares_f32(const float *x, const float *y, double c, Py_ssize_t n)
    double dlfr_sum_squares_f64(const double *x, const double *y, double c, Py_ssize_t n)
