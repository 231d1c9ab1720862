// The CPU engine's hot loops: f32 matrix products on weight tiles that the codec has already
// decoded, attention over a cached sequence, and the element-wise ops around them. Compiled for
// AVX-512 / AVX2+FMA / baseline and picked at run time (target_clones). Everything is serial:
// the engine splits work between threads.
#ifndef DSCONVERT_ENGINEKERNELS_H
#define DSCONVERT_ENGINEKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Rearranges a row-major weight tile w[n][k] (n < nb rows, k < kb, row stride ldw) into the
/// panel layout ek_gemm_packed reads: panels of 16 rows, each stored k-major
/// (packed[p][k][16]); rows past nb are zero.
void ek_pack_tile(const float *w, int nb, int kb, int ldw, float *packed);

/// y[m][n] += sum_k x[m][k] * w[n][k] for m < M, n < nb, k < kb, with w packed by ek_pack_tile
/// (with set != 0, y[m][n] = the sum: y need not be initialised). x has row stride ldx, y row
/// stride ldy.
void ek_gemm_packed(int M, int nb, int kb, const float *x, int ldx, const float *packed, float *y, int ldy, int set);

/// Same product with w row-major (row stride ldw), for a few rows of x (decode).
void ek_gemm_rows(int M, int nb, int kb, const float *x, int ldx, const float *w, int ldw, float *y, int ldy, int set);

/// The same product reading a BF16 weight straight from its stored rows (row stride ldw
/// elements): each element is widened in registers as it is used, no f32 copy of W.
void ek_gemm_rows_bf16(int M, int nb, int kb, const float *x, int ldx, const uint16_t *w, long ldw,
                       float *y, int ldy, int set);

/// The same on E4M3FN codes, each decoded and multiplied by its scale (code value × scale in f32,
/// exactly what the tile decoder writes) before the product. Row n of this call is weight row
/// n0 + n; the scale of (row r, column k) is scales[(r / srows) * sstride + k / scols]: a tensor
/// scale is srows 1, sstride 0, scols >= kb; a channel scale srows 1, sstride 1; block scales
/// srows and scols the block, sstride the scale tensor's row length.
void ek_gemm_rows_e4m3(int M, int nb, int kb, const float *x, int ldx, const uint8_t *w, long ldw,
                       const float *scales, int n0, int srows, long sstride, int scols,
                       float *y, int ldy, int set);

/// sum_k a[k] * b[k].
float ek_dot(const float *a, const float *b, int n);

/// y[k] += a * x[k].
void ek_axpy(int n, float a, const float *x, float *y);

/// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i] (the mean and root as transformers' RMSNorm in
/// f32). out may be x.
void ek_rmsnorm(const float *x, const float *w, int n, float eps, float *out);

/// g[i] = silu(g[i]) * u[i].
void ek_silu_mul(float *g, const float *u, int n);

/// Causal attention of one head over one sequence.
/// q: nq query rows (row stride ldq) at positions p0 .. p0+nq-1; k: key rows 0 .. p0+nq-1 (row
/// stride ldk, dk wide); v: value rows (row stride ldv, dv wide). out row i (stride ldo) =
/// softmax_j<=p0+i(scale * q_i . k_j) . v. scratch holds ek_attention_scratch(nq, p0, dk) floats.
void ek_attention(int nq, int p0, int dk, int dv, float scale,
                  const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                  float *out, int ldo, float *scratch);

/// Floats of scratch ek_attention needs: the packed keys and one block of score rows.
size_t ek_attention_scratch(int nq, int p0, int dk);

/// log sum_i e^x[i] over n >= 1 floats, in double (max-shifted, so no exponential overflows),
/// and in *argmax the first index of the largest x[i].
double ek_log_sum_exp(const float *x, int n, int *argmax);

/// One scored position of dsconvert eval, two logit rows of n >= 1 entries: their log-sum-exps
/// (as ek_log_sum_exp), KL(softmax(ref) || softmax(cand)) in nats and each row's first argmax,
/// all in double.
void ek_compare_rows(const float *ref, const float *cand, int n, double *lse_ref, double *lse_cand,
                     double *kl, int *arg_ref, int *arg_cand);

/// glibc only (elsewhere nothing): blocks below mmap_threshold bytes come from the heap, and
/// freed heap memory is given back to the kernel only above trim_threshold (mallopt).
void ek_keep_freed_memory(int mmap_threshold, int trim_threshold);

/// Atomically adds 1 to *counter and returns its previous value (work distribution).
long ek_fetch_add(long *counter, long value);

#endif
