#include "enginekernels.h"
#include "simd.h"
#include <math.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

enum { NR = 16, MR = 6 };

/// dst[j][0..8) = column j of the 8 x 8 block at src (row stride lds), for j < 8: dst row j at
/// dst + j * ldd. Three rounds of shuffles (unpack, pair, half swap), no scalar moves.
EK_INLINE void transpose8(const float *src, int lds, float *dst, int ldd) {
    v8 r0 = load8(src), r1 = load8(src + lds), r2 = load8(src + 2 * lds), r3 = load8(src + 3 * lds);
    v8 r4 = load8(src + 4 * lds), r5 = load8(src + 5 * lds), r6 = load8(src + 6 * lds), r7 = load8(src + 7 * lds);
#define EK_LO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define EK_HI(a, b) __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15)
#define EK_P0(a, b) __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define EK_P1(a, b) __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15)
#define EK_H0(a, b) __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11)
#define EK_H1(a, b) __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15)
    v8 t0 = EK_LO(r0, r1), t1 = EK_HI(r0, r1), t2 = EK_LO(r2, r3), t3 = EK_HI(r2, r3);
    v8 t4 = EK_LO(r4, r5), t5 = EK_HI(r4, r5), t6 = EK_LO(r6, r7), t7 = EK_HI(r6, r7);
    v8 s0 = EK_P0(t0, t2), s1 = EK_P1(t0, t2), s2 = EK_P0(t1, t3), s3 = EK_P1(t1, t3);
    v8 s4 = EK_P0(t4, t6), s5 = EK_P1(t4, t6), s6 = EK_P0(t5, t7), s7 = EK_P1(t5, t7);
    store8(dst, EK_H0(s0, s4));
    store8(dst + ldd, EK_H0(s1, s5));
    store8(dst + 2 * ldd, EK_H0(s2, s6));
    store8(dst + 3 * ldd, EK_H0(s3, s7));
    store8(dst + 4 * ldd, EK_H1(s0, s4));
    store8(dst + 5 * ldd, EK_H1(s1, s5));
    store8(dst + 6 * ldd, EK_H1(s2, s6));
    store8(dst + 7 * ldd, EK_H1(s3, s7));
#undef EK_LO
#undef EK_HI
#undef EK_P0
#undef EK_P1
#undef EK_H0
#undef EK_H1
}

EK_CLONES void ek_pack_tile(const float *w, int nb, int kb, int ldw, float *packed) {
    int panels = (nb + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        float *dst = packed + (size_t)p * kb * NR;
        int rows = nb - p * NR < NR ? nb - p * NR : NR;
        const float *src0 = w + (size_t)p * NR * ldw;
        int k = 0;
        if (rows == NR) {
            // Full panels in 8 x 8 blocks: rows 0-7 into lanes 0-7 of each k, rows 8-15 into 8-15.
            for (; k + 8 <= kb; k += 8) {
                transpose8(src0 + k, ldw, dst + (size_t)k * NR, NR);
                transpose8(src0 + (size_t)8 * ldw + k, ldw, dst + (size_t)k * NR + 8, NR);
            }
        }
        for (int r = 0; r < rows; r++) {
            const float *src = src0 + (size_t)r * ldw;
            for (int kk = k; kk < kb; kk++) dst[kk * NR + r] = src[kk];
        }
        for (int r = rows; r < NR; r++)
            for (int kk = k; kk < kb; kk++) dst[kk * NR + r] = 0;
    }
}

