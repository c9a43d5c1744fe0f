/* Every kernel of every SIMD level this CPU has, against the generic level.
 *
 * Built together with src/dlfr/_simd.c (no Python, no OpenMP runtime), e.g.
 *   cc -Isrc/dlfr -O3 -std=c11 -ffp-contract=fast -fno-trapping-math \
 *      tests/c/simd_check.c src/dlfr/_simd.c -lm -o simd_check && ./simd_check
 * natively (tests/test_simd_c.py) and cross-compiled for aarch64 and run
 * under qemu-aarch64 (.ci/run), so the Arm NEON level is checked on a
 * machine without an Arm CPU.
 *
 * For each level dlfr_simd_select() grants (generic too) and each dtype, every
 * kernel runs on the same inputs as under the generic level and the outputs
 * must agree: elementwise kernels to a few ulp, sums to a bound that grows
 * with sqrt(terms) times the sum of the terms' magnitudes (the levels contract
 * a*b+c into FMAs and sum in different orders). NaN must stay NaN and the
 * infinities must match exactly; no kernel may write past the columns it
 * owns (guard values after each row and after the buffer). Prints a summary
 * per kernel and "N passed, M failed"; exits 1 on any failure.
 */
#include "_simd.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 12345.678
#define MAX_REPORTS 20

/* ---- tallies per kernel ---- */

static const char *const KERNELS[] = {"sigmoid", "sigmoid_prime", "sigmoid_backward",
                                      "activate", "bias_act", "gemm", "gemm_stream", "gemm_update",
                                      "act_backward", "output_delta", "bias_update",
                                      "optimizer_step", "sum_squares"};
enum { N_KERNELS = sizeof KERNELS / sizeof KERNELS[0] };
static long passed[N_KERNELS], failed[N_KERNELS], reports;

static int kernel_index(const char *name)
{
    for (int i = 0; i < N_KERNELS; i++)
        if (strcmp(KERNELS[i], name) == 0) return i;
    abort();
}

/* One case's verdict; the first failures are explained on stderr. */
static void verdict(const char *kernel, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *current_level = "?", *current_dtype = "?";
static void verdict(const char *kernel, int ok, const char *fmt, ...)
{
    int k = kernel_index(kernel);
    if (ok) {
        passed[k]++;
        return;
    }
    failed[k]++;
    if (reports++ < MAX_REPORTS) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL %s %s %s: ", current_level, current_dtype, kernel);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
}

/* ---- buffers of either dtype, read and written as double ---- */

static int f64; /* the dtype under test: 0 float32, 1 float64 */
static size_t esize(void) { return f64 ? sizeof(double) : sizeof(float); }
static void *alloc(ptrdiff_t n)
{
    void *p = dlfr_aligned_alloc((size_t)(n > 0 ? n : 1) * esize());
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}
static double get(const void *p, ptrdiff_t i)
{
    return f64 ? ((const double *)p)[i] : ((const float *)p)[i];
}
static void set(void *p, ptrdiff_t i, double v)
{
    if (f64)
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}
static void *copy(const void *src, ptrdiff_t n)
{
    void *p = alloc(n);
    memcpy(p, src, (size_t)n * esize());
    return p;
}

/* xorshift: the same inputs on every run and platform */
static uint64_t rng_state = 88172645463325252ull;
static double uniform(double lo, double hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (double)(rng_state >> 11) / 9007199254740992.0;
}
static void fill(void *p, ptrdiff_t n, double lo, double hi)
{
    for (ptrdiff_t i = 0; i < n; i++) set(p, i, uniform(lo, hi));
}

/* Relative tolerances: the sigmoid (tests/test_dispatch.py's), other
 * elementwise kernels (a few ulp), and per term of a sum. */
static double tol_sigmoid(void) { return f64 ? 1e-15 : 4e-7; }
static double tol_elem(void) { return f64 ? 4e-15 : 1e-6; }
static double tol_sum(void) { return f64 ? 1e-14 : 2e-6; }

/* x agrees with reference r to within tol (NaN with NaN, inf with the same inf). */
static int agree(double x, double r, double tol)
{
    if (x == r) return 1;
    if (isnan(r) || isnan(x)) return isnan(r) && isnan(x);
    if (isinf(r) || isinf(x)) return x == r;
    return fabs(x - r) <= tol;
}

/* ---- running one kernel under a level ---- */

static void select_level(int level)
{
    if (dlfr_simd_select(level) != level) {
        fprintf(stderr, "level %d not available\n", level);
        exit(2);
    }
}

/* ---- elementwise kernels ---- */

static const double SPECIALS[] = {0.0, -0.0, 1e-30, -1e-30, 1e-40, -1e-40, 1.0, -1.0, 20.0,
                                  -20.0, 88.0, -88.0, 104.0, -104.0, 105.0, -105.0, 709.0,
                                  -709.0, 745.0, -745.0, 746.0, -746.0, 800.0, -800.0, 1e30,
                                  -1e30, INFINITY, -INFINITY, NAN};
enum { N_SPECIALS = sizeof SPECIALS / sizeof SPECIALS[0] };
static const ptrdiff_t LENGTHS[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63,
                                    64, 65, 100, 1000, 20011};
enum { N_LENGTHS = sizeof LENGTHS / sizeof LENGTHS[0] };

/* n inputs: a sweep over [-120, 120] with the special values spread among them */
static void *elementwise_input(ptrdiff_t n)
{
    void *z = alloc(n);
    for (ptrdiff_t i = 0; i < n; i++)
        set(z, i, n > 1 ? -120.0 + 240.0 * (double)i / (double)(n - 1) : 0.5);
    for (int s = 0; s < N_SPECIALS && s < n; s++)
        set(z, (ptrdiff_t)((unsigned)s * 7919u % (unsigned)n), SPECIALS[s]);
    return z;
}

/* which: 0 sigmoid, 1 sigmoid_prime, 2 activate(act) */
static void run_unary(int which, const void *z, void *out, ptrdiff_t n, int act)
{
    if (which == 0)
        f64 ? dlfr_sigmoid_f64(z, out, n) : dlfr_sigmoid_f32(z, out, n);
    else if (which == 1)
        f64 ? dlfr_sigmoid_prime_f64(z, out, n) : dlfr_sigmoid_prime_f32(z, out, n);
    else
        f64 ? dlfr_activate_f64(z, out, n, act) : dlfr_activate_f32(z, out, n, act);
}

/* compare out[:n] with ref[:n] elementwise; out[n:n+pad] must still be GUARD */
static int compare(const void *out, const void *ref, ptrdiff_t n, ptrdiff_t pad, double rtol,
                   double atol, ptrdiff_t *where)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        double r = get(ref, i);
        if (!agree(get(out, i), r, rtol * fabs(r) + atol)) {
            *where = i;
            return 0;
        }
    }
    for (ptrdiff_t i = n; i < n + pad; i++)
        if (get(out, i) != get(ref, i)) {
            *where = i;
            return 0;
        }
    return 1;
}

