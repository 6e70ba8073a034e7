// ukernel_ref.cpp -- the portable GEMM micro-kernel (plain C++, any CPU).
//
// Size letters: MR x NR = register tile (blocking.h); kc = inner extent;
// mr x nr = the part of the tile that lies inside C (edge tiles are smaller).
//
// c (mr, nr; row stride ldc) = beta * c + a_panel (kc, MR) * b_panel (kc, NR),
// restricted to mr x nr. beta == 0: c is only written. Same contracts and
// signatures as the AVX2 kernels (gemm_internal.h), which these twins are the
// fallback for and are checked against; ukernel_pack_ref simply packs the B
// panel first; dot_block_ref is the twin of dot_block_avx2 (same lanes).
// Written so the compiler can vectorise the j (l) loop with SSE2.
#include <cstring>

#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

namespace {
// The portable path's tile (blocking.h).
constexpr int64_t MR = kBlockingRef.mr;
constexpr int64_t NR = kBlockingRef.nr;
}  // namespace

namespace {

// c (mr, nr) = beta * c + A (mr, kc) . b_panel (kc, NR), restricted to nr
// columns, where a_at(i, p) is A's value (i, p) (0 on a packed panel's padded
// rows; never asked for rows >= mr when A is read in place).
template <class AAt>
void tile_ref(int64_t kc, AAt a_at, const float* b_panel, float* c, int64_t ldc, float beta,
              int64_t mr, int64_t nr) {
    // Two rows of the tile at a time: 2 x 16 accumulators fit the 16 SSE
    // registers of baseline x86-64 (the whole 6 x 16 tile would not).
    for (int64_t i0 = 0; i0 < mr; i0 += 2) {
        const int64_t rows = (mr - i0 < 2) ? mr - i0 : 2;
        float acc[2][NR] = {};  // (2, NR) rows i0, i0+1 of A * b_panel
        for (int64_t p = 0; p < kc; ++p) {
            const float a0 = a_at(i0, p);
            const float a1 = rows == 2 ? a_at(i0 + 1, p) : 0.0f;
            const float* b = b_panel + p * NR;  // (NR,) row p of op(B)
            for (int64_t j = 0; j < NR; ++j) {
                acc[0][j] += a0 * b[j];
                acc[1][j] += a1 * b[j];
            }
        }
        for (int64_t r = 0; r < rows; ++r) {
            float* row = c + (i0 + r) * ldc;  // (nr,)
            if (beta == 0.0f) {
                for (int64_t j = 0; j < nr; ++j) row[j] = acc[r][j];
            } else {
                for (int64_t j = 0; j < nr; ++j) row[j] = beta * row[j] + acc[r][j];
            }
        }
    }
}

}  // namespace

void ukernel_ref(int64_t kc, const float* a_panel, const float* b_panel,
                 float* c, int64_t ldc, float beta, int64_t mr, int64_t nr) {
    tile_ref(kc, [=](int64_t i, int64_t p) { return a_panel[p * MR + i]; }, b_panel, c, ldc,
             beta, mr, nr);
}

// ukernel_ref with A's rows read in place (row i at a + i*lda): the same sums.
void ukernel_rows_ref(int64_t kc, const float* a, int64_t lda, const float* b_src, int64_t ldb,
                      float* b_panel, float* c, int64_t ldc, float beta, int64_t mr,
                      int64_t nr) {
    if (b_panel) {  // pack the panel first (nr == NR), then as from a packed one
        for (int64_t p = 0; p < kc; ++p) {
            std::memcpy(b_panel + p * NR, b_src + p * ldb, NR * sizeof(float));
        }
        b_src = b_panel;
    }
    tile_ref(kc, [=](int64_t i, int64_t p) { return a[i * lda + p]; }, b_src, c, ldc, beta, mr,
             nr);
}

void ukernel_pack_ref(int64_t kc, const float* a_panel, const float* b_src, int64_t ldb,
                      float* b_panel, float* c, int64_t ldc, float beta, int64_t mr) {
    for (int64_t p = 0; p < kc; ++p) {
        std::memcpy(b_panel + p * NR, b_src + p * ldb, NR * sizeof(float));  // (NR,)
    }
    ukernel_ref(kc, a_panel, b_panel, c, ldc, beta, mr, NR);
}

// 32 independent multiply-add chains (the compiler vectorises them with the
// baseline SSE2 multiply and add; no FMA on this path): 64 flops per iteration.
float fma_loop_ref(int64_t iters) {
    float acc[32];
    for (int i = 0; i < 32; ++i) acc[i] = float(i);
    for (int64_t it = 0; it < iters; ++it) {
        for (int i = 0; i < 32; ++i) acc[i] = acc[i] * 0.999999f + 1e-6f;
    }
    float s = 0.0f;
    for (int i = 0; i < 32; ++i) s += acc[i];
    return s;
}

void dot_block_ref(int64_t m, int64_t n, int64_t kb, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float* acc) {
    for (int64_t i = 0; i < m; ++i) {
        const float* arow = a + i * lda;  // (kb,)
        for (int64_t j = 0; j < n; ++j) {
            const float* brow = b + j * ldb;  // (kb,)
            float lanes[8];                   // (8,)
            std::memcpy(lanes, acc + (i * n + j) * 8, sizeof(lanes));
            for (int64_t p = 0; p < kb; p += 8) {
                for (int l = 0; l < 8; ++l) lanes[l] += arow[p + l] * brow[p + l];
            }
            std::memcpy(acc + (i * n + j) * 8, lanes, sizeof(lanes));
        }
    }
}

}  // namespace gemm
}  // namespace fastcnn
