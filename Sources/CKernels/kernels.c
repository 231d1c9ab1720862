#include "ckernels.h"
#include "tiles.h"
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define DSC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DSC_CLONES
#endif

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t em = h & 0x7FFF;
    uint32_t scaled = f2u(u2f(em << 13) * u2f(0x77800000));  // 2^112 rescales normals and subnormals exactly
    uint32_t special = 0x7F800000 | ((em & 0x3FF) << 13);
    return u2f((em >= 0x7C00 ? special : scaled) | sign);
}

/// E4M3FN code of x, clamped to ±448 first; NaN → 0x7F | sign.
static inline uint8_t e4m3_saturating(float x) {
    uint32_t b = f2u(x);
    uint32_t sign = (b >> 24) & 0x80;
    uint32_t a = b & 0x7FFFFFFF;
    uint32_t nan = a > 0x7F800000;
    uint32_t c = a > 0x43E00000 ? 0x43E00000 : a;
    uint32_t sub = f2u(u2f(c) + 16384.0f) - 0x46800000;       // rounds to 2^-9 steps
    uint32_t norm = ((c + 0x7FFFF + ((c >> 20) & 1)) >> 20) - 960;  // RNE to 3 mantissa bits, rebias
    uint32_t code = c < 0x3C800000 ? sub : norm;
    code = nan ? 0x7F : code;
    return (uint8_t)(code | sign);
}

#define ABSMAX(NAME, T, LOAD)                                        \
    DSC_CLONES uint32_t NAME(const T *src, size_t n) {               \
        uint32_t m = 0;                                              \
        for (size_t i = 0; i < n; i++) {                             \
            uint32_t a = f2u(LOAD(src[i])) & 0x7FFFFFFF;              \
            m = a > m ? a : m;                                       \
        }                                                            \
        return m;                                                    \
    }

#define QUANTIZE(NAME, T, LOAD)                                              \
    DSC_CLONES void NAME(const T *src, size_t n, float scale, uint8_t *dst) { \
        for (size_t i = 0; i < n; i++) dst[i] = e4m3_saturating(LOAD(src[i]) / scale); \
    }

#define ID(x) (x)

ABSMAX(dsc_absmax_bf16, uint16_t, bf16_to_f32)
ABSMAX(dsc_absmax_f16, uint16_t, f16_to_f32)
ABSMAX(dsc_absmax_f32, float, ID)
QUANTIZE(dsc_quantize_e4m3_bf16, uint16_t, bf16_to_f32)
QUANTIZE(dsc_quantize_e4m3_f16, uint16_t, f16_to_f32)
QUANTIZE(dsc_quantize_e4m3_f32, float, ID)

/// Exact f32 value of an E4M3FN code, branch-free (vectorisable).
static inline float e4m3_to_f32(uint8_t c) {
    uint32_t sign = (uint32_t)(c & 0x80) << 24;
    uint32_t e = (c >> 3) & 0xF, m = c & 7;
    float sub = (float)m * 0x1p-9f;                                  // subnormal: m × 2^-9
    uint32_t norm = ((e + 120) << 23) | (m << 20);                   // rebias 7 -> 127
    uint32_t bits = e == 0 ? f2u(sub) : norm;
    bits = (c & 0x7F) == 0x7F ? 0x7FC00000 : bits;                    // NaN
    return u2f(bits | sign);
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t b = f2u(f);
    uint32_t r = (b + 0x7FFF + ((b >> 16) & 1)) >> 16;
    uint32_t nan = ((b >> 16) & 0x8000) | 0x7FC0;
    return (uint16_t)((b & 0x7FFFFFFF) > 0x7F800000 ? nan : r);
}

/// f32 -> f16 bits, round to nearest even, overflow to inf; NaN keeps its top payload bits (numpy).
static inline uint16_t f32_to_f16(float f) {
    uint32_t b = f2u(f);
    uint32_t sign = (b >> 16) & 0x8000;
    uint32_t a = b & 0x7FFFFFFF;
    uint32_t sub = f2u(u2f(a) + 0.5f) - 0x3F000000;
    uint32_t norm = (a + 0xC8000FFF + ((a >> 13) & 1)) >> 13;
    uint32_t r = a < 0x38800000 ? sub : norm;
    r = a >= 0x47800000 ? 0x7C00 : r;
    uint32_t nanv = 0x7C00 + ((a & 0x7FFFFF) >> 13);
    nanv = nanv == 0x7C00 ? 0x7C01 : nanv;
    r = a > 0x7F800000 ? nanv : r;
    return (uint16_t)(r | sign);
}

