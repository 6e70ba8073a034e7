// sgemm_naive.cpp -- the plain GEMM: the oracle for sgemm's strategies
// (tests/test_gemm.py, through _core._sgemm_naive).
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N.
//
// Same contract as fastcnn::sgemm (see fastcnn.h). Accumulates in double so
// it can serve as a reference; slow on purpose, never used by an op.
#include "fastcnn.h"

namespace fastcnn {

void sgemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                 float beta, float* C, int64_t ldc) {
    for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
            double acc = 0.0;
            for (int64_t p = 0; p < K; ++p) {
                const float a = trans_a ? A[p * lda + i] : A[i * lda + p];
                const float b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
                acc += static_cast<double>(a) * b;
            }
            float* c = &C[i * ldc + j];
            const float scaled = alpha * static_cast<float>(acc);
            *c = (beta == 0.0f) ? scaled : scaled + beta * *c;
        }
    }
}

}  // namespace fastcnn
