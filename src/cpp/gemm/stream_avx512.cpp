// stream_avx512.cpp -- AVX-512 kernels of the streaming GEMM paths (stream.cpp,
// "small M" and "small K"): a fully connected layer at a small mini-batch.
// Same contracts as the portable twins in stream_ref.cpp (gemm_internal.h)
// and the same plan as stream_avx2.cpp (read every row of the big matrix
// front to back, prefetch the next rows), with 16-float zmm vectors and
// masked loads/stores for the last columns instead of a scalar loop.
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N; [j0, j1) the
// columns (nn, nt) or [i0, i1) the rows (tn) of C one call computes.
//
// nt sums each dot product in 16 lanes, the last K % 16 values masked in,
// then adds the lanes in a fixed order (so its last bits differ from the
// 8-lane AVX2 kernel's, not between thread counts).
//
// Compiled with the AVX-512 flags; must not emit any function another file
// could also emit: everything but the three entry points has internal linkage.
#include <immintrin.h>

#include "common.h"
#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

namespace {

inline __mmask16 first_lanes(int64_t n) {
    return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u);
}

// The 16 lanes added in a fixed order: halves, then quarters, ... (written out
// rather than _mm512_reduce_add_ps, whose GCC 12 expansion warns).
inline float hsum(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// Loads and stores of 16 floats: plain, or through mask m for the last
// columns of a row (masked stores are slow on Zen 4, so only at the edges).
template <bool Masked>
inline __m512 load16(const float* p, __mmask16 m) {
    return Masked ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p);
}
template <bool Masked>
inline void store16(float* p, __mmask16 m, __m512 v) {
    if (Masked) {
        _mm512_mask_storeu_ps(p, m, v);
    } else {
        _mm512_storeu_ps(p, v);
    }
}

// Columns [j, j+16) (the first lanes of mask m when Masked) of rows [0, M) of
// C: c(r, j) += sum over p in [p0, p0 + 4) of a(r, p) * b(p, j), the four p in
// order, one FMA each; b0..b3 are rows p0..p0+3 of B.
template <bool Masked>
inline void nn_four_cols(int64_t M, int64_t j, __mmask16 m, const float* a, int64_t lda,
                         int64_t p0, const float* b0, const float* b1, const float* b2,
                         const float* b3, float* C, int64_t ldc) {
    const __m512 x0 = load16<Masked>(b0 + j, m), x1 = load16<Masked>(b1 + j, m);
    const __m512 x2 = load16<Masked>(b2 + j, m), x3 = load16<Masked>(b3 + j, m);
    for (int64_t r = 0; r < M; ++r) {
        const float* ar = a + r * lda + p0;
        float* c = C + r * ldc + j;
        __m512 v = load16<Masked>(c, m);
        v = _mm512_fmadd_ps(_mm512_set1_ps(ar[0]), x0, v);
        v = _mm512_fmadd_ps(_mm512_set1_ps(ar[1]), x1, v);
        v = _mm512_fmadd_ps(_mm512_set1_ps(ar[2]), x2, v);
        v = _mm512_fmadd_ps(_mm512_set1_ps(ar[3]), x3, v);
        store16<Masked>(c, m, v);
    }
}

// Rows [0, M) of C, columns [j0, j1): c(r, j) += sum over p in [p0, p0 + 4) of
// a(r, p) * b(p, j).
void nn_four(int64_t M, int64_t j0, int64_t j1, const float* a, int64_t lda, int64_t p0,
             const float* B, int64_t ldb, float* C, int64_t ldc, bool prefetch) {
    const float* b0 = B + p0 * ldb;
    const float* b1 = b0 + ldb;
    const float* b2 = b1 + ldb;
    const float* b3 = b2 + ldb;
    const int64_t ahead = 4 * ldb;  // the same columns of the next four rows
    int64_t j = j0;
    for (; j + 16 <= j1; j += 16) {
        if (prefetch) {
            _mm_prefetch(reinterpret_cast<const char*>(b0 + ahead + j), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(b1 + ahead + j), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(b2 + ahead + j), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(b3 + ahead + j), _MM_HINT_T0);
        }
        nn_four_cols<false>(M, j, 0xffff, a, lda, p0, b0, b1, b2, b3, C, ldc);
    }
    if (j < j1) nn_four_cols<true>(M, j, first_lanes(j1 - j), a, lda, p0, b0, b1, b2, b3, C, ldc);
}

// The same for one p.
void nn_one(int64_t M, int64_t j0, int64_t j1, const float* a, int64_t lda, int64_t p,
            const float* B, int64_t ldb, float* C, int64_t ldc) {
    const float* b = B + p * ldb;
    for (int64_t r = 0; r < M; ++r) {
        const __m512 av = _mm512_set1_ps(a[r * lda + p]);
        float* c = C + r * ldc;
        int64_t j = j0;
        for (; j + 16 <= j1; j += 16)
            _mm512_storeu_ps(c + j, _mm512_fmadd_ps(av, _mm512_loadu_ps(b + j),
                                                    _mm512_loadu_ps(c + j)));
        if (j < j1) {
            const __mmask16 m = first_lanes(j1 - j);
            _mm512_mask_storeu_ps(c + j, m, _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, b + j),
                                                            _mm512_maskz_loadu_ps(m, c + j)));
        }
    }
}

