// Causal attention of one head over a cached sequence (ek_attention, declared in enginekernels.h).
// Blocked: the keys are packed once into panels of 16 (d-major), then for each block of 6 query
// rows the scores are a 6 x 16 register-blocked product per panel (only the panels the block's
// last row can see), the softmax runs 8 lanes at a time, and P . V is a 6 x 16 register-blocked
// product over the value rows.
#include "enginekernels.h"
#include "simd.h"
#include <math.h>

enum { AQ = 6, AK = 16 };  // query rows per block, keys per packed panel

size_t ek_attention_scratch(int nq, int p0, int dk) {
    size_t n = ((size_t)(p0 + nq) + AK - 1) / AK * AK;
    return n * (size_t)dk + (size_t)AQ * n;
}

/// Keys 0..n-1 into panels of 16 keys, each stored d-major (kt[p][d][16]); keys past n are zero.
static void pack_keys(int n, int dk, const float *k, int ldk, float *kt) {
    int panels = (n + AK - 1) / AK;
    for (int p = 0; p < panels; p++) {
        float *dst = kt + (size_t)p * dk * AK;
        int rows = n - p * AK < AK ? n - p * AK : AK;
        for (int r = 0; r < rows; r++) {
            const float *src = k + (size_t)(p * AK + r) * ldk;
            for (int d = 0; d < dk; d++) dst[d * AK + r] = src[d];
        }
        for (int r = rows; r < AK; r++)
            for (int d = 0; d < dk; d++) dst[d * AK + r] = 0;
    }
}

/// s[i][p*16 .. p*16+16) = scale * q_i . k_j for mr query rows and `panels` key panels.
EK_INLINE void scores_block(const int mr, int panels, int dk, float scale, const float *q, int ldq,
                            const float *kt, float *s, int lds) {
    for (int p = 0; p < panels; p++) {
        const float *kp = kt + (size_t)p * dk * AK;
        v8 c0[AQ], c1[AQ];
        for (int i = 0; i < mr; i++) { c0[i] = (v8){0}; c1[i] = (v8){0}; }
        for (int d = 0; d < dk; d++) {
            v8 b0 = load8(kp + d * AK), b1 = load8(kp + d * AK + 8);
            for (int i = 0; i < mr; i++) {
                v8 a = splat8(q[(size_t)i * ldq + d]);
                c0[i] += a * b0;
                c1[i] += a * b1;
            }
        }
        for (int i = 0; i < mr; i++) {
            store8(s + (size_t)i * lds + p * AK, c0[i] * scale);
            store8(s + (size_t)i * lds + p * AK + 8, c1[i] * scale);
        }
    }
}

/// Row s[0..n) -> e^(s - max) for j < valid, 0 for valid <= j < n (n a multiple of 8);
/// returns 1 / sum.
EK_INLINE float softmax_row(float *s, int valid, int n) {
    v8 vmax = (v8){0} - INFINITY;
    int j = 0;
    for (; j + 8 <= valid; j += 8) {
        v8 x = load8(s + j);
        vmax = __builtin_elementwise_max(x, vmax);
    }
    float mx = vmax[0];
    for (int l = 1; l < 8; l++) mx = vmax[l] > mx ? vmax[l] : mx;
    for (; j < valid; j++) mx = s[j] > mx ? s[j] : mx;
    v8 vsum = {0};
    for (j = 0; j + 8 <= valid; j += 8) {
        v8 e;
        EXP8_NONPOSITIVE(load8(s + j) - mx, e);
        store8(s + j, e);
        vsum += e;
    }
    if (j < valid) {
        // The last partial vector: lanes at or past `valid` are masked to zero.
        v8 x = load8(s + j) - mx, e;
        v8i lane = (v8i){0, 1, 2, 3, 4, 5, 6, 7} + j;
        v8i keep = lane < valid;
        x = (v8)((v8i)x & keep);
        EXP8_NONPOSITIVE(x, e);
        e = (v8)((v8i)e & keep);
        store8(s + j, e);
        vsum += e;
        j += 8;
    }
    for (; j < n; j += 8) store8(s + j, (v8){0});
    return 1.0f / hsum8(vsum);
}