/// One MR' x 16 block: y[i][0..cols) += sum_k x[i][k] * p[k][0..16). With mr a constant (the
/// switch below) the 2·mr accumulators, both panel vectors and the broadcast stay in the 16 ymm
/// registers: per k, two panel loads, mr broadcasts straight from memory and 2·mr FMAs.
EK_INLINE void micro(const int mr, int kb, const float *x, int ldx, const float *p, float *y, int ldy, int cols, int set) {
    v8 c0[MR], c1[MR];
    const float *xr[MR];
    for (int i = 0; i < mr; i++) { c0[i] = splat8(0.0f); c1[i] = splat8(0.0f); xr[i] = x + (size_t)i * ldx; }
    int k = 0;
    // Four k per trip: the row addresses are formed once per trip, the broadcasts then use
    // constant displacements from them.
    for (; k + 4 <= kb; k += 4) {
        for (int u = 0; u < 4; u++) {
            v8 b0 = load8(p + u * NR), b1 = load8(p + u * NR + 8);
            for (int i = 0; i < mr; i++) {
                v8 a = splat8(xr[i][k + u]);
                c0[i] += a * b0;
                c1[i] += a * b1;
            }
        }
        p += 4 * NR;
    }
    for (; k < kb; k++) {
        v8 b0 = load8(p), b1 = load8(p + 8);
        p += NR;
        for (int i = 0; i < mr; i++) {
            v8 a = splat8(xr[i][k]);
            c0[i] += a * b0;
            c1[i] += a * b1;
        }
    }
    if (cols == NR) {
        for (int i = 0; i < mr; i++) {
            float *yr = y + (size_t)i * ldy;
            if (set) {
                store8(yr, c0[i]);
                store8(yr + 8, c1[i]);
            } else {
                store8(yr, load8(yr) + c0[i]);
                store8(yr + 8, load8(yr + 8) + c1[i]);
            }
        }
    } else {
        for (int i = 0; i < mr; i++) {
            float *yr = y + (size_t)i * ldy;
            for (int j = 0; j < cols; j++) {
                float v = j < 8 ? c0[i][j] : c1[i][j - 8];
                yr[j] = set ? v : yr[j] + v;
            }
        }
    }
}

EK_CLONES void ek_gemm_packed(int M, int nb, int kb, const float *x, int ldx, const float *packed, float *y, int ldy, int set) {
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
            case 6: micro(6, kb, xm, ldx, pp, yp, ldy, cols, set); break;
            case 5: micro(5, kb, xm, ldx, pp, yp, ldy, cols, set); break;
            case 4: micro(4, kb, xm, ldx, pp, yp, ldy, cols, set); break;
            case 3: micro(3, kb, xm, ldx, pp, yp, ldy, cols, set); break;
            case 2: micro(2, kb, xm, ldx, pp, yp, ldy, cols, set); break;
            default: micro(1, kb, xm, ldx, pp, yp, ldy, cols, set); break;
            }
        }
    }
}

EK_CLONES float ek_dot(const float *a, const float *b, int n) { return dot_inline(a, b, n); }

EK_CLONES void ek_gemm_rows(int M, int nb, int kb, const float *x, int ldx, const float *w, int ldw, float *y, int ldy, int set) {
    for (int n = 0; n < nb; n++) {
        const float *wr = w + (size_t)n * ldw;
        for (int m = 0; m < M; m++) {
            float d = dot_inline(x + (size_t)m * ldx, wr, kb);
            float *yp = y + (size_t)m * ldy + n;
            *yp = set ? d : *yp + d;
        }
    }
}

EK_CLONES void ek_axpy(int n, float a, const float *x, float *y) {
    int k = 0;
    v8 av = (v8){0} + a;
    for (; k + 8 <= n; k += 8) store8(y + k, load8(y + k) + av * load8(x + k));
    for (; k < n; k++) y[k] += a * x[k];
}

EK_CLONES void ek_rmsnorm(const float *x, const float *w, int n, float eps, float *out) {
    // Σ x² in double, four lanes at a time (two accumulators), then the scalar tail.
    typedef double v4d_ __attribute__((vector_size(32)));
    typedef float v4f_ __attribute__((vector_size(16), aligned(4)));
    v4d_ s0 = {0}, s1 = {0};
    int i0 = 0;
    for (; i0 + 8 <= n; i0 += 8) {
        v4d_ a = __builtin_convertvector(*(const v4f_ *)(x + i0), v4d_);
        v4d_ b = __builtin_convertvector(*(const v4f_ *)(x + i0 + 4), v4d_);
        s0 += a * a;
        s1 += b * b;
    }
    v4d_ s = s0 + s1;
    double ss = (s[0] + s[2]) + (s[1] + s[3]);
    for (int i = i0; i < n; i++) ss += (double)x[i] * x[i];
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

void ek_keep_freed_memory(int mmap_threshold, int trim_threshold) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, mmap_threshold);
    mallopt(M_TRIM_THRESHOLD, trim_threshold);
