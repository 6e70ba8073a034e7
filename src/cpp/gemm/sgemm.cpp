// sgemm.cpp -- PLACEHOLDER until the packed GEMM lands: forwards to sgemm_naive.
#include "fastcnn.h"

namespace fastcnn {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
           float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc) {
    sgemm_naive(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace fastcnn
