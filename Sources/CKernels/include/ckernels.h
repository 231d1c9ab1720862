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

/// Index of the first E4M3FN NaN code (0x7F or 0xFF) among the n bytes of src, n when none.
size_t dsc_find_e4m3_nan(const uint8_t *src, size_t n);

// ---- compressed-tensors per-tensor / per-channel FP8 and INT8 (CompressedTensorsQuantizer).
// Serial, tile-level: `rows` rows of `cols` elements, row r at `src + r * ld` (leading dimensions
// in elements); the scale of row r is `scales[r * scale_step]` (scale_step 0: one scale for the
// whole tile, 1: one per row). Scales are f32 values already rounded to the model dtype D.

/// amax[r] = dsc_absmax_T(row r, cols) for each of `rows` rows.
void dsc_rows_absmax_bf16(const uint16_t *src, size_t rows, size_t cols, size_t ld, uint32_t *amax);
void dsc_rows_absmax_f16(const uint16_t *src, size_t rows, size_t cols, size_t ld, uint32_t *amax);
void dsc_rows_absmax_f32(const float *src, size_t rows, size_t cols, size_t ld, uint32_t *amax);

/// FP8, D = the source dtype: dst = E4M3FN(clamp(D(f32(src) / scale) + 0, ±448)), every rounding
/// to nearest even; the `+ 0` makes -0 quotients +0 (compressed-tensors' zero point).
void dsc_ct_quantize_e4m3_bf16(const uint16_t *src, size_t rows, size_t cols, size_t ld, const float *scales, size_t scale_step, uint8_t *dst, size_t ld_dst);
void dsc_ct_quantize_e4m3_f16(const uint16_t *src, size_t rows, size_t cols, size_t ld, const float *scales, size_t scale_step, uint8_t *dst, size_t ld_dst);
void dsc_ct_quantize_e4m3_f32(const float *src, size_t rows, size_t cols, size_t ld, const float *scales, size_t scale_step, uint8_t *dst, size_t ld_dst);

/// INT8, D = the source dtype: dst = int8(round_half_even(clamp(D(f32(src) / scale), -128, 127))); NaN gives 0.
void dsc_ct_quantize_i8_bf16(const uint16_t *src, size_t rows, size_t cols, size_t ld, const float *scales, size_t scale_step, int8_t *dst, size_t ld_dst);
void dsc_ct_quantize_i8_f16(const uint16_t *src, size_t rows, size_t cols, size_t ld, const float *scales, size_t scale_step, int8_t *dst, size_t ld_dst);
void dsc_ct_quantize_i8_f32(const float *src, size_t rows, size_t cols, size_t ld, const float *scales, size_t scale_step, int8_t *dst, size_t ld_dst);

/// dsc_ct_dequantize_{Q}_{D}_{OUT}: dst = OUT(D(f32(q) × scale)), Q = e4m3 or i8, D the model
/// dtype (the scales' dtype), OUT the target; every rounding to nearest even.
#define DSC_CT_DEQUANTIZE_DECL(Q, QT, D, OUT, OT) \
    void dsc_ct_dequantize_##Q##_##D##_##OUT(const QT *q, size_t rows, size_t cols, size_t ld, const float *scales, size_t scale_step, OT *dst, size_t ld_dst);
#define DSC_CT_DEQUANTIZE_DECLS(Q, QT) \
    DSC_CT_DEQUANTIZE_DECL(Q, QT, bf16, bf16, uint16_t) DSC_CT_DEQUANTIZE_DECL(Q, QT, bf16, f16, uint16_t) DSC_CT_DEQUANTIZE_DECL(Q, QT, bf16, f32, float) \
    DSC_CT_DEQUANTIZE_DECL(Q, QT, f16, bf16, uint16_t) DSC_CT_DEQUANTIZE_DECL(Q, QT, f16, f16, uint16_t) DSC_CT_DEQUANTIZE_DECL(Q, QT, f16, f32, float) \
    DSC_CT_DEQUANTIZE_DECL(Q, QT, f32, bf16, uint16_t) DSC_CT_DEQUANTIZE_DECL(Q, QT, f32, f16, uint16_t) DSC_CT_DEQUANTIZE_DECL(Q, QT, f32, f32, float)
DSC_CT_DEQUANTIZE_DECLS(e4m3, uint8_t)
DSC_CT_DEQUANTIZE_DECLS(i8, int8_t)

#endif
