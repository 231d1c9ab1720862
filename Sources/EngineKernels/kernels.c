#include "enginekernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define EK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EK_CLONES
#endif
#define EK_INLINE static inline __attribute__((always_inline))

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));

// Macros, not functions: a vector-typed parameter would change the ABI of the baseline clone.
#define load8(p) (*(const v8u *)(p))
#define store8(p, v) (*(v8u *)(p) = (v))
#define hsum8(v) ((((v)[0] + (v)[4]) + ((v)[1] + (v)[5])) + (((v)[2] + (v)[6]) + ((v)[3] + (v)[7])))

enum { NR = 16, MR = 6 };

EK_CLONES void ek_pack_tile(const float *w, int nb, int kb, int ldw, float *packed) {
    int panels = (nb + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        float *dst = packed + (size_t)p * kb * NR;
        int rows = nb - p * NR < NR ? nb - p * NR : NR;
        for (int r = 0; r < rows; r++) {
            const float *src = w + (size_t)(p * NR + r) * ldw;
            for (int k = 0; k < kb; k++) dst[k * NR + r] = src[k];
        }
        for (int r = rows; r < NR; r++)
            for (int k = 0; k < kb; k++) dst[k * NR + r] = 0;
    }
}

/// One MR' x 16 block: y[i][0..cols) += sum_k x[i][k] * p[k][0..16).
EK_INLINE void micro(const int mr, int kb, const float *x, int ldx, const float *p, float *y, int ldy, int cols) {
    v8 c0[MR], c1[MR];
    for (int i = 0; i < mr; i++) { c0[i] = (v8){0}; c1[i] = (v8){0}; }
    for (int k = 0; k < kb; k++) {
        v8 b0 = load8(p + k * NR), b1 = load8(p + k * NR + 8);
        for (int i = 0; i < mr; i++) {
            v8 a = (v8){0} + x[(size_t)i * ldx + k];
            c0[i] += a * b0;
            c1[i] += a * b1;
        }
    }
    if (cols == NR) {
        for (int i = 0; i < mr; i++) {
            float *yr = y + (size_t)i * ldy;
            store8(yr, load8(yr) + c0[i]);
            store8(yr + 8, load8(yr + 8) + c1[i]);
        }
    } else {
        for (int i = 0; i < mr; i++) {
            float *yr = y + (size_t)i * ldy;
            for (int j = 0; j < cols; j++) yr[j] += j < 8 ? c0[i][j] : c1[i][j - 8];
        }
    }
}

EK_CLONES void ek_gemm_packed(int M, int nb, int kb, const float *x, int ldx, const float *packed, float *y, int ldy) {
    int panels = (nb + NR - 1) / NR;
    for (int m0 = 0; m0 < M; m0 += MR) {
        int mr = M - m0 < MR ? M - m0 : MR;
        const float *xm = x + (size_t)m0 * ldx;
        float *ym = y + (size_t)m0 * ldy;
        for (int p = 0; p < panels; p++) {
            int cols = nb - p * NR < NR ? nb - p * NR : NR;
            const float *pp = packed + (size_t)p * kb * NR;
            float *yp = ym + p * NR;
            switch (mr) {
            case 6: micro(6, kb, xm, ldx, pp, yp, ldy, cols); break;
            case 5: micro(5, kb, xm, ldx, pp, yp, ldy, cols); break;
            case 4: micro(4, kb, xm, ldx, pp, yp, ldy, cols); break;
            case 3: micro(3, kb, xm, ldx, pp, yp, ldy, cols); break;
            case 2: micro(2, kb, xm, ldx, pp, yp, ldy, cols); break;
            default: micro(1, kb, xm, ldx, pp, yp, ldy, cols); break;
            }
        }
    }
}

EK_INLINE float dot_inline(const float *a, const float *b, int n) {
    v8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    int k = 0;
    for (; k + 32 <= n; k += 32) {
        s0 += load8(a + k) * load8(b + k);
        s1 += load8(a + k + 8) * load8(b + k + 8);
        s2 += load8(a + k + 16) * load8(b + k + 16);
        s3 += load8(a + k + 24) * load8(b + k + 24);
    }
    for (; k + 8 <= n; k += 8) s0 += load8(a + k) * load8(b + k);
    float s = hsum8((s0 + s1) + (s2 + s3));
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

EK_CLONES float ek_dot(const float *a, const float *b, int n) { return dot_inline(a, b, n); }

EK_CLONES void ek_gemm_rows(int M, int nb, int kb, const float *x, int ldx, const float *w, int ldw, float *y, int ldy) {
    for (int n = 0; n < nb; n++) {
        const float *wr = w + (size_t)n * ldw;
        for (int m = 0; m < M; m++) y[(size_t)m * ldy + n] += dot_inline(x + (size_t)m * ldx, wr, kb);
    }
}

EK_CLONES void ek_axpy(int n, float a, const float *x, float *y) {
    int k = 0;
    v8 av = (v8){0} + a;
    for (; k + 8 <= n; k += 8) store8(y + k, load8(y + k) + av * load8(x + k));
    for (; k < n; k++) y[k] += a * x[k];
}

EK_CLONES void ek_rmsnorm(const float *x, const float *w, int n, float eps, float *out) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float var = (float)(ss / n);
    float r = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < n; i++) out[i] = w[i] * (x[i] * r);
}

