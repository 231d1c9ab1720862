// Serial tile decoders for the weight codecs: one run of `n` consecutive stored elements of a
// row to f32, with the run's scale (and zero point). Callers split rows at scale-block edges and
// parallelise over tiles themselves.
#ifndef DSCONVERT_TILES_H
#define DSCONVERT_TILES_H

#include <stddef.h>
#include <stdint.h>

/// dst[i] = f32(src[i]) (exact widening).
void dsc_widen_bf16_f32(const uint16_t *src, size_t n, float *dst);
void dsc_widen_f16_f32(const uint16_t *src, size_t n, float *dst);

/// dst[i] = (f32(src[i]) - zero_point) × scale, in f32 (one rounding: the product).
void dsc_decode_i8_f32(const int8_t *src, size_t n, float scale, float zero_point, float *dst);

/// dst[i] = f32(E5M2 src[i]) × scale in f32.
void dsc_decode_e5m2_f32(const uint8_t *src, size_t n, float scale, float *dst);

/// dst[i] = (f32(E4M3FN src[i]) - zero_point) × scale in f32 (zero_point 0 for symmetric).
void dsc_decode_e4m3_f32(const uint8_t *src, size_t n, float scale, float zero_point, float *dst);

#endif