// MI x NJ dot products (MI <= 4 rows of a, NJ <= 4 rows of B) in 16 lanes
// (NJ = 6 is no faster: 24 accumulators leave no room).
template <int MI, int NJ>
void nt_tile(int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
             float* c, int64_t ldc) {
    __m512 acc[NJ][MI];
    for (int q = 0; q < NJ; ++q)
        for (int i = 0; i < MI; ++i) acc[q][i] = _mm512_setzero_ps();
    const int64_t K16 = K & ~int64_t(15);
    for (int64_t p = 0; p < K16; p += 16) {
        if (MI == 4) {  // the B rows after these, one line per 16 values
            for (int q = 0; q < NJ; ++q)
                _mm_prefetch(reinterpret_cast<const char*>(b + (NJ + q) * ldb + p), _MM_HINT_T0);
        }
        __m512 bv[NJ];
        for (int q = 0; q < NJ; ++q) bv[q] = _mm512_loadu_ps(b + q * ldb + p);
        for (int i = 0; i < MI; ++i) {
            const __m512 av = _mm512_loadu_ps(a + i * lda + p);
            for (int q = 0; q < NJ; ++q) acc[q][i] = _mm512_fmadd_ps(av, bv[q], acc[q][i]);
        }
    }
    if (K16 < K) {  // the last K % 16 values, masked in
        const __mmask16 m = first_lanes(K - K16);
        __m512 bv[NJ];
        for (int q = 0; q < NJ; ++q) bv[q] = _mm512_maskz_loadu_ps(m, b + q * ldb + K16);
        for (int i = 0; i < MI; ++i) {
            const __m512 av = _mm512_maskz_loadu_ps(m, a + i * lda + K16);
            for (int q = 0; q < NJ; ++q) acc[q][i] = _mm512_fmadd_ps(av, bv[q], acc[q][i]);
        }
    }
    for (int q = 0; q < NJ; ++q) {
        for (int i = 0; i < MI; ++i) {
            const float s = hsum(acc[q][i]);
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

// Columns [j, j+32) (through masks m0, m1 when Masked) of rows i..i+R-1 of C:
// c = beta * c (or 0) + sum over p < K of at(p, i) * b(p, :), p in order.
template <int R, bool Masked>
inline void tn_cols(int64_t K, int64_t i, int64_t j, __mmask16 m0, __mmask16 m1,
                    const float* at, int64_t ldat, const float* B, int64_t ldb, float beta,
                    float* const* c, int64_t ldc) {
    for (int r = 0; r < R; ++r) {  // C (the weights, updated in place) streams from memory
        _mm_prefetch(reinterpret_cast<const char*>(c[r] + 2 * ldc + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c[r] + 2 * ldc + j + 16), _MM_HINT_T0);
    }
    const __m512 bv = _mm512_set1_ps(beta);
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) {
        acc[r][0] = (beta == 0.0f) ? _mm512_setzero_ps()
                                   : _mm512_mul_ps(bv, load16<Masked>(c[r] + j, m0));
        acc[r][1] = (beta == 0.0f) ? _mm512_setzero_ps()
                                   : _mm512_mul_ps(bv, load16<Masked>(c[r] + j + 16, m1));
    }
    for (int64_t p = 0; p < K; ++p) {
        const float* bp = B + p * ldb + j;
        const __m512 b0 = load16<Masked>(bp, m0);
        const __m512 b1 = load16<Masked>(bp + 16, m1);
        for (int r = 0; r < R; ++r) {
            const __m512 av = _mm512_set1_ps(at[p * ldat + i + r]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; ++r) {
        store16<Masked>(c[r] + j, m0, acc[r][0]);
        store16<Masked>(c[r] + j + 16, m1, acc[r][1]);
    }
}

// Rows i.. i+R-1 of C, columns [j0, j1); 32 columns (2 zmm) at a time.
template <int R>
void tn_rows(int64_t K, int64_t i, int64_t j0, int64_t j1, const float* at, int64_t ldat,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    float* c[R];
    for (int r = 0; r < R; ++r) c[r] = C + (i + r) * ldc;
    int64_t j = j0;
    for (; j + 32 <= j1; j += 32)
        tn_cols<R, false>(K, i, j, 0xffff, 0xffff, at, ldat, B, ldb, beta, c, ldc);
    if (j < j1) {
        const __mmask16 m0 = first_lanes(j1 - j);
        const __mmask16 m1 = first_lanes(j1 - j - 16 > 0 ? j1 - j - 16 : 0);
        tn_cols<R, true>(K, i, j, m0, m1, at, ldat, B, ldb, beta, c, ldc);
    }
}

}  // namespace

void stream_nn_avx512(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc) {
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

void stream_nt_avx512(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc) {
    // Four rows of B at a time (16 accumulators; AVX2 has registers for two):
    // each pass over a (M, K) then serves four columns of C, halving its reads.
    int64_t j = j0;
    for (; j + 4 <= j1; j += 4) nt_rows<4>(M, K, a, lda, B + j * ldb, ldb, beta, C + j, ldc);
    for (; j + 2 <= j1; j += 2) nt_rows<2>(M, K, a, lda, B + j * ldb, ldb, beta, C + j, ldc);
    if (j < j1) nt_rows<1>(M, K, a, lda, B + j * ldb, ldb, beta, C + j, ldc);
}

void stream_tn_avx512(int64_t K, int64_t i0, int64_t i1, int64_t N, const float* at,
                      int64_t ldat, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc) {
    for (int64_t jb = 0; jb < N; jb += kStreamColumns) {
        const int64_t je = min64(N, jb + kStreamColumns);
        int64_t i = i0;
        for (; i + 4 <= i1; i += 4) tn_rows<4>(K, i, jb, je, at, ldat, B, ldb, beta, C, ldc);
        for (; i + 2 <= i1; i += 2) tn_rows<2>(K, i, jb, je, at, ldat, B, ldb, beta, C, ldc);
        if (i < i1) tn_rows<1>(K, i, jb, je, at, ldat, B, ldb, beta, C, ldc);
    }
}

}  // namespace gemm
}  // namespace fastcnn