/* ELU and leaky ReLU at every level against their definitions, in double
 * with libm's expm1 (so the aarch64 build is checked against something else
 * than itself too): z itself for z >= 0, +inf and NaN; -1 at -inf; e^z - 1
 * or the slope times z below 0, to the sigmoid's tolerance. */
static void check_against_libm(const char *kernel, int act, const void *z, const void *out,
                               ptrdiff_t n)
{
    const double atol = f64 ? 1e-300 : 1e-38;
    for (ptrdiff_t i = 0; i < n; i++) {
        double x = get(z, i), y = get(out, i), want;
        if (isnan(x) || x >= 0)
            want = x;
        else if (act == DLFR_ELU)
            want = isinf(x) ? -1.0 : expm1(x);
        else /* the product in the dtype: one rounding */
            want = f64 ? x * DLFR_LEAKY_RELU_SLOPE
                       : (double)((float)x * (float)DLFR_LEAKY_RELU_SLOPE);
        double tol = act == DLFR_ELU ? tol_sigmoid() * fabs(want) + atol : 0.0;
        if (!agree(y, want, tol) || (x < 0 && act == DLFR_ELU && !(y >= -1 && y <= 0))) {
            verdict(kernel, 0, "act %d (%.17g) = %.17g, expected %.17g", act, x, y, want);
            return;
        }
    }
}

static void check_unary(int level)
{
    static const char *const names[] = {"sigmoid", "sigmoid_prime", "activate"};
    for (int which = 0; which < 3; which++)
        for (int act = 0; act <= (which == 2 ? DLFR_ACTIVATION_LAST : 0); act++)
            for (int l = 0; l < N_LENGTHS; l++) {
                ptrdiff_t n = LENGTHS[l], pad = 9;
                void *z = elementwise_input(n);
                void *ref = alloc(n + pad), *out = alloc(n + pad);
                for (ptrdiff_t i = 0; i < n + pad; i++) set(ref, i, GUARD), set(out, i, GUARD);
                select_level(DLFR_GENERIC);
                run_unary(which, z, ref, n, act);
                select_level(level);
                run_unary(which, z, out, n, act);
                ptrdiff_t at = -1;
                /* tiny results (the sigmoid's tail, denormals) to an absolute bound */
                double atol = f64 ? 1e-300 : 1e-38;
                int sigmoid = which == 0 || (which == 2 && act == DLFR_SIGMOID);
                int ok = compare(out, ref, n, pad, sigmoid ? tol_sigmoid() : tol_elem(), atol, &at);
                verdict(names[which], ok, "act %d n %td: index %td: %.17g (input %.17g), generic %.17g",
                        act, n, at, ok ? 0.0 : get(out, at), at < n && !ok ? get(z, at) : 0.0,
                        ok ? 0.0 : get(ref, at));
                /* in place, as bias_act runs it: the same values */
                if (which == 2 && n > 0) {
                    void *inplace = copy(z, n);
                    run_unary(which, inplace, inplace, n, act);
                    ok = compare(inplace, out, n, 0, 0.0, 0.0, &at);
                    verdict(names[which], ok, "act %d n %td in place: index %td differs", act, n,
                            at);
                    dlfr_aligned_free(inplace);
                }
                /* the sigmoid's exact points, whatever the level */
                if (sigmoid)
                    for (ptrdiff_t i = 0; i < n; i++) {
                        double x = get(z, i), s = get(out, i);
                        int exact = isnan(x)   ? isnan(s)
                                    : x == 0   ? s == 0.5
                                    : x >= 120 ? s == 1.0
                                    : x <= -1e30 ? (s >= 0 && s < 1e-40)
                                    : (s >= 0 && s <= 1);
                        if (!exact) {
                            verdict(names[which], 0, "sigmoid(%.17g) = %.17g", x, s);
                            break;
                        }
                    }
                if (which == 2 && (act == DLFR_ELU || act == DLFR_LEAKY_RELU))
                    check_against_libm(names[which], act, z, out, n);
                dlfr_aligned_free(z);
                dlfr_aligned_free(ref);
                dlfr_aligned_free(out);
            }
}

static void check_sigmoid_backward(int level)
{
    for (int l = 0; l < N_LENGTHS; l++) {
        ptrdiff_t n = LENGTHS[l], pad = 5;
        void *g = alloc(n), *a = alloc(n), *ref = alloc(n + pad), *out = alloc(n + pad);
        fill(g, n, -3, 3);
        fill(a, n, 0, 1);
        if (n > 3) set(g, 1, NAN), set(a, 2, INFINITY), set(g, 3, INFINITY);
        for (ptrdiff_t i = 0; i < n + pad; i++) set(ref, i, GUARD), set(out, i, GUARD);
        select_level(DLFR_GENERIC);
        f64 ? dlfr_sigmoid_backward_f64(g, a, ref, n) : dlfr_sigmoid_backward_f32(g, a, ref, n);
        select_level(level);
        f64 ? dlfr_sigmoid_backward_f64(g, a, out, n) : dlfr_sigmoid_backward_f32(g, a, out, n);
        ptrdiff_t at = -1;
        int ok = compare(out, ref, n, pad, tol_elem(), 0.0, &at);
        verdict("sigmoid_backward", ok, "n %td: index %td", n, at);
        dlfr_aligned_free(g), dlfr_aligned_free(a), dlfr_aligned_free(ref), dlfr_aligned_free(out);
    }
}

