// Hot inner loops of dsconvert's FP8 quantizer, in C so that the compiler can emit AVX-512 /
// AVX2 code selected at run time (target_clones), with an SSE2 fallback. Each function computes
// exactly what the Swift reference in Sources/Numerics (FloatBits) computes, element by element;
// the exhaustive Numerics tests check both against ml_dtypes.
#ifndef DSCONVERT_CKERNELS_H
#define DSCONVERT_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// max over i < n of (bits(f32(src[i])) & 0x7FFFFFFF): the amax as float bits; NaN sorts above inf.
uint32_t dsc_absmax_bf16(const uint16_t *src, size_t n);
uint32_t dsc_absmax_f16(const uint16_t *src, size_t n);
uint32_t dsc_absmax_f32(const float *src, size_t n);

/// dst[i] = E4M3FN(clamp(f32(src[i]) / scale, -448, 448)), round to nearest even (true f32
/// division); NaN input gives 0x7F | sign.
void dsc_quantize_e4m3_bf16(const uint16_t *src, size_t n, float scale, uint8_t *dst);
void dsc_quantize_e4m3_f16(const uint16_t *src, size_t n, float scale, uint8_t *dst);
void dsc_quantize_e4m3_f32(const float *src, size_t n, float scale, uint8_t *dst);

/// out[i] = round_to(T, f32(E4M3FN src[i]) × scale) (round to nearest even), T = BF16, F16 or F32.
/// NaN codes (0x7F, 0xFF) give the quiet NaN with their sign.
void dsc_dequantize_e4m3_bf16(const uint8_t *src, size_t n, float scale, uint16_t *out);
void dsc_dequantize_e4m3_f16(const uint8_t *src, size_t n, float scale, uint16_t *out);
void dsc_dequantize_e4m3_f32(const uint8_t *src, size_t n, float scale, float *out);

#endif
