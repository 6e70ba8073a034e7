// ukernel_avx512.cpp -- the AVX-512 GEMM micro-kernels (12 x 32 register
// tile; 3 x 4 dot tile).
//
// Size letters: MR x NR = 12 x 32 register tile (kBlockingAvx512 in
// blocking.h); kc = inner extent; mr x nr = the part of the tile inside C.
//
// c (mr, nr; row stride ldc) = beta * c + a_panel (kc, MR) * b_panel (kc, NR),
// restricted to mr x nr; beta == 0: c is only written (NaN in c is not read).
// Same contract and signature as ukernel_ref (gemm_internal.h), but on the
// AVX-512 path's panel layout (MR = 12, NR = 32).
//
// How: the vector width (16 floats) runs along N, so a row of the tile is two
// zmm registers; each k step loads one row of the B panel (2 vectors) and
// does 2*mr FMAs whose A operand is a broadcast from memory. The mr rows are
// a compile-time count (one instance per mr = 1..12). Edge tiles (nr < 32)
// load and store C with masks, so no stack tile and no scalar loop.
// ukernel_pack_avx512 is the same loop reading B from op(B) itself and
// storing each row into the packed panel as it goes.
//
// dot_block_avx512 (the dot path, sgemm.cpp) keeps 3 x 4 dot products in 12
// zmm accumulators over 16 values of k at a time; lane l and lane l + 8 are
// added at the end, so the acc (m, n, 8) layout (lane l sums k = l mod 8) is
// the one every path shares.
//
// This is the only file compiled with the AVX-512 flags besides the other
// *_avx512.cpp files. It must not define or instantiate any function another
// file could also emit (no std::min, std::vector, <cmath>, ...): everything
// but the three entry points has internal linkage.
#include <immintrin.h>

#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

namespace {

constexpr int64_t MR = kBlockingAvx512.mr;
constexpr int64_t NR = kBlockingAvx512.nr;
static_assert(MR == 12 && NR == 32, "ukernel_avx512 is written for a 12 x 32 tile");

constexpr int64_t kPrefetchCMinK = 64;  // as in ukernel_avx2.cpp

// Mask of the first n (0..16) lanes.
inline __mmask16 first_lanes(int64_t n) {
    return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u);
}

template <int R, bool PackB>
__attribute__((always_inline)) inline void tile_rows(int64_t kc, const float* a_panel,
                                                     const float* b_src, int64_t ldb,
                                                     float* b_panel, float* c,
                                                     int64_t ldc, float beta, int64_t nr) {
    if (kc >= kPrefetchCMinK) {
#pragma GCC unroll 12
        for (int i = 0; i < R; ++i) {
            _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
        }
    }

    __m512 lo[R];  // columns 0..15 of row i of the tile
    __m512 hi[R];  // columns 16..31
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) {
        lo[i] = _mm512_setzero_ps();
        hi[i] = _mm512_setzero_ps();
    }

    const float* a = a_panel;  // (kc, MR)
    const float* b = b_src;    // (kc, NR), row stride ldb
    float* packed = b_panel;   // (kc, NR), written when PackB
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; ++p) {
        const __m512 b_lo = _mm512_loadu_ps(b);
        const __m512 b_hi = _mm512_loadu_ps(b + 16);
        if (PackB) {
            _mm512_storeu_ps(packed, b_lo);
            _mm512_storeu_ps(packed + 16, b_hi);
            packed += NR;
        }
#pragma GCC unroll 12
        for (int i = 0; i < R; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            lo[i] = _mm512_fmadd_ps(ai, b_lo, lo[i]);
            hi[i] = _mm512_fmadd_ps(ai, b_hi, hi[i]);
        }
        a += MR;
        b += ldb;
    }

    // Full tiles: both masks all ones (masked and unmasked stores of all
    // lanes do the same).
    const __mmask16 m_lo = first_lanes(nr);
    const __mmask16 m_hi = first_lanes(nr - 16 > 0 ? nr - 16 : 0);
    if (beta == 0.0f) {
#pragma GCC unroll 12
        for (int i = 0; i < R; ++i) {
            _mm512_mask_storeu_ps(c + i * ldc, m_lo, lo[i]);
            _mm512_mask_storeu_ps(c + i * ldc + 16, m_hi, hi[i]);
        }
    } else {
        const __m512 vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 12
        for (int i = 0; i < R; ++i) {
            float* row = c + i * ldc;
            const __m512 c_lo = _mm512_maskz_loadu_ps(m_lo, row);
            const __m512 c_hi = _mm512_maskz_loadu_ps(m_hi, row + 16);
            _mm512_mask_storeu_ps(row, m_lo, _mm512_fmadd_ps(vbeta, c_lo, lo[i]));
            _mm512_mask_storeu_ps(row + 16, m_hi, _mm512_fmadd_ps(vbeta, c_hi, hi[i]));
        }
    }
}

