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

#endif
