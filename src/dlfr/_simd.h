/* dlfr's C kernels: vectorised activations and the register-blocked GEMM.
 *
 * Every function here exists in one generic build and, with GCC or Clang, in
 * AVX2 and AVX-512 builds of the same source on x86-64 (_simd_impl.h) or a
 * NEON build on aarch64 (ASIMD is part of ARMv8-A, so no CPU check). The
 * entry points below call through a table that dlfr_simd_select() fills once,
 * from what the CPU supports (or a lower level the caller asks for), so one
 * portable wheel still uses the wide vector units where they exist.
 *
 * Layout shared by inference and training: a layer's weights are row-major
 * (n_in, ld) with ld = n_out rounded up to a multiple of DLFR_PANEL and the
 * padding columns zero; activations and deltas are row-major with the same
 * padded row stride. The GEMM walks the output in panels of DLFR_PANEL
 * columns (on AVX-512 also in wider blocks, see dlfr_gemm_wide) and blocks
 * of rows held in vector registers.
 */
#ifndef DLFR_SIMD_H
#define DLFR_SIMD_H

#include <stddef.h>
#include <stdint.h>

#define DLFR_PANEL 16
/* Bytes per cache line: buffers start on one, prefetches go a line at a time. */
#define DLFR_CACHE_LINE 64

enum dlfr_activation {
    DLFR_IDENTITY = 0,
    DLFR_SIGMOID = 1,
    DLFR_TANH = 2,
    DLFR_RELU = 3,
    DLFR_STEP = 4,
    DLFR_SOFTMAX = 5,
    DLFR_LEAKY_RELU = 6, /* z < 0: DLFR_LEAKY_RELU_SLOPE z; else z (PyTorch's default) */
    DLFR_ELU = 7         /* z < 0: e^z - 1; else z (alpha 1) */
};
#define DLFR_ACTIVATION_LAST DLFR_ELU
#define DLFR_LEAKY_RELU_SLOPE 0.01

enum dlfr_loss { DLFR_MSE = 0, DLFR_CROSS_ENTROPY = 1 };

/* The optimizers' update rules (struct dlfr_step's rule). */
enum dlfr_rule { DLFR_RULE_SGD = 0, DLFR_RULE_MOMENTUM = 1, DLFR_RULE_NESTEROV = 2, DLFR_RULE_ADAM = 3 };

/* One optimizer step's coefficients, for optimizer_step (scikit-learn's
 * formulas, sklearn/neural_network/_stochastic_optimizers.py). The gradient
 * a step takes is g = grad_scale * (grad + decay * p): grad_scale clips the
 * batch's gradient to a global norm (1: no clipping), decay is L2's lambda/n
 * (0 for biases). Then, by rule:
 *   SGD       p -= lr g
 *   MOMENTUM  v = momentum v - lr g; p += v                    (v: s1)
 *   NESTEROV  v = momentum v - lr g; p += momentum v - lr g    (v: s1)
 *   ADAM      m = beta_1 m + (1 - beta_1) g; s = beta_2 s + (1 - beta_2) g^2;
 *             p -= lr m / (sqrt(s) + epsilon)                  (m: s1, s: s2)
 * where Adam's lr is the bias-corrected step lr_0 sqrt(1 - beta_2^t) /
 * (1 - beta_1^t) of step t. The coefficients are rounded to the kernel's
 * dtype once, as NumPy rounds a Python float meeting a float32 array. */
struct dlfr_step {
    int rule;
    double lr, momentum, beta_1, beta_2, epsilon, grad_scale, decay;
};

/* Rows a kernel should bring toward the cache while it computes (the next
 * mini-batch's inputs, so that its forward pass does not wait on memory):
 * row r starts at base + (index ? index[r] : r) * row_bytes. */
struct dlfr_prefetch {
    const char *base;
    const int64_t *index;
    ptrdiff_t rows, row_bytes;
};

/* The levels form a family per architecture, ranked: x86-64 generic < avx2 <
 * avx512, aarch64 generic < neon (generic belongs to every family). */
enum dlfr_simd_level { DLFR_GENERIC = 0, DLFR_AVX2 = 1, DLFR_AVX512 = 2, DLFR_NEON = 3 };
#define DLFR_SIMD_LAST DLFR_NEON

/* Highest level this build and this CPU support. */
int dlfr_simd_supported(void);
/* Select the best level this build and CPU support that is not above `level`
 * in level's own family: min(level, supported) within a family; a level of
 * another architecture's family (avx2 on aarch64, neon on x86-64) gives
 * generic, the only level common to both; a negative level gives generic and
 * one above DLFR_SIMD_LAST the best supported. Returns the level now in use. */
int dlfr_simd_select(int level);
int dlfr_simd_level(void);
const char *dlfr_simd_name(int level);
/* Nonzero when the level in use has the wide-layer GEMM kernel (AVX-512),
 * which outruns BLAS at any width; elsewhere layers wider than a few panels
 * are left to BLAS. */
int dlfr_gemm_wide(void);

/* Memory whose first byte starts a cache line (64 bytes), so that no panel
 * row of an activation or weight buffer straddles two lines; NULL when out
 * of memory. Free with dlfr_aligned_free (NULL is fine). */
void *dlfr_aligned_alloc(size_t bytes);
void dlfr_aligned_free(void *p);