#else
    (void)mmap_threshold;
    (void)trim_threshold;
#endif
}

long ek_fetch_add(long *counter, long value) { return __atomic_fetch_add(counter, value, __ATOMIC_RELAXED); }

// ---------------------------------------------------------------- products on stored weights
// Decode (a few rows of x) reads each weight element once: widening it to an f32 tile first
// would write and re-read a copy of every weight. These kernels decode 8 elements at a time in
// registers and multiply them straight away.

typedef unsigned short v8h __attribute__((vector_size(16), aligned(1)));
typedef unsigned char v8b __attribute__((vector_size(8), aligned(1)));
typedef unsigned int v8ui __attribute__((vector_size(32)));

/// The 8 BF16 values at p as f32 (exact: BF16 is the top half of the f32's bits).
#define WIDEN8_BF16(p) ((v8)(__builtin_convertvector(*(const v8h *)(p), v8ui) << 16))
typedef signed char v8sb __attribute__((vector_size(8), aligned(1)));
/// The f32 bit patterns of the 8 E4M3FN codes at p divided by 2^120: each code sign-extended,
/// its 7 exponent-and-mantissa bits moved to the top of an f32's exponent and mantissa
/// (exponent 0 + e, mantissa m) and its sign to bit 31. Multiplying by 2^120 re-biases the
/// exponent 7 -> 127 exactly, which also turns e = 0 (an f32 subnormal) into the E4M3
/// subnormal m × 2^-9. The NaN codes 0x7F / 0xFF become the largest pattern (bits << 1 ==
/// E4M3_NAN_TOP), which the caller tracks instead of decoding them.
#define E4M3_BITS8(p) (((v8ui)__builtin_convertvector(*(const v8sb *)(p), v8i) << 20) & 0x87F00000u)
#define E4M3_NAN_TOP 0x0FE00000u

EK_INLINE float e4m3_scalar(unsigned c) {
    unsigned em = c & 0x7F;
    union { unsigned u; float f; } v = { (em << 20) | ((c & 0x80u) << 24) };
    return em == 0x7F ? NAN : v.f * 0x1p120f;
}