/* ---- row-wise kernels: bias_act, act_backward, bias_update, output_delta ---- */

static const ptrdiff_t ROWS[] = {1, 2, 3, 5, 8, 13};
enum { N_ROWS = sizeof ROWS / sizeof ROWS[0] };
static const ptrdiff_t COLS[] = {1, 2, 3, 4, 5, 7, 8, 9, 10, 15, 16, 17, 20, 31, 33, 64, 65, 100};
enum { N_COLS = sizeof COLS / sizeof COLS[0] };

static ptrdiff_t round_up(ptrdiff_t n) { return (n + DLFR_PANEL - 1) / DLFR_PANEL * DLFR_PANEL; }

/* the row strides a case tries: tight, whole panels, and odd */
static ptrdiff_t stride(ptrdiff_t cols, int variant)
{
    return variant == 0 ? cols : variant == 1 ? round_up(cols) : cols + 5;
}

/* compare rows x cols of out with ref (stride ld); all of out's other
 * elements (padding, after the last row) must equal ref's too */
static int compare_rows(const void *out, const void *ref, ptrdiff_t rows, ptrdiff_t cols,
                        ptrdiff_t ld, ptrdiff_t total, const double *tols, ptrdiff_t *where)
{
    for (ptrdiff_t i = 0; i < total; i++) {
        ptrdiff_t r = i / ld, c = i % ld;
        double x = get(out, i), y = get(ref, i);
        if (r < rows && c < cols) {
            if (!agree(x, y, tols ? tols[r * cols + c] : tol_elem() * fabs(y))) {
                *where = i;
                return 0;
            }
        } else if (!(x == y || (isnan(x) && isnan(y)))) {
            *where = i;
            return 0;
        }
    }
    return 1;
}

static void check_bias_act(int level)
{
    for (int ri = 0; ri < N_ROWS; ri++)
        for (int ci = 0; ci < N_COLS; ci++)
            for (int variant = 0; variant < 3; variant++)
                for (int act = 0; act <= DLFR_ACTIVATION_LAST; act++)
                    for (int with_bias = 0; with_bias < 2; with_bias++) {
                        ptrdiff_t rows = ROWS[ri], cols = COLS[ci], ld = stride(cols, variant);
                        ptrdiff_t total = rows * ld + 7;
                        void *Y = alloc(total), *b = alloc(cols);
                        for (ptrdiff_t i = 0; i < total; i++) set(Y, i, GUARD);
                        for (ptrdiff_t r = 0; r < rows; r++)
                            for (ptrdiff_t c = 0; c < cols; c++)
                                set(Y, r * ld + c, uniform(-30, 30));
                        fill(b, cols, -2, 2);
                        /* specials: a NaN in row 1, +inf twice in row 2, -inf in row 0 */
                        if (rows > 2 && cols > 2) {
                            set(Y, 0 * ld + cols - 1, -INFINITY);
                            set(Y, 1 * ld + cols / 2, NAN);
                            set(Y, 2 * ld + 0, INFINITY);
                            set(Y, 2 * ld + cols - 1, INFINITY);
                        }
                        void *ref = copy(Y, total), *out = copy(Y, total);
                        select_level(DLFR_GENERIC);
                        f64 ? dlfr_bias_act_f64(ref, rows, cols, ld, with_bias ? b : NULL, act)
                            : dlfr_bias_act_f32(ref, rows, cols, ld, with_bias ? b : NULL, act);
                        select_level(level);
                        f64 ? dlfr_bias_act_f64(out, rows, cols, ld, with_bias ? b : NULL, act)
                            : dlfr_bias_act_f32(out, rows, cols, ld, with_bias ? b : NULL, act);
                        ptrdiff_t at = -1;
                        /* softmax sums a row: its own ulp scale */
                        int ok = compare_rows(out, ref, rows, cols, ld, total, NULL, &at);
                        if (!ok && act == DLFR_SOFTMAX) {
                            double *tols = malloc(sizeof(double) * (size_t)(rows * cols));
                            for (ptrdiff_t i = 0; i < rows * cols; i++)
                                tols[i] = tol_sum() * sqrt((double)cols) *
                                          fabs(get(ref, i / cols * ld + i % cols));
                            ok = compare_rows(out, ref, rows, cols, ld, total, tols, &at);
                            free(tols);
                        }
                        verdict("bias_act", ok, "rows %td cols %td ld %td act %d bias %d: index %td: %.17g, generic %.17g",
                                rows, cols, ld, act, with_bias, at, ok ? 0.0 : get(out, at),
                                ok ? 0.0 : get(ref, at));
                        dlfr_aligned_free(Y), dlfr_aligned_free(b);
                        dlfr_aligned_free(ref), dlfr_aligned_free(out);
                    }
}