/// out[i][0 .. 8W) = inv[i] * sum_j<n p[i][j] v[j][0 .. 8W) for mr rows, W = 1 or 2 vectors.
EK_INLINE void values_block(const int mr, const int W, int n, const float *p, int ldp, const float *v, int ldv,
                            const float *inv, float *out, int ldo) {
    v8 c0[AQ], c1[AQ];
    for (int i = 0; i < mr; i++) { c0[i] = (v8){0}; c1[i] = (v8){0}; }
    for (int j = 0; j < n; j++) {
        const float *vj = v + (size_t)j * ldv;
        v8 b0 = load8(vj), b1 = W == 2 ? load8(vj + 8) : (v8){0};
        for (int i = 0; i < mr; i++) {
            v8 a = splat8(p[(size_t)i * ldp + j]);
            c0[i] += a * b0;
            if (W == 2) c1[i] += a * b1;
        }
    }
    for (int i = 0; i < mr; i++) {
        store8(out + (size_t)i * ldo, c0[i] * inv[i]);
        if (W == 2) store8(out + (size_t)i * ldo + 8, c1[i] * inv[i]);
    }
}

/// One block of mr query rows (local rows i0 ..), all of it.
EK_INLINE void attend_block(const int mr, int i0, int p0, int dk, int dv, float scale, const float *q, int ldq,
                            const float *kt, const float *v, int ldv, float *out, int ldo, float *s, int lds) {
    int keys = p0 + i0 + mr;                       // causal: the last row sees keys 0 .. keys-1
    int panels = (keys + AK - 1) / AK;
    int n = panels * AK;
    scores_block(mr, panels, dk, scale, q + (size_t)i0 * ldq, ldq, kt, s, lds);
    float inv[AQ];
    for (int i = 0; i < mr; i++) inv[i] = softmax_row(s + (size_t)i * lds, p0 + i0 + i + 1, n);
    float *o = out + (size_t)i0 * ldo;
    int d = 0;
    for (; d + 16 <= dv; d += 16) values_block(mr, 2, keys, s, lds, v + d, ldv, inv, o + d, ldo);
    if (d + 8 <= dv) { values_block(mr, 1, keys, s, lds, v + d, ldv, inv, o + d, ldo); d += 8; }
    for (; d < dv; d++) {
        for (int i = 0; i < mr; i++) {
            const float *pi = s + (size_t)i * lds;
            float acc = 0;
            for (int j = 0; j < keys; j++) acc += pi[j] * v[(size_t)j * ldv + d];
            o[(size_t)i * ldo + d] = acc * inv[i];
        }
    }
}

EK_CLONES void ek_attention(int nq, int p0, int dk, int dv, float scale,
                            const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                            float *out, int ldo, float *scratch) {
    if (nq <= 2) {
        // Decode: packing the keys would move every key once per query row, as much work as
        // the product itself; the scores are dot products straight on the key rows instead.
        float *s = scratch;
        for (int i = 0; i < nq; i++) {
            int keys = p0 + i + 1, n = (keys + 7) / 8 * 8;
            const float *qi = q + (size_t)i * ldq;
            for (int j = 0; j < keys; j++) s[j] = dot_inline(qi, k + (size_t)j * ldk, dk) * scale;
            float inv = softmax_row(s, keys, n);
            float *o = out + (size_t)i * ldo;
            int d = 0;
            for (; d + 16 <= dv; d += 16) values_block(1, 2, keys, s, 0, v + d, ldv, &inv, o + d, ldo);
            if (d + 8 <= dv) { values_block(1, 1, keys, s, 0, v + d, ldv, &inv, o + d, ldo); d += 8; }
            for (; d < dv; d++) {
                float acc = 0;
                for (int j = 0; j < keys; j++) acc += s[j] * v[(size_t)j * ldv + d];
                o[d] = acc * inv;
            }
        }
        return;
    }
    int total = p0 + nq;
    int lds = (total + AK - 1) / AK * AK;
    float *kt = scratch, *s = scratch + (size_t)lds * dk;
    pack_keys(total, dk, k, ldk, kt);
    for (int i0 = 0; i0 < nq; i0 += AQ) {
        int mr = nq - i0 < AQ ? nq - i0 : AQ;
        switch (mr) {
        case 6: attend_block(6, i0, p0, dk, dv, scale, q, ldq, kt, v, ldv, out, ldo, s, lds); break;
        case 5: attend_block(5, i0, p0, dk, dv, scale, q, ldq, kt, v, ldv, out, ldo, s, lds); break;
        case 4: attend_block(4, i0, p0, dk, dv, scale, q, ldq, kt, v, ldv, out, ldo, s, lds); break;
        case 3: attend_block(3, i0, p0, dk, dv, scale, q, ldq, kt, v, ldv, out, ldo, s, lds); break;
        case 2: attend_block(2, i0, p0, dk, dv, scale, q, ldq, kt, v, ldv, out, ldo, s, lds); break;
        default: attend_block(1, i0, p0, dk, dv, scale, q, ldq, kt, v, ldv, out, ldo, s, lds); break;
        }
    }
}