/* The kernel interface, written once: DLFR_KERNELS(X, REAL, S) calls
 *     X(REAL, S, return type, name, (parameter list), (argument list))
 * for every kernel, and everything per kernel expands from it: the entry
 * points dlfr_<name>_<S> declared below, each level's prototypes
 * (_simd_impl.h, so a definition that disagrees fails to compile), the
 * dispatch table's fields, its rows and the entry points' bodies (_simd.c).
 * A new kernel is one line here, its definition in _simd_impl.h and its
 * declarations in _simd.pxd (Cython cannot read this macro). The return type
 * is one token with a DLFR_RETURN_<type> below (void, double). */
#define DLFR_KERNELS(X, REAL, S)                                                   \
    X(REAL, S, void, sigmoid, (const REAL *z, REAL *out, ptrdiff_t n), (z, out, n)) \
    X(REAL, S, void, sigmoid_prime, (const REAL *z, REAL *out, ptrdiff_t n),       \
      (z, out, n))                                                                 \
    X(REAL, S, void, sigmoid_backward,                                             \
      (const REAL *grad, const REAL *a, REAL *out, ptrdiff_t n), (grad, a, out, n)) \
    X(REAL, S, void, activate, (const REAL *z, REAL *out, ptrdiff_t n, int act),   \
      (z, out, n, act))                                                            \
    /* Y[r, :cols] = act(Y[r, :cols] + b) for each row; softmax is per row. */     \
    X(REAL, S, void, bias_act,                                                     \
      (REAL *Y, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ldy, const REAL *b, int act), \
      (Y, rows, cols, ldy, b, act))                                                \
    /* C[i, :n] = bias + sum_p A[i*lda + p] * B[p*ldb + :n]: C = A @ B + bias,  \
     * the same arithmetic for a row whatever m (batch-invariant). B's rows  \
     * and bias (may be NULL) are read in whole DLFR_PANEL-column panels, so  \
     * they must hold n rounded up to one (zero padding); C gets n columns.   */ \
    X(REAL, S, void, gemm,                                                         \
      (ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,        \
       const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc),    \
      (m, n, k, A, lda, B, ldb, bias, C, ldc))                                     \
    /* gemm, the same sums, for A streaming from memory (a large batch): it    \
     * also prefetches the rows after each block (past row m too: the caller's \
     * next rows), which costs a few per cent when A is already in cache.    */ \
    X(REAL, S, void, gemm_stream,                                                  \
      (ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,        \
       const REAL *B, ptrdiff_t ldb, const REAL *bias, REAL *C, ptrdiff_t ldc),    \
      (m, n, k, A, lda, B, ldb, bias, C, ldc))                                     \
    /* C[i, :n] += alpha * sum_p A[p*lda + i] * B[p*ldb + :n]: C += alpha A^T B, \
     * A being (k, m) (the training update: n, ldb and ldc whole panels); ahead \
     * (may be NULL) is prefetched a little per block.                        */  \
    X(REAL, S, void, gemm_update,                                                  \
      (ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,        \
       const REAL *B, ptrdiff_t ldb, REAL *C, ptrdiff_t ldc, REAL alpha,           \
       const struct dlfr_prefetch *ahead),                                         \
      (m, n, k, A, lda, B, ldb, C, ldc, alpha, ahead))                             \
    /* delta[r, :cols] *= f'(.) of the layer's output a (row stride ld). */       \
    X(REAL, S, void, act_backward,                                                 \
      (REAL *delta, const REAL *a, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, int act), \
      (delta, a, rows, cols, ld, act))                                             \
    /* Output layer of a training step: D[r, :n_out] = w[r] dC/dz from outputs \
     * A (stride ld), targets Y (stride n_out) and row weights w (NULL: all 1); \
     * returns the cost summed over the rows, each row's times w[r], and adds  \
     * to *hits the weights of the rows whose label (first argmax, or a >= 0.5 \
     * for one output) is the target's. D's padding columns are left as they  \
     * are.                                                                    */ \
    X(REAL, S, double, output_delta,                                               \
      (const REAL *A, const REAL *Y, const REAL *w, REAL *D, ptrdiff_t rows,       \
       ptrdiff_t n_out, ptrdiff_t ld, int act, int loss, double *hits),            \
      (A, Y, w, D, rows, n_out, ld, act, loss, hits))                              \
    /* b[:cols] += alpha * (column sums of D[:rows, :cols], row stride ld). */     \
    X(REAL, S, void, bias_update,                                                  \
      (REAL *b, const REAL *D, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, REAL alpha), \
      (b, D, rows, cols, ld, alpha))                                               \
    /* One optimizer step (struct dlfr_step) on the n parameters p from their  \
     * gradient grad, which it leaves zeroed for the next batch to accumulate  \
     * into; s1, s2: the rule's state (NULL where the rule keeps none).       */ \
    X(REAL, S, void, optimizer_step,                                               \
      (REAL *p, REAL *grad, REAL *s1, REAL *s2, ptrdiff_t n,                       \
       const struct dlfr_step *step),                                              \
      (p, grad, s1, s2, n, step))                                                  \
    /* The sum over i < n of (x[i] + c y[i])^2, in double (y may be NULL: x[i]^2). */ \
    X(REAL, S, double, sum_squares, (const REAL *x, const REAL *y, double c, ptrdiff_t n), \
      (x, y, c, n))

/* `return` before a call whose value the kernel returns (a void function may
 * not return an expression in C) */
#define DLFR_RETURN_void
#define DLFR_RETURN_double return

#define DLFR_DECLARE(REAL, S, RET, NAME, PARAMS, ARGS) RET dlfr_##NAME##_##S PARAMS;
DLFR_KERNELS(DLFR_DECLARE, float, f32)
DLFR_KERNELS(DLFR_DECLARE, double, f64)

#endif
