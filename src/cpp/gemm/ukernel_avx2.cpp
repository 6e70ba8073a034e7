// ukernel_avx2.cpp -- the AVX2 + FMA GEMM micro-kernels (6 x 16 register tile; 3 x 4 dot tile).
//
// Size letters: MR x NR = 6 x 16 register tile (blocking.h); kc = inner
// extent; mr x nr = the part of the tile inside C (edge tiles are smaller).
//
// c (mr, nr; row stride ldc) = beta * c + a_panel (kc, MR) * b_panel (kc, NR),
// restricted to mr x nr; beta == 0: c is only written (NaN in c is not read).
// Same contract and signature as ukernel_ref (gemm_internal.h).
//
// How: the vector width (8 floats) runs along N, so a row of the tile is two
// ymm registers; each k step loads one row of the B panel (2 vectors),
// broadcasts the mr values of A one by one and does 2*mr FMAs. The mr rows
// are a compile-time count (one instance per mr = 1..6), so short edge rows
// cost only their own FMAs. Full-width tiles (nr == 16) load/store C
// directly; narrower edge tiles go through a small tile on the stack.
// ukernel_pack_avx2 is the same loop reading B from op(B) itself and storing
// each row into the packed panel as it goes (so packing rides on the FMAs).
//
// This is the only file compiled with -mavx2 -mfma. It must not define or
// instantiate any function another file could also emit (no std::min,
// std::vector, <cmath>, ...): the linker could keep this AVX2 copy for the
// portable path. Everything here but ukernel_avx2, ukernel_pack_avx2 and
// dot_block_avx2 has internal linkage.
//
// dot_block_avx2 (the dot path for a small C with a long K, dot.cpp) keeps
// 3 x 4 dot products in 12 ymm accumulators (lane l sums the k = l mod 8):
// per 8 values of k, 3 row loads of op(A) + 4 of op(B) feed 12 FMAs.
#include <immintrin.h>

#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

namespace {

constexpr int64_t MR = kBlockingAvx2.mr;
constexpr int64_t NR = kBlockingAvx2.nr;
static_assert(MR == 6 && NR == 16, "ukernel_avx2 is written for a 6 x 16 tile");

// Shortest k loop worth prefetching the C tile for (with K = 25 the
// prefetches cost more than they save; with K = 256 they pay).
constexpr int64_t kPrefetchCMinK = 64;

// R rows of the tile; row p of the B panel is read at b_src + p*ldb. PackB:
// each row read is also stored to the packed panel b_panel (kc, NR).
template <int R, bool PackB, bool RowsA = false>
__attribute__((always_inline)) inline void tile_rows(int64_t kc, const float* a_panel,
                                                     const float* b_src, int64_t ldb,
                                                     float* b_panel, float* c,
                                                     int64_t ldc, float beta, int64_t nr,
                                                     int64_t lda = 0) {
    // Warm the C rows while a long k loop runs (a short one would only wait).
    if (kc >= kPrefetchCMinK) {
#pragma GCC unroll 6
        for (int i = 0; i < R; ++i) {
            _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
        }
    }

    __m256 lo[R];  // columns 0..7 of row i of the tile
    __m256 hi[R];  // columns 8..15
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
        lo[i] = _mm256_setzero_ps();
        hi[i] = _mm256_setzero_ps();
    }

    const float* a = a_panel;  // (kc, MR)
    const float* b = b_src;   // (kc, NR), row stride ldb
    float* packed = b_panel;  // (kc, NR), written when PackB
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p) {
        const __m256 b_lo = _mm256_loadu_ps(b);
        const __m256 b_hi = _mm256_loadu_ps(b + 8);
        if (PackB) {
            _mm256_storeu_ps(packed, b_lo);
            _mm256_storeu_ps(packed + 8, b_hi);
            packed += NR;
        }
#pragma GCC unroll 6
        for (int i = 0; i < R; ++i) {
            const __m256 ai = _mm256_broadcast_ss(RowsA ? a + i * lda : a + i);
            lo[i] = _mm256_fmadd_ps(ai, b_lo, lo[i]);
            hi[i] = _mm256_fmadd_ps(ai, b_hi, hi[i]);
        }
        a += RowsA ? 1 : MR;
        b += ldb;
    }

    if (nr == NR) {
        if (beta == 0.0f) {
#pragma GCC unroll 6
            for (int i = 0; i < R; ++i) {
                _mm256_storeu_ps(c + i * ldc, lo[i]);
                _mm256_storeu_ps(c + i * ldc + 8, hi[i]);
            }
        } else {
            const __m256 vbeta = _mm256_set1_ps(beta);
#pragma GCC unroll 6
            for (int i = 0; i < R; ++i) {
                float* row = c + i * ldc;
                _mm256_storeu_ps(row, _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(row), lo[i]));
                _mm256_storeu_ps(row + 8, _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(row + 8), hi[i]));
            }
        }
        return;
    }

    // Edge tile: spill to a stack tile, then copy the nr valid columns.
    alignas(32) float t[R][NR];  // (R, NR)
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
        _mm256_store_ps(t[i], lo[i]);
        _mm256_store_ps(t[i] + 8, hi[i]);
    }
    for (int i = 0; i < R; ++i) {
        float* row = c + i * ldc;
        if (beta == 0.0f) {
            for (int64_t j = 0; j < nr; ++j) row[j] = t[i][j];
        } else {
            for (int64_t j = 0; j < nr; ++j) row[j] = __builtin_fmaf(beta, row[j], t[i][j]);
        }
    }
}