DSC_CLONES void dsc_dequantize_e4m3_bf16(const uint8_t *src, size_t n, float scale, uint16_t *out) {
    for (size_t i = 0; i < n; i++) out[i] = f32_to_bf16(e4m3_to_f32(src[i]) * scale);
}
DSC_CLONES void dsc_dequantize_e4m3_f16(const uint8_t *src, size_t n, float scale, uint16_t *out) {
    for (size_t i = 0; i < n; i++) out[i] = f32_to_f16(e4m3_to_f32(src[i]) * scale);
}
DSC_CLONES void dsc_dequantize_e4m3_f32(const uint8_t *src, size_t n, float scale, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = e4m3_to_f32(src[i]) * scale;
}

/// Index of the first E4M3FN NaN code (0x7F or 0xFF) among n bytes, or n when there is none.
/// Chunks are OR-reduced without an early exit (so the loop vectorises); only a chunk that holds a
/// NaN code is searched byte by byte.
DSC_CLONES size_t dsc_find_e4m3_nan(const uint8_t *src, size_t n) {
    const size_t chunk = 4096;
    for (size_t base = 0; base < n; base += chunk) {
        size_t end = base + chunk < n ? base + chunk : n;
        uint8_t any = 0;
        for (size_t i = base; i < end; i++) any |= (uint8_t)((src[i] & 0x7F) == 0x7F);
        if (any) {
            for (size_t i = base; i < end; i++) if ((src[i] & 0x7F) == 0x7F) return i;
        }
    }
    return n;
}

// ---------------------------------------------------------------- compressed-tensors
// Per-tensor / per-channel symmetric FP8 and INT8 (see CompressedTensorsQuantizer.swift for the
// arithmetic). Serial and tile-level: rows × cols elements with explicit leading dimensions
// (in elements); the scale of row r is scales[r * scale_step] (0: one scale for the tile).

#define ROWS_ABSMAX(NAME, T, ROW)                                                            \
    void NAME(const T *src, size_t rows, size_t cols, size_t ld, uint32_t *amax) {           \
        for (size_t r = 0; r < rows; r++) amax[r] = ROW(src + r * ld, cols);                 \
    }
ROWS_ABSMAX(dsc_rows_absmax_bf16, uint16_t, dsc_absmax_bf16)
ROWS_ABSMAX(dsc_rows_absmax_f16, uint16_t, dsc_absmax_f16)
ROWS_ABSMAX(dsc_rows_absmax_f32, float, dsc_absmax_f32)

static inline float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }
static inline float round_f16(float x) { return f16_to_f32(f32_to_f16(x)); }

/// INT8 code of x (already in the model dtype): round half to even of clamp(x, -128, 127); NaN → 0.
static inline int8_t int8_saturating(float x) {
    float c = x < -128.0f ? -128.0f : x;
    c = c > 127.0f ? 127.0f : c;
    // Adding and removing 1.5 × 2^23 rounds |c| < 2^22 to an integer, nearest even (default
    // rounding mode; not folded without -ffast-math). Vectorises on every target, unlike rintf.
    float r = (c + 12582912.0f) - 12582912.0f;
    return x != x ? 0 : (int8_t)(int32_t)r;
}

/// FP8: E4M3(clamp(D(x / s) + 0, ±448)); the `+ 0` (compressed-tensors' zero point) turns -0 into +0.
#define CT_QUANTIZE_E4M3(NAME, T, LOAD, ROUND)                                               \
    DSC_CLONES void NAME(const T *src, size_t rows, size_t cols, size_t ld, const float *scales, \
                         size_t scale_step, uint8_t *dst, size_t ld_dst) {                   \
        for (size_t r = 0; r < rows; r++) {                                                  \
            const T *row = src + r * ld;                                                     \
            uint8_t *out = dst + r * ld_dst;                                                 \
            float s = scales[r * scale_step];                                                \
            for (size_t c = 0; c < cols; c++) out[c] = e4m3_saturating(ROUND(LOAD(row[c]) / s) + 0.0f); \
        }                                                                                    \
    }

/// INT8: int8(round_half_even(clamp(D(x / s), -128, 127))).
#define CT_QUANTIZE_I8(NAME, T, LOAD, ROUND)                                                 \
    DSC_CLONES void NAME(const T *src, size_t rows, size_t cols, size_t ld, const float *scales, \
                         size_t scale_step, int8_t *dst, size_t ld_dst) {                    \
        for (size_t r = 0; r < rows; r++) {                                                  \
            const T *row = src + r * ld;                                                     \
            int8_t *out = dst + r * ld_dst;                                                  \
            float s = scales[r * scale_step];                                                \
            for (size_t c = 0; c < cols; c++) out[c] = int8_saturating(ROUND(LOAD(row[c]) / s)); \
        }                                                                                    \
    }