static void check_act_backward(int level)
{
    for (int ri = 0; ri < N_ROWS; ri++)
        for (int ci = 0; ci < N_COLS; ci++)
            for (int variant = 0; variant < 3; variant++)
                for (int act = 0; act <= DLFR_ACTIVATION_LAST; act++) {
                    ptrdiff_t rows = ROWS[ri], cols = COLS[ci], ld = stride(cols, variant);
                    ptrdiff_t total = rows * ld + 3;
                    void *D = alloc(total), *A = alloc(total);
                    for (ptrdiff_t i = 0; i < total; i++) set(D, i, GUARD), set(A, i, GUARD);
                    for (ptrdiff_t r = 0; r < rows; r++)
                        for (ptrdiff_t c = 0; c < cols; c++) {
                            set(D, r * ld + c, uniform(-2, 2));
                            /* outputs the activation can give */
                            set(A, r * ld + c, act == DLFR_SIGMOID ? uniform(0, 1)
                                               : act == DLFR_TANH  ? uniform(-1, 1)
                                               : act == DLFR_ELU   ? uniform(-1, 3)
                                                                   : uniform(-3, 3));
                        }
                    if (cols > 1) set(D, cols - 1, NAN);
                    void *ref = copy(D, total), *out = copy(D, total);
                    select_level(DLFR_GENERIC);
                    f64 ? dlfr_act_backward_f64(ref, A, rows, cols, ld, act)
                        : dlfr_act_backward_f32(ref, A, rows, cols, ld, act);
                    select_level(level);
                    f64 ? dlfr_act_backward_f64(out, A, rows, cols, ld, act)
                        : dlfr_act_backward_f32(out, A, rows, cols, ld, act);
                    /* f'(a) as 1 - a a or a (1 - a): an FMA where a level has one,
                     * so to the terms' magnitude, not the (cancelling) result's */
                    double *tols = malloc(sizeof(double) * (size_t)(rows * cols));
                    for (ptrdiff_t r = 0; r < rows; r++)
                        for (ptrdiff_t c = 0; c < cols; c++) {
                            double a = fabs(get(A, r * ld + c));
                            tols[r * cols + c] = tol_elem() * fabs(get(D, r * ld + c)) * (1 + a + a * a);
                        }
                    ptrdiff_t at = -1;
                    int ok = compare_rows(out, ref, rows, cols, ld, total, tols, &at);
                    free(tols);
                    verdict("act_backward", ok, "rows %td cols %td ld %td act %d: index %td", rows,
                            cols, ld, act, at);
                    dlfr_aligned_free(D), dlfr_aligned_free(A);
                    dlfr_aligned_free(ref), dlfr_aligned_free(out);
                }
}

static void check_bias_update(int level)
{
    static const ptrdiff_t rows_list[] = {0, 1, 2, 3, 7, 10, 64, 257};
    static const ptrdiff_t cols_list[] = {1, 3, 10, 16, 17, 63, 64, 65, 128, 129, 200};
    for (int ri = 0; ri < 8; ri++)
        for (int ci = 0; ci < 11; ci++)
            for (int variant = 0; variant < 3; variant++) {
                ptrdiff_t rows = rows_list[ri], cols = cols_list[ci], ld = stride(cols, variant);
                double alpha = -0.37;
                void *D = alloc(rows * ld + 1), *b = alloc(cols + 4);
                fill(D, rows * ld + 1, -1, 1);
                fill(b, cols, -1, 1);
                for (int i = 0; i < 4; i++) set(b, cols + i, GUARD);
                if (rows > 2 && cols > 2) set(D, 2 * ld + 1, NAN);
                void *ref = copy(b, cols + 4), *out = copy(b, cols + 4);
                select_level(DLFR_GENERIC);
                f64 ? dlfr_bias_update_f64(ref, D, rows, cols, ld, alpha)
                    : dlfr_bias_update_f32(ref, D, rows, cols, ld, (float)alpha);
                select_level(level);
                f64 ? dlfr_bias_update_f64(out, D, rows, cols, ld, alpha)
                    : dlfr_bias_update_f32(out, D, rows, cols, ld, (float)alpha);
                int ok = 1;
                ptrdiff_t at = -1;
                for (ptrdiff_t c = 0; c < cols + 4 && ok; c++) {
                    double magnitude = fabs(get(b, c));
                    for (ptrdiff_t r = 0; r < rows && c < cols; r++)
                        magnitude += fabs(alpha * get(D, r * ld + c));
                    double tol = c < cols ? tol_sum() * sqrt((double)rows + 1) * magnitude : 0;
                    if (!agree(get(out, c), get(ref, c), tol)) ok = 0, at = c;
                }
                verdict("bias_update", ok, "rows %td cols %td ld %td: column %td", rows, cols, ld,
                        at);
                dlfr_aligned_free(D), dlfr_aligned_free(b);
                dlfr_aligned_free(ref), dlfr_aligned_free(out);
            }
}

/* output_delta on one weight vector (NULL: unweighted); returns the cost */
static double run_output_delta(const void *A, const void *Y, const void *w, void *D, ptrdiff_t rows,
                               ptrdiff_t n_out, ptrdiff_t ld, int act, int loss, double *hits)
{
    return f64 ? dlfr_output_delta_f64(A, Y, w, D, rows, n_out, ld, act, loss, hits)
               : dlfr_output_delta_f32(A, Y, w, D, rows, n_out, ld, act, loss, hits);
}

/* Row weights for a case: zeros, whole numbers and binary fractions, so that
 * the weighted hits are exact sums. */
static const double WEIGHTS[] = {1.0, 0.0, 2.0, 0.5, 3.0, 0.25, 1.0, 0.0, 4.0};
enum { N_WEIGHTS = sizeof WEIGHTS / sizeof WEIGHTS[0] };

/* With weights, the level's own unweighted rows scaled: D[r] = w[r] * D1[r],
 * cost = sum of w[r] * cost1[r], hits = sum of w[r] * hit1[r]. */
static int weighted_as_scaled(const void *A, const void *Y, const void *w, const void *D,
                              double cost, double hits, ptrdiff_t rows, ptrdiff_t n_out,
                              ptrdiff_t ld, int act, int loss)
{
    int ok = 1;
    double cost_sum = 0, cost_tol = 0, hits_sum = 0;
    void *D1 = alloc(ld);
    for (ptrdiff_t r = 0; r < rows; r++) {
        double wr = get(w, r), hit = 0;
        double row_cost = run_output_delta((const char *)A + r * ld * esize(),
                                           (const char *)Y + r * n_out * esize(), NULL, D1, 1,
                                           n_out, ld, act, loss, &hit);
        cost_sum += wr * row_cost;
        cost_tol += fabs(wr * row_cost);
        hits_sum += wr * hit;
        for (ptrdiff_t c = 0; c < n_out; c++) {
            double expected = wr * get(D1, c);
            ok &= agree(get(D, r * ld + c), expected, 2 * tol_elem() * fabs(expected));
        }
    }
    dlfr_aligned_free(D1);
    /* the level sums the same terms, each rounded once more (w * row) */
    return ok && agree(cost, cost_sum, 1e-13 * sqrt((double)rows) * cost_tol) && hits == hits_sum;
}

