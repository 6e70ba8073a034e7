// stream_avx2.cpp -- AVX2 + FMA kernels of the streaming GEMM paths (stream.cpp,
// "small M" and "small K"): the shapes of a fully connected layer trained with
// a small mini-batch, where one operand is a big weight matrix used only a few
// times per value. Same contracts as the portable twins in stream_ref.cpp
// (gemm_internal.h); see there for what each computes.
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N; [j0, j1) the
// columns (nn, nt) or [i0, i1) the rows (tn) of C one call computes.
//
// Why no packing: with M (or K) about 10, each weight is used ~10 times, so
// the GEMM is bound by reading the weights from L3/DRAM, where the tiled path's
// strided reads of 16-column panels of a large matrix are slow. These kernels
// read every row of the weight matrix front to back (a few rows at a time),
// which the hardware prefetchers stream at full speed.
//
// Each kernel also prefetches the rows it will read next (the next four rows of
// B, the next pair of rows of B or C): with ~10 FMAs per weight there is too
// little work to hide the wait for each new row. (A prefetch past the end of a
// matrix is harmless: prefetches never fault.)
//
// Like ukernel_avx2.cpp this file is compiled with -mavx2 -mfma and must not
// emit any function another file could also emit (no <cmath>, no std::min):
// everything but the three entry points has internal linkage.
#include <immintrin.h>

#include "common.h"
#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