// RA rows of op(A) x RB columns of op(B) of the dot kernel: RA*RB ymm
// accumulators (lane l sums the k with k % 8 == l), loaded from and stored
// back to acc (m, n, 8) around the k loop.
template <int RA, int RB>
__attribute__((always_inline)) inline void dot_tile(int64_t n, int64_t kb, const float* a,
                                                    int64_t lda, const float* b, int64_t ldb,
                                                    float* acc) {
    __m256 s[RA][RB];
#pragma GCC unroll 3
    for (int i = 0; i < RA; ++i) {
#pragma GCC unroll 4
        for (int j = 0; j < RB; ++j) s[i][j] = _mm256_loadu_ps(acc + (i * n + j) * 8);
    }
#pragma GCC unroll 2
    for (int64_t p = 0; p < kb; p += 8) {
        __m256 av[RA];
#pragma GCC unroll 3
        for (int i = 0; i < RA; ++i) av[i] = _mm256_loadu_ps(a + i * lda + p);
#pragma GCC unroll 4
        for (int j = 0; j < RB; ++j) {
            const __m256 bv = _mm256_loadu_ps(b + j * ldb + p);
#pragma GCC unroll 3
            for (int i = 0; i < RA; ++i) s[i][j] = _mm256_fmadd_ps(av[i], bv, s[i][j]);
        }
    }
#pragma GCC unroll 3
    for (int i = 0; i < RA; ++i) {
#pragma GCC unroll 4
        for (int j = 0; j < RB; ++j) _mm256_storeu_ps(acc + (i * n + j) * 8, s[i][j]);
    }
}

template <int RA>
void dot_rows(int64_t n, int64_t kb, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* acc) {
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) dot_tile<RA, 4>(n, kb, a, lda, b + j * ldb, ldb, acc + j * 8);
    switch (n - j) {
        case 3: dot_tile<RA, 3>(n, kb, a, lda, b + j * ldb, ldb, acc + j * 8); break;
        case 2: dot_tile<RA, 2>(n, kb, a, lda, b + j * ldb, ldb, acc + j * 8); break;
        case 1: dot_tile<RA, 1>(n, kb, a, lda, b + j * ldb, ldb, acc + j * 8); break;
        default: break;
    }
}

// The tile for mr = 1..6 rows; RowsA: A's rows read in place (row i at a + i*lda),
// else a is a packed A panel.
template <bool PackB, bool RowsA>
void tile_dispatch(int64_t mr, int64_t kc, const float* a, int64_t lda, const float* b_src,
                   int64_t ldb, float* b_panel, float* c, int64_t ldc, float beta, int64_t nr) {
    switch (mr) {
#define FASTCNN_ROWS(R)                                                                      \
    case R:                                                                                  \
        tile_rows<R, PackB, RowsA>(kc, a, b_src, ldb, b_panel, c, ldc, beta, nr, lda);       \
        break;
        FASTCNN_ROWS(6) FASTCNN_ROWS(5) FASTCNN_ROWS(4) FASTCNN_ROWS(3) FASTCNN_ROWS(2)
#undef FASTCNN_ROWS
        default: tile_rows<1, PackB, RowsA>(kc, a, b_src, ldb, b_panel, c, ldc, beta, nr, lda);
    }
}

}  // namespace

void dot_block_avx2(int64_t m, int64_t n, int64_t kb, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float* acc) {
    int64_t i = 0;
    for (; i + 3 <= m; i += 3) dot_rows<3>(n, kb, a + i * lda, lda, b, ldb, acc + i * n * 8);
    switch (m - i) {
        case 2: dot_rows<2>(n, kb, a + i * lda, lda, b, ldb, acc + i * n * 8); break;
        case 1: dot_rows<1>(n, kb, a + i * lda, lda, b, ldb, acc + i * n * 8); break;
        default: break;
    }
}

void ukernel_rows_avx2(int64_t kc, const float* a, int64_t lda, const float* b_src, int64_t ldb,
                       float* b_panel, float* c, int64_t ldc, float beta, int64_t mr,
                       int64_t nr) {
    if (b_panel) {
        tile_dispatch<true, true>(mr, kc, a, lda, b_src, ldb, b_panel, c, ldc, beta, NR);
    } else {
        tile_dispatch<false, true>(mr, kc, a, lda, b_src, NR, nullptr, c, ldc, beta, nr);
    }
}

void ukernel_avx2(int64_t kc, const float* a_panel, const float* b_panel,
                  float* c, int64_t ldc, float beta, int64_t mr, int64_t nr) {
    tile_dispatch<false, false>(mr, kc, a_panel, 0, b_panel, NR, nullptr, c, ldc, beta, nr);
}

void ukernel_pack_avx2(int64_t kc, const float* a_panel, const float* b_src, int64_t ldb,
                       float* b_panel, float* c, int64_t ldc, float beta, int64_t mr) {
    tile_dispatch<true, false>(mr, kc, a_panel, 0, b_src, ldb, b_panel, c, ldc, beta, NR);
}

}  // namespace gemm
}  // namespace fastcnn