static void check_output_delta_case(int level, ptrdiff_t rows, ptrdiff_t n_out, ptrdiff_t ld,
                                    int act, int loss, int weighted, int weight_shift)
{
    ptrdiff_t total = rows * ld + 2;
    void *A = alloc(total), *Y = alloc(rows * n_out), *D = alloc(total);
    void *w = weighted ? alloc(rows) : NULL;
    for (ptrdiff_t i = 0; i < total; i++) set(A, i, 0.25), set(D, i, GUARD);
    for (ptrdiff_t r = 0; r < rows; r++) {
        ptrdiff_t label = (ptrdiff_t)uniform(0, (double)n_out);
        for (ptrdiff_t c = 0; c < n_out; c++) {
            set(A, r * ld + c, uniform(0.001, 0.999));
            set(Y, r * n_out + c, n_out == 1 ? (uniform(0, 1) > 0.5) : (c == label));
        }
        if (w) set(w, r, WEIGHTS[(r + weight_shift) % N_WEIGHTS]);
    }
    void *ref = copy(D, total), *out = copy(D, total);
    double hits_ref = 3, hits_out = 3;
    select_level(DLFR_GENERIC);
    double cost_ref = run_output_delta(A, Y, w, ref, rows, n_out, ld, act, loss, &hits_ref);
    select_level(level);
    double cost_out = run_output_delta(A, Y, w, out, rows, n_out, ld, act, loss, &hits_out);
    /* D = w (a - y) f'(a) under MSE: as in check_act_backward */
    double *tols = malloc(sizeof(double) * (size_t)(rows * n_out));
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t c = 0; c < n_out; c++) {
            double a = fabs(get(A, r * ld + c)), y = fabs(get(Y, r * n_out + c));
            tols[r * n_out + c] = tol_elem() * (a + y) * (1 + a + a * a) * (w ? get(w, r) : 1.0);
        }
    ptrdiff_t at = -1;
    int ok = compare_rows(out, ref, rows, n_out, ld, total, tols, &at);
    free(tols);
    /* the cost is summed in double from the same D: a double's ulps */
    double tol = 1e-13 * sqrt((double)(rows * n_out)) * fabs(cost_ref) +
                 (f64 ? 0 : 1e-6 * fabs(cost_ref));
    int cost_ok = agree(cost_out, cost_ref, tol);
    int scaled_ok = !w || weighted_as_scaled(A, Y, w, out, cost_out, hits_out - 3, rows, n_out,
                                             ld, act, loss);
    verdict("output_delta", ok && cost_ok && hits_out == hits_ref && scaled_ok,
            "rows %td n_out %td ld %td act %d loss %d weighted %d: D index %td, cost %.17g vs "
            "%.17g, hits %g vs %g, weighted as scaled %d",
            rows, n_out, ld, act, loss, weighted, at, cost_out, cost_ref, hits_out, hits_ref,
            scaled_ok);
    dlfr_aligned_free(A), dlfr_aligned_free(Y), dlfr_aligned_free(D), dlfr_aligned_free(w);
    dlfr_aligned_free(ref), dlfr_aligned_free(out);
}

static void check_output_delta(int level)
{
    static const ptrdiff_t rows_list[] = {1, 2, 5, 16, 33};
    static const ptrdiff_t outs[] = {1, 2, 3, 10, 16, 17, 40};
    static const int acts[] = {DLFR_SIGMOID, DLFR_SOFTMAX, DLFR_IDENTITY, DLFR_TANH,
                               DLFR_RELU,    DLFR_LEAKY_RELU, DLFR_ELU};
    enum { N_ACTS = sizeof acts / sizeof acts[0] };
    for (int ri = 0; ri < 5; ri++)
        for (int oi = 0; oi < 7; oi++)
            for (int variant = 0; variant < 3; variant++)
                for (int ai = 0; ai < N_ACTS; ai++)
                    for (int loss = 0; loss < 2; loss++)
                        for (int weighted = 0; weighted < 2; weighted++)
                            check_output_delta_case(level, rows_list[ri], outs[oi],
                                                    stride(outs[oi], variant), acts[ai], loss,
                                                    weighted, oi);
}

/* ---- optimizers: optimizer_step, sum_squares ---- */

static void optimizer_step(void *p, void *g, void *s1, void *s2, ptrdiff_t n,
                           const struct dlfr_step *step)
{
    if (f64)
        dlfr_optimizer_step_f64(p, g, s1, s2, n, step);
    else
        dlfr_optimizer_step_f32(p, g, s1, s2, n, step);
}

/* Every rule on every length, with and without L2's decay and clipping's
 * scale: p and the slots to a few ulp of the terms they sum (Adam's step to
 * its ratio m / sqrt(s)'s), the gradient left exactly zero, NaN kept, the
 * guards after n untouched, and slots the rule lacks passed as NULL. */