namespace {

inline float hsum(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// Rows [0, M) of C, columns [j0, j1): c(r, j) += sum over p in [p0, p0 + 4) of
// a(r, p) * b(p, j), the four p in order, one FMA each.
void nn_four(int64_t M, int64_t j0, int64_t j1, const float* a, int64_t lda, int64_t p0,
             const float* B, int64_t ldb, float* C, int64_t ldc, bool prefetch) {
    const float* b0 = B + p0 * ldb;
    const float* b1 = b0 + ldb;
    const float* b2 = b1 + ldb;
    const float* b3 = b2 + ldb;
    const int64_t ahead = 4 * ldb;  // the same columns of the next four rows
    int64_t j = j0;
    for (; j + 16 <= j1; j += 16) {
        if (prefetch) {  // B streams from L3 or DRAM: ask for the next rows' line now
            _mm_prefetch(reinterpret_cast<const char*>(b0 + ahead + j), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(b1 + ahead + j), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(b2 + ahead + j), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(b3 + ahead + j), _MM_HINT_T0);
        }
        const __m256 x0 = _mm256_loadu_ps(b0 + j), y0 = _mm256_loadu_ps(b0 + j + 8);
        const __m256 x1 = _mm256_loadu_ps(b1 + j), y1 = _mm256_loadu_ps(b1 + j + 8);
        const __m256 x2 = _mm256_loadu_ps(b2 + j), y2 = _mm256_loadu_ps(b2 + j + 8);
        const __m256 x3 = _mm256_loadu_ps(b3 + j), y3 = _mm256_loadu_ps(b3 + j + 8);
        for (int64_t r = 0; r < M; ++r) {
            const float* ar = a + r * lda + p0;
            float* c = C + r * ldc + j;
            const __m256 a0 = _mm256_broadcast_ss(ar), a1 = _mm256_broadcast_ss(ar + 1);
            const __m256 a2 = _mm256_broadcast_ss(ar + 2), a3 = _mm256_broadcast_ss(ar + 3);
            __m256 lo = _mm256_loadu_ps(c), hi = _mm256_loadu_ps(c + 8);
            lo = _mm256_fmadd_ps(a0, x0, lo);
            hi = _mm256_fmadd_ps(a0, y0, hi);
            lo = _mm256_fmadd_ps(a1, x1, lo);
            hi = _mm256_fmadd_ps(a1, y1, hi);
            lo = _mm256_fmadd_ps(a2, x2, lo);
            hi = _mm256_fmadd_ps(a2, y2, hi);
            lo = _mm256_fmadd_ps(a3, x3, lo);
            hi = _mm256_fmadd_ps(a3, y3, hi);
            _mm256_storeu_ps(c, lo);
            _mm256_storeu_ps(c + 8, hi);
        }
    }
    for (; j < j1; ++j) {  // the last N % 16 columns (only at the end of C)
        for (int64_t r = 0; r < M; ++r) {
            const float* ar = a + r * lda + p0;
            float* c = C + r * ldc + j;
            float v = *c;
            v = __builtin_fmaf(ar[0], b0[j], v);
            v = __builtin_fmaf(ar[1], b1[j], v);
            v = __builtin_fmaf(ar[2], b2[j], v);
            v = __builtin_fmaf(ar[3], b3[j], v);
            *c = v;
        }
    }
}

// The same for one p.
void nn_one(int64_t M, int64_t j0, int64_t j1, const float* a, int64_t lda, int64_t p,
            const float* B, int64_t ldb, float* C, int64_t ldc) {
    const float* b = B + p * ldb;
    for (int64_t r = 0; r < M; ++r) {
        const float ar = a[r * lda + p];
        const __m256 av = _mm256_set1_ps(ar);
        float* c = C + r * ldc;
        int64_t j = j0;
        for (; j + 16 <= j1; j += 16) {
            _mm256_storeu_ps(c + j, _mm256_fmadd_ps(av, _mm256_loadu_ps(b + j),
                                                    _mm256_loadu_ps(c + j)));
            _mm256_storeu_ps(c + j + 8, _mm256_fmadd_ps(av, _mm256_loadu_ps(b + j + 8),
                                                        _mm256_loadu_ps(c + j + 8)));
        }
        for (; j < j1; ++j) c[j] = __builtin_fmaf(ar, b[j], c[j]);
    }
}

// mi x nj dot products (mi <= 4 rows of a, nj <= 2 rows of B), K8 = K rounded
// down to 8 in 8 lanes each, then the lanes summed and the k >= K8 tail added.
template <int MI, int NJ>
void nt_tile(int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
             float* c, int64_t ldc) {
    __m256 acc[NJ][MI];
    for (int q = 0; q < NJ; ++q)
        for (int i = 0; i < MI; ++i) acc[q][i] = _mm256_setzero_ps();
    const int64_t K8 = K & ~int64_t(7);
    for (int64_t p = 0; p < K8; p += 8) {
        if (MI == 4 && (p & 15) == 0) {  // the B rows after these, one line per 16 values
            for (int q = 0; q < NJ; ++q)
                _mm_prefetch(reinterpret_cast<const char*>(b + (NJ + q) * ldb + p), _MM_HINT_T0);
        }
        __m256 bv[NJ];
        for (int q = 0; q < NJ; ++q) bv[q] = _mm256_loadu_ps(b + q * ldb + p);
        for (int i = 0; i < MI; ++i) {
            const __m256 av = _mm256_loadu_ps(a + i * lda + p);
            for (int q = 0; q < NJ; ++q) acc[q][i] = _mm256_fmadd_ps(av, bv[q], acc[q][i]);
        }
    }
    for (int q = 0; q < NJ; ++q) {
        for (int i = 0; i < MI; ++i) {
            float s = hsum(acc[q][i]);
            for (int64_t p = K8; p < K; ++p) s = __builtin_fmaf(a[i * lda + p], b[q * ldb + p], s);
            float* cij = c + i * ldc + q;
            *cij = (beta == 0.0f) ? s : __builtin_fmaf(beta, *cij, s);
        }
    }
}

template <int NJ>
void nt_rows(int64_t M, int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb,
             float beta, float* c, int64_t ldc) {
    int64_t i = 0;
    for (; i + 4 <= M; i += 4) nt_tile<4, NJ>(K, a + i * lda, lda, b, ldb, beta, c + i * ldc, ldc);
    switch (M - i) {
        case 3: nt_tile<3, NJ>(K, a + i * lda, lda, b, ldb, beta, c + i * ldc, ldc); break;
        case 2: nt_tile<2, NJ>(K, a + i * lda, lda, b, ldb, beta, c + i * ldc, ldc); break;
        case 1: nt_tile<1, NJ>(K, a + i * lda, lda, b, ldb, beta, c + i * ldc, ldc); break;
        default: break;
    }
}

// Rows i, i+1 (R of them) of C, columns [j0, j1): c = beta * c (or 0) + sum over
// p < K of at(p, i) * b(p, :), p in order.
template <int R>
void tn_rows(int64_t K, int64_t i, int64_t j0, int64_t j1, const float* at, int64_t ldat,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    float* c[R];
    for (int r = 0; r < R; ++r) c[r] = C + (i + r) * ldc;
    const __m256 bv = _mm256_set1_ps(beta);
    int64_t j = j0;
    for (; j + 32 <= j1; j += 32) {
        for (int r = 0; r < R; ++r) {  // C (the weights, updated in place) streams from memory
            _mm_prefetch(reinterpret_cast<const char*>(c[r] + 2 * ldc + j), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(c[r] + 2 * ldc + j + 16), _MM_HINT_T0);
        }
        __m256 acc[R][4];
        for (int r = 0; r < R; ++r)
            for (int v = 0; v < 4; ++v)
                acc[r][v] = (beta == 0.0f) ? _mm256_setzero_ps()
                                           : _mm256_mul_ps(bv, _mm256_loadu_ps(c[r] + j + 8 * v));
        for (int64_t p = 0; p < K; ++p) {
            const float* bp = B + p * ldb + j;
            const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
            const __m256 b2 = _mm256_loadu_ps(bp + 16), b3 = _mm256_loadu_ps(bp + 24);
            for (int r = 0; r < R; ++r) {
                const __m256 av = _mm256_broadcast_ss(at + p * ldat + i + r);
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
                acc[r][2] = _mm256_fmadd_ps(av, b2, acc[r][2]);
                acc[r][3] = _mm256_fmadd_ps(av, b3, acc[r][3]);
            }
        }
        for (int r = 0; r < R; ++r)
            for (int v = 0; v < 4; ++v) _mm256_storeu_ps(c[r] + j + 8 * v, acc[r][v]);
    }
    for (; j < j1; ++j) {  // the last N % 32 columns (only at the end of C)
        for (int r = 0; r < R; ++r) {
            float s = (beta == 0.0f) ? 0.0f : beta * c[r][j];
            for (int64_t p = 0; p < K; ++p) s = __builtin_fmaf(at[p * ldat + i + r], B[p * ldb + j], s);
            c[r][j] = s;
        }
    }
}

}  // namespace

void stream_nn_avx2(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    for (int64_t jb = j0; jb < j1; jb += kStreamColumns) {
        const int64_t je = min64(j1, jb + kStreamColumns);
        for (int64_t r = 0; r < M; ++r) {
            float* c = C + r * ldc;
            for (int64_t j = jb; j < je; ++j) c[j] = (beta == 0.0f) ? 0.0f : beta * c[j];
        }
        int64_t p = 0;
        for (; p + 4 <= K; p += 4) nn_four(M, jb, je, a, lda, p, B, ldb, C, ldc, p + 8 <= K);
        for (; p < K; ++p) nn_one(M, jb, je, a, lda, p, B, ldb, C, ldc);
    }
}

void stream_nt_avx2(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    int64_t j = j0;
    for (; j + 2 <= j1; j += 2) nt_rows<2>(M, K, a, lda, B + j * ldb, ldb, beta, C + j, ldc);
    if (j < j1) nt_rows<1>(M, K, a, lda, B + j * ldb, ldb, beta, C + j, ldc);
}

void stream_tn_avx2(int64_t K, int64_t i0, int64_t i1, int64_t N, const float* at, int64_t ldat,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    for (int64_t jb = 0; jb < N; jb += kStreamColumns) {
        const int64_t je = min64(N, jb + kStreamColumns);
        int64_t i = i0;
        for (; i + 2 <= i1; i += 2) tn_rows<2>(K, i, jb, je, at, ldat, B, ldb, beta, C, ldc);
        if (i < i1) tn_rows<1>(K, i, jb, je, at, ldat, B, ldb, beta, C, ldc);
    }
}

}  // namespace gemm
}  // namespace fastcnn
