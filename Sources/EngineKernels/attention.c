// Causal attention of one head over a cached sequence (ek_attention, declared in enginekernels.h).
#include "enginekernels.h"
#include "simd.h"
#include <math.h>

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