static void check_optimizer_step(int level)
{
    static const char *const names[] = {"sgd", "momentum", "nesterov", "adam"};
    for (int rule = DLFR_RULE_SGD; rule <= DLFR_RULE_ADAM; rule++)
        for (int variant = 0; variant < 4; variant++)
            for (int l = 0; l < N_LENGTHS; l++) {
                ptrdiff_t n = LENGTHS[l], pad = 5, total = n + pad;
                struct dlfr_step step = {rule, 0.01 * (1 + variant), 0.9, 0.8, 0.999, 1e-8,
                                         variant & 1 ? 0.37 : 1.0, variant & 2 ? 0.003 : 0.0};
                int slots = rule == DLFR_RULE_ADAM ? 2 : rule == DLFR_RULE_SGD ? 0 : 1;
                void *in[4], *ref[4], *out[4];
                for (int a = 0; a < 4; a++) {
                    in[a] = alloc(total);
                    for (ptrdiff_t i = 0; i < total; i++) set(in[a], i, GUARD);
                }
                for (ptrdiff_t i = 0; i < n; i++) {
                    set(in[0], i, uniform(-2, 2));
                    /* gradients over seven orders of magnitude, as Adam meets them */
                    set(in[1], i, uniform(-1, 1) * pow(10.0, uniform(-6, 1)));
                    set(in[2], i, uniform(-0.5, 0.5) * (rule == DLFR_RULE_ADAM ? 1e-3 : 1.0));
                    set(in[3], i, uniform(0, 1e-4));
                }
                if (n > 3) {
                    set(in[1], 1, NAN);
                    set(in[1], 3, 0.0), set(in[2], 3, 0.0), set(in[3], 3, 0.0); /* Adam: 0 / eps */
                }
                for (int a = 0; a < 4; a++) ref[a] = copy(in[a], total), out[a] = copy(in[a], total);
                select_level(DLFR_GENERIC);
                optimizer_step(ref[0], ref[1], slots > 0 ? ref[2] : NULL, slots > 1 ? ref[3] : NULL,
                               n, &step);
                select_level(level);
                optimizer_step(out[0], out[1], slots > 0 ? out[2] : NULL, slots > 1 ? out[3] : NULL,
                               n, &step);
                int ok = 1;
                ptrdiff_t at = -1;
                const char *why = "";
                for (ptrdiff_t i = 0; i < total && ok; i++) {
                    if (i >= n) { /* the guards, and slots the rule has not, untouched */
                        for (int a = 0; a < 4; a++)
                            if (get(out[a], i) != get(in[a], i)) ok = 0, why = "guard";
                    } else {
                        double p = fabs(get(in[0], i)), v = fabs(get(in[2], i));
                        double g = step.grad_scale * (fabs(get(in[1], i)) + step.decay * p);
                        double m = fabs(get(ref[2], i)), s = fabs(get(ref[3], i));
                        double moved = rule == DLFR_RULE_ADAM
                                           ? 8 * step.lr * m / (sqrt(s) + step.epsilon)
                                           : 2 * (step.momentum * v + step.lr * g);
                        double tol_v = 4 * tol_elem() * (step.momentum * v + step.lr * g);
                        if (rule == DLFR_RULE_ADAM)
                            tol_v = 4 * tol_elem() * (step.beta_1 * v + g);
                        double tol_s = 4 * tol_elem() * (get(in[3], i) + g * g);
                        if (!agree(get(out[0], i), get(ref[0], i), tol_elem() * (p + moved)))
                            ok = 0, why = "p";
                        if (slots > 0 && !agree(get(out[2], i), get(ref[2], i), tol_v))
                            ok = 0, why = "s1";
                        if (slots > 1 && !agree(get(out[3], i), get(ref[3], i), tol_s))
                            ok = 0, why = "s2";
                        if (slots < 1 && get(out[2], i) != get(in[2], i)) ok = 0, why = "s1 written";
                        if (slots < 2 && get(out[3], i) != get(in[3], i)) ok = 0, why = "s2 written";
                        if (get(out[1], i) != 0.0) ok = 0, why = "gradient not zeroed";
                        if (i == 1 && n > 3 && !isnan(get(out[0], i))) ok = 0, why = "NaN lost";
                    }
                    if (!ok) at = i;
                }
                verdict("optimizer_step", ok, "%s variant %d n %td: %s at %td: p %.17g, generic %.17g",
                        names[rule], variant, n, why, at, ok ? 0.0 : get(out[0], at),
                        ok ? 0.0 : get(ref[0], at));
                for (int a = 0; a < 4; a++)
                    dlfr_aligned_free(in[a]), dlfr_aligned_free(ref[a]), dlfr_aligned_free(out[a]);
            }
}

static void check_sum_squares(int level)
{
    for (int with_y = 0; with_y < 2; with_y++)
        for (int l = 0; l < N_LENGTHS; l++) {
            ptrdiff_t n = LENGTHS[l];
            double c = with_y ? 0.0123 : 0.0;
            void *x = alloc(n), *y = alloc(n);
            fill(x, n, -3, 3);
            fill(y, n, -50, 50);
            select_level(DLFR_GENERIC);
            double ref = f64 ? dlfr_sum_squares_f64(x, with_y ? y : NULL, c, n)
                             : dlfr_sum_squares_f32(x, with_y ? y : NULL, c, n);
            select_level(level);
            double out = f64 ? dlfr_sum_squares_f64(x, with_y ? y : NULL, c, n)
                             : dlfr_sum_squares_f32(x, with_y ? y : NULL, c, n);
            /* in double whatever the dtype: a double's ulps per term */
            double tol = 1e-14 * sqrt((double)(n > 0 ? n : 1)) * fabs(ref);
            int ok = agree(out, ref, tol) && (n > 0 || out == 0.0);
            if (n > 3) { /* NaN and inf come through */
                set(x, 2, INFINITY);
                double inf = f64 ? dlfr_sum_squares_f64(x, with_y ? y : NULL, c, n)
                                 : dlfr_sum_squares_f32(x, with_y ? y : NULL, c, n);
                set(x, 1, NAN);
                double nan = f64 ? dlfr_sum_squares_f64(x, with_y ? y : NULL, c, n)
                                 : dlfr_sum_squares_f32(x, with_y ? y : NULL, c, n);
                ok = ok && isinf(inf) && inf > 0 && isnan(nan);
            }
            verdict("sum_squares", ok, "y %d n %td: %.17g, generic %.17g", with_y, n, out, ref);
            dlfr_aligned_free(x), dlfr_aligned_free(y);
        }
}

/* ---- GEMM ---- */

static const ptrdiff_t GEMM_M[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 31, 121};
static const ptrdiff_t GEMM_N[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,   10,  11,  12,  13, 14, 15,
                                   16, 17, 18, 19, 20, 31, 33, 48, 64, 65, 100, 128, 256, 257};
static const ptrdiff_t GEMM_K[] = {0, 1, 2, 3, 7, 16, 97, 784};
enum {
    N_GM = sizeof GEMM_M / sizeof GEMM_M[0],
    N_GN = sizeof GEMM_N / sizeof GEMM_N[0],
    N_GK = sizeof GEMM_K / sizeof GEMM_K[0]
};

