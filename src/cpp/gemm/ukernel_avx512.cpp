// ukernel_avx512.cpp -- the AVX-512 GEMM micro-kernels (12 x 32 register tile).
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
// a compile-time count (one instance per mr = 1..12). Full tiles load and
// store C plainly; edge tiles (nr < 32) with masks, so no stack tile and no
// scalar loop. (Masked stores are slow on Zen 4 -- microcoded -- so they are
// kept to the edges.)
// ukernel_pack_avx512 is the same loop reading B from op(B) itself and
// storing each row into the packed panel as it goes.
//
// The dot path (small C, long K) uses dot_block_avx2 on this path too: a
// 16-lane version of it is slower on Zen 4 (every 64-byte load of a row that
// is not 64-byte aligned spans two cache lines).
//
// This is the only file compiled with the AVX-512 flags besides the other
// *_avx512.cpp files. It must not define or instantiate any function another
// file could also emit (no std::min, std::vector, <cmath>, ...): everything
// but the two entry points has internal linkage.
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

template <int R, bool PackB, bool RowsA = false>
__attribute__((always_inline)) inline void tile_rows(int64_t kc, const float* a_panel,
                                                     const float* b_src, int64_t ldb,
                                                     float* b_panel, float* c,
                                                     int64_t ldc, float beta, int64_t nr,
                                                     int64_t lda = 0) {
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
            const __m512 ai = _mm512_set1_ps(RowsA ? a[i * lda] : a[i]);
            lo[i] = _mm512_fmadd_ps(ai, b_lo, lo[i]);
            hi[i] = _mm512_fmadd_ps(ai, b_hi, hi[i]);
        }
        a += RowsA ? 1 : MR;
        b += ldb;
    }

    if (nr == NR) {
        if (beta == 0.0f) {
#pragma GCC unroll 12
            for (int i = 0; i < R; ++i) {
                _mm512_storeu_ps(c + i * ldc, lo[i]);
                _mm512_storeu_ps(c + i * ldc + 16, hi[i]);
            }
        } else {
            const __m512 vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 12
            for (int i = 0; i < R; ++i) {
                float* row = c + i * ldc;
                _mm512_storeu_ps(row, _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(row), lo[i]));
                _mm512_storeu_ps(row + 16,
                                 _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(row + 16), hi[i]));
            }
        }
        return;
    }
    // Edge tile: the first nr columns, through masks.
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

// The tile for mr = 1..12 rows; RowsA: A's rows read in place (row i at a + i*lda),
// else a is a packed A panel.
template <bool PackB, bool RowsA>
void tile_dispatch(int64_t mr, int64_t kc, const float* a, int64_t lda, const float* b_src,
                   int64_t ldb, float* b_panel, float* c, int64_t ldc, float beta, int64_t nr) {
    switch (mr) {
#define FASTCNN_ROWS(R)                                                                      \
    case R:                                                                                  \
        tile_rows<R, PackB, RowsA>(kc, a, b_src, ldb, b_panel, c, ldc, beta, nr, lda);       \
        break;
        FASTCNN_ROWS(12) FASTCNN_ROWS(11) FASTCNN_ROWS(10) FASTCNN_ROWS(9)
        FASTCNN_ROWS(8) FASTCNN_ROWS(7) FASTCNN_ROWS(6) FASTCNN_ROWS(5)
        FASTCNN_ROWS(4) FASTCNN_ROWS(3) FASTCNN_ROWS(2)
#undef FASTCNN_ROWS
        default: tile_rows<1, PackB, RowsA>(kc, a, b_src, ldb, b_panel, c, ldc, beta, nr, lda);
    }
}

}  // namespace

void ukernel_rows_avx512(int64_t kc, const float* a, int64_t lda, const float* b_src,
                         int64_t ldb, float* b_panel, float* c, int64_t ldc, float beta,
                         int64_t mr, int64_t nr) {
    if (b_panel) {
        tile_dispatch<true, true>(mr, kc, a, lda, b_src, ldb, b_panel, c, ldc, beta, NR);
    } else {
        tile_dispatch<false, true>(mr, kc, a, lda, b_src, NR, nullptr, c, ldc, beta, nr);
    }
}

void ukernel_avx512(int64_t kc, const float* a_panel, const float* b_panel,
                    float* c, int64_t ldc, float beta, int64_t mr, int64_t nr) {
    tile_dispatch<false, false>(mr, kc, a_panel, 0, b_panel, NR, nullptr, c, ldc, beta, nr);
}

void ukernel_pack_avx512(int64_t kc, const float* a_panel, const float* b_src, int64_t ldb,
                         float* b_panel, float* c, int64_t ldc, float beta, int64_t mr) {
    tile_dispatch<true, false>(mr, kc, a_panel, 0, b_src, ldb, b_panel, c, ldc, beta, NR);
}

}  // namespace gemm
}  // namespace fastcnn
