// ukernel_ref.cpp -- the portable GEMM micro-kernel (plain C++, any CPU).
//
// Size letters: MR x NR = register tile (blocking.h); kc = inner extent;
// mr x nr = the part of the tile that lies inside C (edge tiles are smaller).
//
// c (mr, nr; row stride ldc) = beta * c + a_panel (kc, MR) * b_panel (kc, NR),
// restricted to mr x nr. beta == 0: c is only written. Same contract and
// signature as ukernel_avx2 (gemm_internal.h); this one is the fallback and the
// twin it is checked against. Written so the compiler can vectorise the j loop
// with baseline SSE2.
#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

void ukernel_ref(int64_t kc, const float* a_panel, const float* b_panel,
                 float* c, int64_t ldc, float beta, int64_t mr, int64_t nr) {
    float acc[MR][NR] = {};  // (MR, NR) tile of a_panel * b_panel
    for (int64_t p = 0; p < kc; ++p) {
        const float* a = a_panel + p * MR;  // (MR,) column p of op(A) block
        const float* b = b_panel + p * NR;  // (NR,) row p of op(B) block
        for (int64_t i = 0; i < MR; ++i) {
            const float ai = a[i];
            for (int64_t j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
        }
    }
    for (int64_t i = 0; i < mr; ++i) {
        float* row = c + i * ldc;  // (nr,)
        if (beta == 0.0f) {
            for (int64_t j = 0; j < nr; ++j) row[j] = acc[i][j];
        } else {
            for (int64_t j = 0; j < nr; ++j) row[j] = beta * row[j] + acc[i][j];
        }
    }
}

}  // namespace gemm
}  // namespace fastcnn