CT_QUANTIZE_E4M3(dsc_ct_quantize_e4m3_bf16, uint16_t, bf16_to_f32, round_bf16)
CT_QUANTIZE_E4M3(dsc_ct_quantize_e4m3_f16, uint16_t, f16_to_f32, round_f16)
CT_QUANTIZE_E4M3(dsc_ct_quantize_e4m3_f32, float, ID, ID)
CT_QUANTIZE_I8(dsc_ct_quantize_i8_bf16, uint16_t, bf16_to_f32, round_bf16)
CT_QUANTIZE_I8(dsc_ct_quantize_i8_f16, uint16_t, f16_to_f32, round_f16)
CT_QUANTIZE_I8(dsc_ct_quantize_i8_f32, float, ID, ID)

static inline float i8_to_f32(int8_t v) { return (float)v; }

/// out = OUT(D(f32(q) × s)).
#define CT_DEQUANTIZE(NAME, QT, QLOAD, ROUND, OT, STORE)                                      \
    DSC_CLONES void NAME(const QT *q, size_t rows, size_t cols, size_t ld, const float *scales, \
                         size_t scale_step, OT *dst, size_t ld_dst) {                         \
        for (size_t r = 0; r < rows; r++) {                                                   \
            const QT *row = q + r * ld;                                                       \
            OT *out = dst + r * ld_dst;                                                       \
            float s = scales[r * scale_step];                                                 \
            for (size_t c = 0; c < cols; c++) out[c] = STORE(ROUND(QLOAD(row[c]) * s));       \
        }                                                                                     \
    }

#define CT_DEQUANTIZE_ALL(Q, QT, QLOAD)                                                        \
    CT_DEQUANTIZE(dsc_ct_dequantize_##Q##_bf16_bf16, QT, QLOAD, ID, uint16_t, f32_to_bf16)     \
    CT_DEQUANTIZE(dsc_ct_dequantize_##Q##_bf16_f16, QT, QLOAD, round_bf16, uint16_t, f32_to_f16) \
    CT_DEQUANTIZE(dsc_ct_dequantize_##Q##_bf16_f32, QT, QLOAD, round_bf16, float, ID)          \
    CT_DEQUANTIZE(dsc_ct_dequantize_##Q##_f16_bf16, QT, QLOAD, round_f16, uint16_t, f32_to_bf16) \
    CT_DEQUANTIZE(dsc_ct_dequantize_##Q##_f16_f16, QT, QLOAD, ID, uint16_t, f32_to_f16)        \
    CT_DEQUANTIZE(dsc_ct_dequantize_##Q##_f16_f32, QT, QLOAD, round_f16, float, ID)            \
    CT_DEQUANTIZE(dsc_ct_dequantize_##Q##_f32_bf16, QT, QLOAD, ID, uint16_t, f32_to_bf16)      \
    CT_DEQUANTIZE(dsc_ct_dequantize_##Q##_f32_f16, QT, QLOAD, ID, uint16_t, f32_to_f16)        \
    CT_DEQUANTIZE(dsc_ct_dequantize_##Q##_f32_f32, QT, QLOAD, ID, float, ID)

CT_DEQUANTIZE_ALL(e4m3, uint8_t, e4m3_to_f32)
CT_DEQUANTIZE_ALL(i8, int8_t, i8_to_f32)

// Serial tile decoders for the weight codecs (tiles.h), on the conversions above.

DSC_CLONES void dsc_widen_bf16_f32(const uint16_t *src, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}

DSC_CLONES void dsc_widen_f16_f32(const uint16_t *src, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(src[i]);
}

DSC_CLONES void dsc_decode_i8_f32(const int8_t *src, size_t n, float scale, float zero_point, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = ((float)src[i] - zero_point) * scale;
}

/// E5M2 is the F16 with the low byte zero.
DSC_CLONES void dsc_decode_e5m2_f32(const uint8_t *src, size_t n, float scale, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32((uint16_t)src[i] << 8) * scale;
}

DSC_CLONES void dsc_decode_e4m3_f32(const uint8_t *src, size_t n, float scale, float zero_point, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = (e4m3_to_f32(src[i]) - zero_point) * scale;
}
