// stream_ref.cpp -- portable kernels of the streaming GEMM paths (stream.cpp):
// the readable statement of what stream_*_avx2 compute, and the code the
// generic ISA runs. Contracts in gemm_internal.h.
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N; [j0, j1) the
// columns (nn, nt) or [i0, i1) the rows (tn) of C one call computes.
#include "common.h"
#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

void stream_nn_ref(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    for (int64_t jb = j0; jb < j1; jb += kStreamColumns) {
        const int64_t je = min64(j1, jb + kStreamColumns);
        for (int64_t r = 0; r < M; ++r) {
            float* c = C + r * ldc;
            for (int64_t j = jb; j < je; ++j) c[j] = (beta == 0.0f) ? 0.0f : beta * c[j];
        }
        // Row p of B, front to back, added into every row of the C block.
        for (int64_t p = 0; p < K; ++p) {
            const float* b = B + p * ldb;
            for (int64_t r = 0; r < M; ++r) {
                const float ar = a[r * lda + p];
                float* c = C + r * ldc;
                for (int64_t j = jb; j < je; ++j) c[j] += ar * b[j];
            }
        }
    }
}

void stream_nt_ref(int64_t M, int64_t K, int64_t j0, int64_t j1, const float* a, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    const int64_t K8 = K & ~int64_t(7);
    for (int64_t j = j0; j < j1; ++j) {
        const float* b = B + j * ldb;  // row j of B = column j of op(B)
        for (int64_t i = 0; i < M; ++i) {
            const float* ai = a + i * lda;
            float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            for (int64_t p = 0; p < K8; p += 8)
                for (int l = 0; l < 8; ++l) lane[l] += ai[p + l] * b[p + l];
            float s = ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
                      ((lane[1] + lane[5]) + (lane[3] + lane[7]));
            for (int64_t p = K8; p < K; ++p) s += ai[p] * b[p];
            float* c = C + i * ldc + j;
            *c = (beta == 0.0f) ? s : s + beta * *c;
        }
    }
}

void stream_tn_ref(int64_t K, int64_t i0, int64_t i1, int64_t N, const float* at, int64_t ldat,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    for (int64_t i = i0; i < i1; ++i) {
        float* c = C + i * ldc;
        for (int64_t j = 0; j < N; ++j) c[j] = (beta == 0.0f) ? 0.0f : beta * c[j];
        for (int64_t p = 0; p < K; ++p) {
            const float a = at[p * ldat + i];
            const float* b = B + p * ldb;
            for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
        }
    }
}

}  // namespace gemm
}  // namespace fastcnn
