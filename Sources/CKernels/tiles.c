#include "tiles.h"
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define DSC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DSC_CLONES
#endif

static inline float t_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t t_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float t_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t em = h & 0x7FFF;
    uint32_t scaled = t_f2u(t_u2f(em << 13) * t_u2f(0x77800000));
    uint32_t special = 0x7F800000 | ((em & 0x3FF) << 13);
    return t_u2f((em >= 0x7C00 ? special : scaled) | sign);
}

/// E4M3FN code → f32 (NaN codes 0x7F/0xFF give a quiet NaN with their sign).
static inline float t_e4m3(uint8_t c) {
    uint32_t sign = (uint32_t)(c & 0x80) << 24;
    uint32_t em = c & 0x7F;
    // Treat as a float with 4 exponent bits / 3 mantissa bits, rescaled by 2^(127-7) exactly.
    uint32_t scaled = t_f2u(t_u2f(em << 20) * t_u2f(0x7B800000));  // × 2^120
    return t_u2f((em == 0x7F ? 0x7FC00000u : scaled) | sign);
}

/// E5M2 code → f32 (the F16 with the low byte zero).
static inline float t_e5m2(uint8_t c) { return t_f16((uint16_t)c << 8); }

DSC_CLONES void dsc_widen_bf16_f32(const uint16_t *src, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = t_u2f((uint32_t)src[i] << 16);
}

DSC_CLONES void dsc_widen_f16_f32(const uint16_t *src, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = t_f16(src[i]);
}

DSC_CLONES void dsc_decode_i8_f32(const int8_t *src, size_t n, float scale, float zero_point, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = ((float)src[i] - zero_point) * scale;
}

DSC_CLONES void dsc_decode_e5m2_f32(const uint8_t *src, size_t n, float scale, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = t_e5m2(src[i]) * scale;
}

DSC_CLONES void dsc_decode_e4m3_f32(const uint8_t *src, size_t n, float scale, float zero_point, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = (t_e4m3(src[i]) - zero_point) * scale;
}
