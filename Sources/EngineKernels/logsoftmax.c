// Log-softmax statistics of logit rows in double precision (ek_log_sum_exp, ek_compare_rows,
// declared in enginekernels.h): what dsconvert eval computes for every scored position over the
// whole vocabulary. The exponentials are a 4-lane double exp (exp4d below, within about 1 ulp
// of libm's exp), so the results keep double accuracy while running 4 lanes per instruction
// instead of one libm call per vocabulary entry.
#include "enginekernels.h"
#include "simd.h"
#include <math.h>

typedef double v4d __attribute__((vector_size(32)));
typedef long long v4l __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16), aligned(4)));

#define load4f(p) __builtin_convertvector(*(const v4f *)(p), v4d)

/// OUT = e^X for X <= 0, 4 double lanes: X = n ln2 + r (n = round(X / ln2), ln2 in fdlibm's
/// hi / lo parts so n·ln2_hi is exact), |r| <= ln2 / 2, e^r by its Taylor series to degree 13
/// (truncation below 5e-18 relative), then 2^n through the exponent bits. X below -708 gives 0
/// (libm would give a subnormal under 1e-307, nothing a sum of terms >= 1 can hold).
#define EXP4D_NONPOSITIVE(X, OUT) do {                                             \
    v4d x_ = (X);                                                                  \
    const v4d lo_ = (v4d){0} - 708.0;                                              \
    v4l under_ = x_ < lo_;                                                         \
    x_ = (v4d)(((v4l)x_ & ~under_) | ((v4l)lo_ & under_));                         \
    const v4d magic_ = (v4d){0} + 6755399441055744.0; /* 1.5 * 2^52 */             \
    v4d t_ = x_ * 1.4426950408889634 + magic_;                                     \
    v4d n_ = t_ - magic_;                                                          \
    v4l ni_ = (v4l)t_ - (v4l)magic_;                                               \
    v4d r_ = x_ - n_ * 6.93147180369123816490e-01;                                 \
    r_ = r_ - n_ * 1.90821492927058770002e-10;                                     \
    v4d p_ = (v4d){0} + 1.0 / 6227020800.0;                                        \
    p_ = p_ * r_ + 1.0 / 479001600.0;                                              \
    p_ = p_ * r_ + 1.0 / 39916800.0;                                               \
    p_ = p_ * r_ + 1.0 / 3628800.0;                                                \
    p_ = p_ * r_ + 1.0 / 362880.0;                                                 \
    p_ = p_ * r_ + 1.0 / 40320.0;                                                  \
    p_ = p_ * r_ + 1.0 / 5040.0;                                                   \
    p_ = p_ * r_ + 1.0 / 720.0;                                                    \
    p_ = p_ * r_ + 1.0 / 120.0;                                                    \
    p_ = p_ * r_ + 1.0 / 24.0;                                                     \
    p_ = p_ * r_ + 1.0 / 6.0;                                                      \
    p_ = p_ * r_ + 0.5;                                                            \
    p_ = p_ * r_ + 1.0;                                                            \
    p_ = p_ * r_ + 1.0;                                                            \
    v4d s_ = (v4d)((ni_ + 1023) << 52);                                            \
    (OUT) = (v4d)((v4l)(p_ * s_) & ~under_);                                       \
} while (0)

#define hsum4(v) (((v)[0] + (v)[2]) + ((v)[1] + (v)[3]))

/// The largest x[i] and the first index holding it (n >= 1).
EK_INLINE float max_first(const float *x, int n, int *arg) {
    int i = 0;
    float m = x[0];
    if (n >= 8) {
        v8 vm = load8(x);
        for (i = 8; i + 8 <= n; i += 8) vm = __builtin_elementwise_max(vm, load8(x + i));
        for (int l = 0; l < 8; l++) m = vm[l] > m ? vm[l] : m;
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    int a = 0;
    while (a < n && !(x[a] == m)) a++;
    // No element equals the maximum only when every element is NaN: index 0, as a scan would give.
    *arg = a < n ? a : 0;
    return m;
}

/// sum_i e^(x[i] - m) in double.
EK_INLINE double sum_exp(const float *x, int n, double m) {
    v4d s0 = {0}, s1 = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        v4d e0, e1;
        EXP4D_NONPOSITIVE(load4f(x + i) - m, e0);
        EXP4D_NONPOSITIVE(load4f(x + i + 4) - m, e1);
        s0 += e0;
        s1 += e1;
    }
    double s = hsum4(s0 + s1);
    for (; i < n; i++) s += exp((double)x[i] - m);
    return s;
}

EK_CLONES double ek_log_sum_exp(const float *x, int n, int *argmax) {
    double m = max_first(x, n, argmax);
    return m + log(sum_exp(x, n, m));
}

EK_CLONES void ek_compare_rows(const float *ref, const float *cand, int n, double *lse_ref, double *lse_cand,
                               double *kl, int *arg_ref, int *arg_cand) {
    double mr = max_first(ref, n, arg_ref), mc = max_first(cand, n, arg_cand);
    // One pass: s_r = Σ e_i with e_i = e^(r_i − m_r), s_c = Σ e^(c_i − m_c) and
    // t = Σ e_i·d_i with d_i = (r_i − m_r) − (c_i − m_c). With L = log s_r − log s_c,
    // lr_i − lc_i = d_i − L and p_i = e_i / s_r, so KL = Σ p_i (lr_i − lc_i) = t / s_r − L: no
    // third exponential, and the only cancellation is against L, which is small when the two
    // distributions are close (where KL is small).
    v4d sr0 = {0}, sr1 = {0}, sc0 = {0}, sc1 = {0}, t0 = {0}, t1 = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        v4d xr0 = load4f(ref + i) - mr, xr1 = load4f(ref + i + 4) - mr;
        v4d xc0 = load4f(cand + i) - mc, xc1 = load4f(cand + i + 4) - mc;
        v4d er0, er1, ec0, ec1;
        EXP4D_NONPOSITIVE(xr0, er0);
        EXP4D_NONPOSITIVE(xr1, er1);
        EXP4D_NONPOSITIVE(xc0, ec0);
        EXP4D_NONPOSITIVE(xc1, ec1);
        sr0 += er0; sr1 += er1;
        sc0 += ec0; sc1 += ec1;
        t0 += er0 * (xr0 - xc0);
        t1 += er1 * (xr1 - xc1);
    }
    double sr = hsum4(sr0 + sr1), sc = hsum4(sc0 + sc1), t = hsum4(t0 + t1);
    for (; i < n; i++) {
        double xr = (double)ref[i] - mr, xc = (double)cand[i] - mc;
        double er = exp(xr);
        sr += er;
        sc += exp(xc);
        t += er * (xr - xc);
    }
    double lr = log(sr), lc = log(sc);
    *lse_ref = mr + lr;
    *lse_cand = mc + lc;
    *kl = t / sr - (lr - lc);
}
