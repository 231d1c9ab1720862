// The vector types, clone attribute and small inline helpers shared by the kernel files
// (kernels.c: products and element-wise ops; attention.c: attention). Private to the target.
#ifndef DSCONVERT_EK_SIMD_H
#define DSCONVERT_EK_SIMD_H

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
/// All 8 lanes = x, as one broadcast ((v8){0} + x is a scalar add then a broadcast: without
/// -fno-signed-zeros the compiler may not drop the + 0).
#define splat8(x) ({ float s8_ = (x); (v8){s8_, s8_, s8_, s8_, s8_, s8_, s8_, s8_}; })
#define hsum8(v) ((((v)[0] + (v)[4]) + ((v)[1] + (v)[5])) + (((v)[2] + (v)[6]) + ((v)[3] + (v)[7])))

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

#endif