static void gemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const void *A, ptrdiff_t lda,
                 const void *B, ptrdiff_t ldb, const void *bias, void *C, ptrdiff_t ldc)
{
    if (f64)
        dlfr_gemm_f64(m, n, k, A, lda, B, ldb, bias, C, ldc);
    else
        dlfr_gemm_f32(m, n, k, A, lda, B, ldb, bias, C, ldc);
}

static void gemm_stream(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const void *A, ptrdiff_t lda,
                        const void *B, ptrdiff_t ldb, const void *bias, void *C, ptrdiff_t ldc)
{
    if (f64)
        dlfr_gemm_stream_f64(m, n, k, A, lda, B, ldb, bias, C, ldc);
    else
        dlfr_gemm_stream_f32(m, n, k, A, lda, B, ldb, bias, C, ldc);
}

/* One shape: C = A @ B + bias under the level and under generic. `nan`:
 * A[i0, p0] is NaN (row i0 of C must be NaN throughout) and B[p1, j1] +inf. */
static void gemm_case(int level, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, int variant, int nan)
{
    ptrdiff_t lda = k + (variant & 1 ? 3 : 0);
    ptrdiff_t ldb = round_up(n) + (variant & 2 ? DLFR_PANEL : 0);
    /* ldc: past n (a guard after each row), exactly n (rows back to back;
     * the guard after the last row), or whole panels */
    ptrdiff_t ldc = variant == 0 ? n : variant == 3 ? round_up(n) : n + 1 + variant;
    int with_bias = variant != 2;
    ptrdiff_t size_a = m * lda + 1, size_b = (k > 0 ? k : 1) * ldb, size_c = m * ldc + 8;
    void *A = alloc(size_a), *B = alloc(size_b), *bias = alloc(ldb);
    fill(A, size_a, -1, 1);
    for (ptrdiff_t p = 0; p < size_b; p++) set(B, p, p % ldb < n ? uniform(-1, 1) : 0.0);
    for (ptrdiff_t j = 0; j < ldb; j++) set(bias, j, j < n ? uniform(-1, 1) : 0.0);
    ptrdiff_t i0 = m / 2, p0 = k / 3, p1 = k - 1, j1 = n - 1;
    if (nan && k > 0) {
        set(A, i0 * lda + p0, NAN);
        set(B, p1 * ldb + j1, INFINITY);
    }
    void *ref = alloc(size_c), *out = alloc(size_c);
    for (ptrdiff_t i = 0; i < size_c; i++) set(ref, i, GUARD), set(out, i, GUARD);
    select_level(DLFR_GENERIC);
    gemm(m, n, k, A, lda, B, ldb, with_bias ? bias : NULL, ref, ldc);
    select_level(level);
    gemm(m, n, k, A, lda, B, ldb, with_bias ? bias : NULL, out, ldc);
    int ok = 1;
    const char *why = "";
    ptrdiff_t at_i = -1, at_j = -1;
    /* each output's sum of |terms|, in double (|A| @ |B| + |bias|) */
    double *magnitude = calloc((size_t)(m * n), sizeof(double));
    double *abs_b = malloc(sizeof(double) * (size_t)n);
    for (ptrdiff_t p = 0; p < k; p++) {
        for (ptrdiff_t j = 0; j < n; j++) abs_b[j] = fabs(get(B, p * ldb + j));
        for (ptrdiff_t i = 0; i < m; i++) {
            double a = fabs(get(A, i * lda + p));
            for (ptrdiff_t j = 0; j < n; j++) magnitude[i * n + j] += a * abs_b[j];
        }
    }
    for (ptrdiff_t i = 0; i < m && ok; i++)
        for (ptrdiff_t j = 0; j < ldc && ok; j++) {
            double x = get(out, i * ldc + j);
            if (j >= n) { /* not ours to write */
                if (x != GUARD && !(f64 == 0 && x == (float)GUARD)) ok = 0, why = "guard";
            } else {
                double sum = magnitude[i * n + j] + (with_bias ? fabs(get(bias, j)) : 0);
                double tol = tol_sum() * sqrt((double)(k > 0 ? k : 1)) * sum;
                if (!agree(x, get(ref, i * ldc + j), tol)) ok = 0, why = "value";
                if (nan && k > 0 && i == i0 && !isnan(x)) ok = 0, why = "NaN lost";
            }
            if (!ok) at_i = i, at_j = j;
        }
    for (ptrdiff_t i = m * ldc; i < size_c && ok; i++)
        if (get(out, i) != get(ref, i)) ok = 0, why = "guard after C", at_i = m, at_j = i - m * ldc;
    free(magnitude), free(abs_b);
    /* gemm_stream: the same sums bit for bit, guards untouched */
    void *streamed = alloc(size_c);
    for (ptrdiff_t i = 0; i < size_c; i++) set(streamed, i, GUARD);
    gemm_stream(m, n, k, A, lda, B, ldb, with_bias ? bias : NULL, streamed, ldc);
    ptrdiff_t differ = -1;
    for (ptrdiff_t i = 0; i < size_c && differ < 0; i++)
        if (memcmp((char *)streamed + i * esize(), (char *)out + i * esize(), esize()) != 0)
            differ = i;
    verdict("gemm_stream", differ < 0, "m %td n %td k %td lda %td ldb %td ldc %td: element %td differs from gemm's",
            m, n, k, lda, ldb, ldc, differ);
    dlfr_aligned_free(streamed);
    verdict("gemm", ok, "m %td n %td k %td lda %td ldb %td ldc %td bias %d nan %d: %s at (%td, %td): %.17g, generic %.17g",
            m, n, k, lda, ldb, ldc, with_bias, nan, why, at_i, at_j,
            ok ? 0.0 : get(out, at_i * ldc + at_j), ok ? 0.0 : get(ref, at_i * ldc + at_j));
    dlfr_aligned_free(A), dlfr_aligned_free(B), dlfr_aligned_free(bias);
    dlfr_aligned_free(ref), dlfr_aligned_free(out);
}