EK_CLONES void ek_silu_mul(float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) {
        float v = g[i];
        g[i] = v / (1.0f + expf(-v)) * u[i];
    }
}

typedef int v8i __attribute__((vector_size(32)));

/// OUT = e^X for X <= 0, 8 lanes (Cephes' expf: X = n ln2 + r, |r| <= ln2 / 2, a degree-6
/// polynomial, then 2^n through the exponent bits; within 2 ulp of expf; below -87.3 gives 0).
/// A macro, like load8: a vector-typed function parameter would change the baseline clone's ABI.
#define EXP8_NONPOSITIVE(X, OUT) do {                                        \
    v8 x_ = (X);                                                            \
    const v8 lo_ = (v8){0} - 87.3f;                                         \
    v8i under_ = x_ < lo_;                                                  \
    x_ = (v8)((v8i)x_ & ~under_) + (v8)((v8i)lo_ & under_);                 \
    v8 t_ = x_ * 1.44269504088896341f + 0.5f;                               \
    v8i ti_ = __builtin_convertvector(t_, v8i);                             \
    ti_ += (v8i)(__builtin_convertvector(ti_, v8) > t_);                    \
    v8 n_ = __builtin_convertvector(ti_, v8);                               \
    v8 r_ = x_ - n_ * 0.693359375f + n_ * 2.12194440e-4f;                   \
    v8 p_ = (v8){0} + 1.9875691500e-4f;                                     \
    p_ = p_ * r_ + 1.3981999507e-3f;                                        \
    p_ = p_ * r_ + 8.3334519073e-3f;                                        \
    p_ = p_ * r_ + 4.1665795894e-2f;                                        \
    p_ = p_ * r_ + 1.6666665459e-1f;                                        \
    p_ = p_ * r_ + 5.0000001201e-1f;                                        \
    p_ = p_ * (r_ * r_) + r_ + 1.0f;                                        \
    v8 s_ = (v8)((ti_ + 127) << 23);                                        \
    (OUT) = (v8)((v8i)(p_ * s_) & ~under_);                                 \
} while (0)

EK_CLONES void ek_attention(int nq, int p0, int dk, int dv, float scale,
                            const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                            float *out, int ldo, float *scores) {
    for (int i = 0; i < nq; i++) {
        int n = p0 + i + 1;
        const float *qi = q + (size_t)i * ldq;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            float s = dot_inline(qi, k + (size_t)j * ldk, dk) * scale;
            scores[j] = s;
            if (s > mx) mx = s;
        }
        v8 vsum = {0};
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            v8 e;
            EXP8_NONPOSITIVE(load8(scores + j) - mx, e);
            store8(scores + j, e);
            vsum += e;
        }
        float sum = hsum8(vsum);
        for (; j < n; j++) {
            float e = expf(scores[j] - mx);
            scores[j] = e;
            sum += e;
        }
        float *o = out + (size_t)i * ldo;
        float inv = 1.0f / sum;
        if (dv % 8 == 0 && dv <= 64) {
            /* The output row stays in registers across all positions. */
            v8 acc[8];
            int w = dv / 8;
            for (int d = 0; d < w; d++) acc[d] = (v8){0};
            for (int jj = 0; jj < n; jj++) {
                v8 av = (v8){0} + scores[jj] * inv;
                const float *vj = v + (size_t)jj * ldv;
                for (int d = 0; d < w; d++) acc[d] += av * load8(vj + 8 * d);
            }
            for (int d = 0; d < w; d++) store8(o + 8 * d, acc[d]);
            continue;
        }
        for (int d = 0; d < dv; d++) o[d] = 0;
        for (int jj = 0; jj < n; jj++) {
            float a = scores[jj] * inv;
            const float *vj = v + (size_t)jj * ldv;
            int d = 0;
            v8 av = (v8){0} + a;
            for (; d + 8 <= dv; d += 8) store8(o + d, load8(o + d) + av * load8(vj + d));
            for (; d < dv; d++) o[d] += a * vj[d];
        }
    }
}

long ek_fetch_add(long *counter, long value) { return __atomic_fetch_add(counter, value, __ATOMIC_RELAXED); }