/// y[i][n] (+)= sum_k x[i][k] * W[n][k] for i < mr (a constant: the accumulators stay in
/// registers), W BF16 (kind 0) or E4M3 codes times their scale (kind 1), each row read once.
EK_INLINE void rows_stored(const int mr, const int kind, int nb, int kb, const float *x, int ldx,
                           const void *w, long ldw, const float *scales, int n0, int srows, long sstride,
                           int scols, float *y, int ldy, int set) {
    const int width = kind == 0 ? 2 : 1;
    for (int n = 0; n < nb; n++) {
        const unsigned char *wr = (const unsigned char *)w + (size_t)n * ldw * width;
        const float *srow = kind == 1 ? scales + (size_t)((n0 + n) / srows) * sstride : 0;
        v8 a0[3], a1[3];
        float tail[3];
        for (int i = 0; i < mr; i++) { a0[i] = splat8(0.0f); a1[i] = splat8(0.0f); tail[i] = 0; }
        v8ui top = {0};  // E4M3: the largest code pattern seen (a NaN code makes the row NaN)
        for (int k0 = 0; k0 < kb; k0 += scols) {
            int k1 = kb - k0 < scols ? kb : k0 + scols;
            float s = kind == 1 ? srow[k0 / scols] : 1.0f;
            // code × s = (pattern × 2^120) × s, where the first product is exact; as one product
            // pattern × (2^120 × s) it rounds the same exact value once, while 2^120 × s is finite.
            int folded = fabsf(s) < 256.0f;
            float f1 = folded ? s * 0x1p120f : 0x1p120f;
            int k = k0;
            for (; k + 16 <= k1; k += 16) {
                v8 w0, w1;
                if (kind == 0) {
                    w0 = WIDEN8_BF16(wr + 2 * k);
                    w1 = WIDEN8_BF16(wr + 2 * k + 16);
                } else {
                    v8ui b0 = E4M3_BITS8(wr + k), b1 = E4M3_BITS8(wr + k + 8);
                    top = __builtin_elementwise_max(top, __builtin_elementwise_max(b0 << 1, b1 << 1));
                    w0 = (v8)b0 * f1;
                    w1 = (v8)b1 * f1;
                    if (!folded) { w0 *= s; w1 *= s; }
                }
                for (int i = 0; i < mr; i++) {
                    const float *xr = x + (size_t)i * ldx + k;
                    a0[i] += load8(xr) * w0;
                    a1[i] += load8(xr + 8) * w1;
                }
            }
            for (; k + 8 <= k1; k += 8) {
                v8 w0;
                if (kind == 0) {
                    w0 = WIDEN8_BF16(wr + 2 * k);
                } else {
                    v8ui b0 = E4M3_BITS8(wr + k);
                    top = __builtin_elementwise_max(top, b0 << 1);
                    w0 = (v8)b0 * f1;
                    if (!folded) w0 *= s;
                }
                for (int i = 0; i < mr; i++) a0[i] += load8(x + (size_t)i * ldx + k) * w0;
            }
            for (; k < k1; k++) {
                float v;
                if (kind == 0) {
                    unsigned short h;
                    __builtin_memcpy(&h, wr + 2 * k, 2);
                    union { unsigned u; float f; } b = { (unsigned)h << 16 };
                    v = b.f;
                } else {
                    v = e4m3_scalar(wr[k]) * s;
                }
                for (int i = 0; i < mr; i++) tail[i] += x[(size_t)i * ldx + k] * v;
            }
        }
        int nan_row = 0;
        if (kind == 1) for (int l = 0; l < 8; l++) nan_row |= top[l] == E4M3_NAN_TOP;
        for (int i = 0; i < mr; i++) {
            v8 a = a0[i] + a1[i];
            float d = nan_row ? NAN : hsum8(a) + tail[i];
            float *yp = y + (size_t)i * ldy + n;
            *yp = set ? d : *yp + d;
        }
    }
}

EK_CLONES void ek_gemm_rows_bf16(int M, int nb, int kb, const float *x, int ldx, const uint16_t *w, long ldw,
                                 float *y, int ldy, int set) {
    for (int m0 = 0; m0 < M; m0 += 3) {
        const float *xm = x + (size_t)m0 * ldx;
        float *ym = y + (size_t)m0 * ldy;
        switch (M - m0 < 3 ? M - m0 : 3) {
        case 3: rows_stored(3, 0, nb, kb, xm, ldx, w, ldw, 0, 0, 1, 0, kb, ym, ldy, set); break;
        case 2: rows_stored(2, 0, nb, kb, xm, ldx, w, ldw, 0, 0, 1, 0, kb, ym, ldy, set); break;
        default: rows_stored(1, 0, nb, kb, xm, ldx, w, ldw, 0, 0, 1, 0, kb, ym, ldy, set); break;
        }
    }
}

EK_CLONES void ek_gemm_rows_e4m3(int M, int nb, int kb, const float *x, int ldx, const uint8_t *w, long ldw,
                                 const float *scales, int n0, int srows, long sstride, int scols,
                                 float *y, int ldy, int set) {
    if (scols <= 0 || scols > kb) scols = kb > 0 ? kb : 1;
    for (int m0 = 0; m0 < M; m0 += 3) {
        const float *xm = x + (size_t)m0 * ldx;
        float *ym = y + (size_t)m0 * ldy;
        switch (M - m0 < 3 ? M - m0 : 3) {
        case 3: rows_stored(3, 1, nb, kb, xm, ldx, w, ldw, scales, n0, srows, sstride, scols, ym, ldy, set); break;
        case 2: rows_stored(2, 1, nb, kb, xm, ldx, w, ldw, scales, n0, srows, sstride, scols, ym, ldy, set); break;
        default: rows_stored(1, 1, nb, kb, xm, ldx, w, ldw, scales, n0, srows, sstride, scols, ym, ldy, set); break;
        }
    }
}
