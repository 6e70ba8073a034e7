// pack.cpp -- copy blocks of op(A) and op(B) into the zero-padded panel
// layouts the micro-kernels read (see gemm_internal.h), handling both
// transposes and folding alpha into A.
//
// Size letters: M N K = GEMM sizes; mc kc nr = extents of the block packed;
// MR NR = panel widths (blocking.h).
//
// Both functions read only inside the block they are given and write exactly
// the panels they promise; padding rows/columns are written as 0.
#include <cstring>

#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

namespace {

// One A panel: rows [i0, i0+mr) of op(A), mr <= MR, columns [p0, p0+kc).
// panel (kc, MR).
void pack_a_panel(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mr,
                  int64_t p0, int64_t kc, float alpha, float* panel) {
    if (trans_a) {
        // A stored (K, M): the mr values of one k are contiguous.
        for (int64_t p = 0; p < kc; ++p) {
            const float* src = A + (p0 + p) * lda + i0;  // (mr,)
            float* out = panel + p * MR;                 // (MR,)
            for (int64_t i = 0; i < mr; ++i) out[i] = alpha * src[i];
            for (int64_t i = mr; i < MR; ++i) out[i] = 0.0f;
        }
        return;
    }
    // A stored (M, K): row i of op(A) is contiguous; interleave mr rows.
    const float* rows[MR];
    for (int64_t i = 0; i < mr; ++i) rows[i] = A + (i0 + i) * lda + p0;
    if (mr == MR) {
        for (int64_t p = 0; p < kc; ++p) {
            float* out = panel + p * MR;
            for (int64_t i = 0; i < MR; ++i) out[i] = alpha * rows[i][p];
        }
        return;
    }
    for (int64_t p = 0; p < kc; ++p) {
        float* out = panel + p * MR;
        for (int64_t i = 0; i < mr; ++i) out[i] = alpha * rows[i][p];
        for (int64_t i = mr; i < MR; ++i) out[i] = 0.0f;
    }
}

// Same without the multiply, for the common alpha == 1.
void pack_a_panel_unscaled(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mr,
                           int64_t p0, int64_t kc, float* panel) {
    if (trans_a) {
        for (int64_t p = 0; p < kc; ++p) {
            const float* src = A + (p0 + p) * lda + i0;  // (mr,)
            float* out = panel + p * MR;                 // (MR,)
            for (int64_t i = 0; i < mr; ++i) out[i] = src[i];
            for (int64_t i = mr; i < MR; ++i) out[i] = 0.0f;
        }
        return;
    }
    const float* rows[MR];
    for (int64_t i = 0; i < mr; ++i) rows[i] = A + (i0 + i) * lda + p0;
    if (mr == MR) {
        for (int64_t p = 0; p < kc; ++p) {
            float* out = panel + p * MR;
            for (int64_t i = 0; i < MR; ++i) out[i] = rows[i][p];
        }
        return;
    }
    for (int64_t p = 0; p < kc; ++p) {
        float* out = panel + p * MR;
        for (int64_t i = 0; i < mr; ++i) out[i] = rows[i][p];
        for (int64_t i = mr; i < MR; ++i) out[i] = 0.0f;
    }
}

}  // namespace

void pack_a(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc,
            int64_t p0, int64_t kc, float alpha, float* dst) {
    for (int64_t ir = 0; ir < mc; ir += MR) {
        const int64_t mr = (mc - ir < MR) ? mc - ir : MR;
        float* panel = dst + ir * kc;  // (kc, MR)
        if (alpha == 1.0f) {
            pack_a_panel_unscaled(trans_a, A, lda, i0 + ir, mr, p0, kc, panel);
        } else {
            pack_a_panel(trans_a, A, lda, i0 + ir, mr, p0, kc, alpha, panel);
        }
    }
}

void pack_b_panel(bool trans_b, const float* B, int64_t ldb, int64_t p0, int64_t kc,
                  int64_t j0, int64_t nr, float* dst) {
    if (!trans_b) {
        // B stored (K, N): each k gives nr contiguous values.
        if (nr == NR) {
            for (int64_t p = 0; p < kc; ++p) {
                const float* src = B + (p0 + p) * ldb + j0;  // (NR,)
                float* out = dst + p * NR;                   // (NR,)
                std::memcpy(out, src, NR * sizeof(float));
            }
            return;
        }
        for (int64_t p = 0; p < kc; ++p) {
            const float* src = B + (p0 + p) * ldb + j0;
            float* out = dst + p * NR;
            for (int64_t j = 0; j < nr; ++j) out[j] = src[j];
            for (int64_t j = nr; j < NR; ++j) out[j] = 0.0f;
        }
        return;
    }
    // B stored (N, K): column j of op(B) is a contiguous row of B.
    const float* cols[NR];
    for (int64_t j = 0; j < nr; ++j) cols[j] = B + (j0 + j) * ldb + p0;
    if (nr == NR) {
        for (int64_t p = 0; p < kc; ++p) {
            float* out = dst + p * NR;
            for (int64_t j = 0; j < NR; ++j) out[j] = cols[j][p];
        }
        return;
    }
    for (int64_t p = 0; p < kc; ++p) {
        float* out = dst + p * NR;
        for (int64_t j = 0; j < nr; ++j) out[j] = cols[j][p];
        for (int64_t j = nr; j < NR; ++j) out[j] = 0.0f;
    }
}

}  // namespace gemm
}  // namespace fastcnn
