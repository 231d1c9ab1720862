#include "enginekernels.h"
#include "simd.h"
#include <math.h>
#include <string.h>

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
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        // silu(v) = v * sigmoid(v); sigmoid from e = e^-|v| (never overflows): 1 / (1 + e) for
        // v >= 0, e / (1 + e) below.
        v8 v = load8(g + i), e;
        v8i neg = v < 0;
        v8 minus_abs = (v8)((v8i)v | (v8i)splat8(-0.0f));
        EXP8_NONPOSITIVE(minus_abs, e);
        v8 num = (v8)(((v8i)e & neg) | ((v8i)splat8(1.0f) & ~neg));
        store8(g + i, v * (num / (1.0f + e)) * load8(u + i));
    }
    for (; i < n; i++) {
        float v = g[i];
        g[i] = v / (1.0f + expf(-v)) * u[i];
    }
}

long ek_fetch_add(long *counter, long value) { return __atomic_fetch_add(counter, value, __ATOMIC_RELAXED); }