template <bool PackB>
void tile_dispatch(int64_t mr, int64_t kc, const float* a_panel, const float* b_src, int64_t ldb,
                   float* b_panel, float* c, int64_t ldc, float beta, int64_t nr) {
    switch (mr) {
#define FASTCNN_ROWS(R) \
    case R: tile_rows<R, PackB>(kc, a_panel, b_src, ldb, b_panel, c, ldc, beta, nr); break;
        FASTCNN_ROWS(12) FASTCNN_ROWS(11) FASTCNN_ROWS(10) FASTCNN_ROWS(9)
        FASTCNN_ROWS(8) FASTCNN_ROWS(7) FASTCNN_ROWS(6) FASTCNN_ROWS(5)
        FASTCNN_ROWS(4) FASTCNN_ROWS(3) FASTCNN_ROWS(2)
#undef FASTCNN_ROWS
        default: tile_rows<1, PackB>(kc, a_panel, b_src, ldb, b_panel, c, ldc, beta, nr); break;
    }
}

// RA rows of op(A) x RB columns of op(B): RA*RB zmm accumulators over 16 k
// at a time (the last 8 of a kb that is 8 mod 16 with the upper lanes masked
// off), folded to the 8-lane acc layout at the end.
template <int RA, int RB>
__attribute__((always_inline)) inline void dot_tile(int64_t n, int64_t kb, const float* a,
                                                    int64_t lda, const float* b, int64_t ldb,
                                                    float* acc) {
    __m512 s[RA][RB];
#pragma GCC unroll 3
    for (int i = 0; i < RA; ++i) {
#pragma GCC unroll 4
        for (int j = 0; j < RB; ++j) s[i][j] = _mm512_setzero_ps();
    }
    const int64_t kb16 = kb & ~int64_t(15);
    for (int64_t p = 0; p < kb; p += 16) {
        const __mmask16 m = p < kb16 ? __mmask16(0xffff) : __mmask16(0x00ff);
        __m512 av[RA];
#pragma GCC unroll 3
        for (int i = 0; i < RA; ++i) av[i] = _mm512_maskz_loadu_ps(m, a + i * lda + p);
#pragma GCC unroll 4
        for (int j = 0; j < RB; ++j) {
            const __m512 bv = _mm512_maskz_loadu_ps(m, b + j * ldb + p);
#pragma GCC unroll 3
            for (int i = 0; i < RA; ++i) s[i][j] = _mm512_fmadd_ps(av[i], bv, s[i][j]);
        }
    }
#pragma GCC unroll 3
    for (int i = 0; i < RA; ++i) {
#pragma GCC unroll 4
        for (int j = 0; j < RB; ++j) {
            const __m256 folded = _mm256_add_ps(_mm512_extractf32x8_ps(s[i][j], 0),
                                                _mm512_extractf32x8_ps(s[i][j], 1));
            float* out = acc + (i * n + j) * 8;
            _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), folded));
        }
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

}  // namespace

void dot_block_avx512(int64_t m, int64_t n, int64_t kb, const float* a, int64_t lda,
                      const float* b, int64_t ldb, float* acc) {
    int64_t i = 0;
    for (; i + 3 <= m; i += 3) dot_rows<3>(n, kb, a + i * lda, lda, b, ldb, acc + i * n * 8);
    switch (m - i) {
        case 2: dot_rows<2>(n, kb, a + i * lda, lda, b, ldb, acc + i * n * 8); break;
        case 1: dot_rows<1>(n, kb, a + i * lda, lda, b, ldb, acc + i * n * 8); break;
        default: break;
    }
}

void ukernel_avx512(int64_t kc, const float* a_panel, const float* b_panel,
                    float* c, int64_t ldc, float beta, int64_t mr, int64_t nr) {
    tile_dispatch<false>(mr, kc, a_panel, b_panel, NR, nullptr, c, ldc, beta, nr);
}

void ukernel_pack_avx512(int64_t kc, const float* a_panel, const float* b_src, int64_t ldb,
                         float* b_panel, float* c, int64_t ldc, float beta, int64_t mr) {
    tile_dispatch<true>(mr, kc, a_panel, b_src, ldb, b_panel, c, ldc, beta, NR);
}

}  // namespace gemm
}  // namespace fastcnn