static void check_gemm(int level)
{
    int variant = 0;
    for (int mi = 0; mi < N_GM; mi++)
        for (int ni = 0; ni < N_GN; ni++)
            for (int ki = 0; ki < N_GK; ki++) {
                gemm_case(level, GEMM_M[mi], GEMM_N[ni], GEMM_K[ki], variant, 0);
                variant = (variant + 1) % 4; /* strides and bias vary from case to case */
            }
    for (int mi = 0; mi < N_GM; mi++)
        for (int ni = 0; ni < N_GN; ni += 3)
            gemm_case(level, GEMM_M[mi], GEMM_N[ni], 7 + 90 * (mi % 2), mi % 4, 1);
}

static void check_gemm_update(int level)
{
    static const ptrdiff_t ns[] = {16, 32, 48, 64, 128, 256};
    static const ptrdiff_t ks[] = {0, 1, 2, 3, 7, 10, 16, 97};
    /* rows for the prefetch of "the next batch": 40 rows of 300 bytes */
    static char ahead_rows[40 * 300];
    static const int64_t index[] = {5, 0, 39, 17, 2, 2, 30};
    int variant = 0;
    for (int mi = 0; mi < N_GM; mi++)
        for (int ni = 0; ni < 6; ni++)
            for (int ki = 0; ki < 8; ki++, variant = (variant + 1) % 3) {
                ptrdiff_t m = GEMM_M[mi], n = ns[ni], k = ks[ki];
                ptrdiff_t lda = m + (variant == 1 ? 5 : 0);
                ptrdiff_t ldb = n + (variant == 2 ? DLFR_PANEL : 0);
                ptrdiff_t ldc = n + (variant != 0 ? DLFR_PANEL : 0);
                double alpha = variant == 2 ? 1.0 : -0.0123;
                struct dlfr_prefetch ahead = {ahead_rows, variant == 1 ? index : NULL,
                                              variant == 1 ? 7 : 40, 300};
                ptrdiff_t size_a = (k > 0 ? k : 1) * lda, size_b = (k > 0 ? k : 1) * ldb;
                ptrdiff_t size_c = m * ldc + 8;
                void *A = alloc(size_a), *B = alloc(size_b), *C = alloc(size_c);
                fill(A, size_a, -1, 1);
                fill(B, size_b, -1, 1);
                for (ptrdiff_t i = 0; i < size_c; i++)
                    set(C, i, i < m * ldc && i % ldc < n ? uniform(-1, 1) : GUARD);
                if (k > 1 && m > 1) set(A, 1 * lda + 1, NAN); /* C's row 1: NaN */
                void *ref = copy(C, size_c), *out = copy(C, size_c);
                const struct dlfr_prefetch *pf = variant == 0 ? NULL : &ahead;
                select_level(DLFR_GENERIC);
                f64 ? dlfr_gemm_update_f64(m, n, k, A, lda, B, ldb, ref, ldc, alpha, pf)
                    : dlfr_gemm_update_f32(m, n, k, A, lda, B, ldb, ref, ldc, (float)alpha, pf);
                select_level(level);
                f64 ? dlfr_gemm_update_f64(m, n, k, A, lda, B, ldb, out, ldc, alpha, pf)
                    : dlfr_gemm_update_f32(m, n, k, A, lda, B, ldb, out, ldc, (float)alpha, pf);
                int ok = 1;
                ptrdiff_t at = -1;
                for (ptrdiff_t i = 0; i < size_c && ok; i++) {
                    ptrdiff_t r = i / ldc, c = i % ldc;
                    double tol = 0;
                    if (r < m && c < n) {
                        double magnitude = fabs(get(C, i));
                        for (ptrdiff_t p = 0; p < k; p++)
                            magnitude += fabs(alpha * get(A, p * lda + r) * get(B, p * ldb + c));
                        tol = tol_sum() * sqrt((double)(k > 0 ? k : 1)) * magnitude;
                        if (k > 1 && m > 1 && r == 1 && !isnan(get(out, i))) ok = 0;
                    }
                    if (!agree(get(out, i), get(ref, i), tol)) ok = 0;
                    if (!ok) at = i;
                }
                verdict("gemm_update", ok, "m %td n %td k %td lda %td ldb %td ldc %td: index %td: %.17g, generic %.17g",
                        m, n, k, lda, ldb, ldc, at, ok ? 0.0 : get(out, at), ok ? 0.0 : get(ref, at));
                dlfr_aligned_free(A), dlfr_aligned_free(B), dlfr_aligned_free(C);
                dlfr_aligned_free(ref), dlfr_aligned_free(out);
            }
}

int main(void)
{
    static const int levels[] = {DLFR_GENERIC, DLFR_AVX2, DLFR_AVX512, DLFR_NEON};
    printf("dlfr SIMD check: this CPU supports up to %s\n",
           dlfr_simd_name(dlfr_simd_supported()));
    long total_passed = 0, total_failed = 0;
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        int level = levels[li];
        if (dlfr_simd_select(level) != level) {
            printf("%-8s skipped: not available on this CPU/build\n", dlfr_simd_name(level));
            continue;
        }
        for (f64 = 0; f64 < 2; f64++) {
            memset(passed, 0, sizeof passed);
            memset(failed, 0, sizeof failed);
            current_level = dlfr_simd_name(level);
            current_dtype = f64 ? "f64" : "f32";
            check_unary(level);
            check_sigmoid_backward(level);
            check_bias_act(level);
            check_gemm(level);
            check_gemm_update(level);
            check_act_backward(level);
            check_output_delta(level);
            check_bias_update(level);
            check_optimizer_step(level);
            check_sum_squares(level);
            for (int k = 0; k < N_KERNELS; k++) {
                printf("%-8s %s %-17s %6ld passed %6ld failed\n", current_level, current_dtype,
                       KERNELS[k], passed[k], failed[k]);
                total_passed += passed[k];
                total_failed += failed[k];
            }
        }
    }
    printf("%ld passed, %ld failed\n", total_passed, total_failed);
    return total_failed ? 1 : 0;
}
