// sgemm.cpp -- the entry points of the single-precision GEMM and the choice
// of strategy: C (M, N; row stride ldc) = alpha * op(A) * op(B) + beta * C,
// exactly the contract of fastcnn::sgemm in fastcnn.h (beta == 0: C is
// write-only).
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N; MR NR MC KC of
// the SIMD path in use (blocking.h, read from the kernels' table once per
// call); for the dense layer of sgemm_dx_then_update N = batch, I = input
// features, O = output features.
//
// Each call reads the SIMD path's kernels and block table once, picks one
// strategy (choose_path; the strategies and their order: gemm/strategy.h)
// and runs it on up to every thread (sgemm) or on the calling thread alone
// (sgemm_serial, for callers that share out work among threads themselves,
// e.g. the convolutions: there the dot path sums K in one range). The
// result depends on the arguments only, not on the thread count.
#include "common.h"
#include "fastcnn.h"
#include "gemm/strategy.h"
#include "threadpool.h"

namespace fastcnn {
namespace gemm {

namespace {

// C = beta * C (beta == 0 writes zeros): the whole answer when K == 0.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
    for (int64_t i = 0; i < M; ++i) {
        float* row = C + i * ldc;  // (N,)
        if (beta == 0.0f) {
            for (int64_t j = 0; j < N; ++j) row[j] = 0.0f;
        } else if (beta != 1.0f) {
            for (int64_t j = 0; j < N; ++j) row[j] *= beta;
        }
    }
}

}  // namespace

// ------------------------------------------------------------- choice ----

// Whether the dot path beats the tiled paths, by a rough count of the work
// in multiply-adds: the MR x NR tiles compute N padded up to NR columns and
// pack all of op(A) and op(B) (~2 per value); the dot path does exactly
// M x N x K (plus ~10% for its accumulator traffic) but copies a transposed
// op(A) (TN) and op(B) (NN) at ~4 per value. E.g. 20 x 25 x 36864: 20 x 32
// tiles vs 20 x 25 dots; 10 x 100 x 640 NN: the copy of B does not pay.
bool use_dot_path(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t NR) {
    if (M * N > kDotMaxMN || K < kDotKB) return false;
    const int64_t n_pad = ceil_div(N, NR) * NR;
    const int64_t tiled = M * n_pad + 2 * (M + N);
    const int64_t copies = (trans_a ? M : 0) + (trans_b ? 0 : N);
    const int64_t dot = M * N + M * N / 10 + 4 * copies;
    return dot < tiled;  // both per unit of K
}

int64_t k_step(int64_t K, int64_t KC) { return ceil_div(K, ceil_div(K, KC)); }

bool whole_a_fits(int64_t M, int64_t K, const Blocking& blk) {
    const int64_t m_pad = ceil_div(M, blk.mr) * blk.mr;
    return m_pad * k_step(K, blk.kc) <= blk.mc * blk.kc && m_pad * K <= kWholeAMaxFloats;
}

Path choose_path(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                 const Blocking& blk) {
    if (M <= 0 || N <= 0) return Path::empty;
    if (K <= 0) return Path::scale;
    if (M <= kStreamMaxM && N >= kStreamMinN) {
        if (!trans_b) return Path::stream_nn;
        if (K >= kStreamMinDotK && !use_dot_path(trans_a, trans_b, M, N, K, blk.nr)) {
            return Path::stream_nt;
        }
    }
    if (K <= kStreamMaxK && !trans_b && M >= kStreamMinN && N >= kStreamMinN) {
        return Path::stream_tn;
    }
    if (use_dot_path(trans_a, trans_b, M, N, K, blk.nr)) return Path::dot;
    return whole_a_fits(M, K, blk) ? Path::whole_a : Path::blocked;
}

const char* path_name(Path path) {
    switch (path) {
        case Path::empty: return "empty";
        case Path::scale: return "scale";
        case Path::stream_nn: return "stream_nn";
        case Path::stream_nt: return "stream_nt";
        case Path::stream_tn: return "stream_tn";
        case Path::dot: return "dot";
        case Path::whole_a: return "whole_a";
        case Path::blocked: return "blocked";
    }
    return "";
}

}  // namespace gemm

// -------------------------------------------------------- entry points ----

namespace {

void sgemm_impl(bool serial, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                float beta, float* C, int64_t ldc) {
    const gemm::Ukernels kernels = gemm::active_ukernels();
    const gemm::Path path = gemm::choose_path(trans_a, trans_b, M, N, K, kernels.blk);
    const gemm::Problem g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
    int max_threads = 1;
    if (!serial && !pool::in_parallel()) max_threads = pool::max_threads();
    switch (path) {
        case gemm::Path::empty:
            return;
        case gemm::Path::scale:
            gemm::scale_c(M, N, beta, C, ldc);
            return;
        case gemm::Path::stream_nn:
        case gemm::Path::stream_nt:
        case gemm::Path::stream_tn:
            gemm::gemm_stream(g, kernels, path, max_threads);
            return;
        case gemm::Path::dot:
            gemm::gemm_dot(g, kernels, serial, max_threads);
            return;
        case gemm::Path::whole_a:
            gemm::gemm_whole_a(g, kernels, gemm::k_step(K, kernels.blk.kc), max_threads);
            return;
        case gemm::Path::blocked:
            gemm::gemm_blocked(g, kernels, gemm::k_step(K, kernels.blk.kc), max_threads);
            return;
    }
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
           float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc) {
    sgemm_impl(false, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                  float beta, float* C, int64_t ldc) {
    sgemm_impl(true, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char* sgemm_path(bool serial, bool trans_a, bool trans_b, int64_t M, int64_t N,
                       int64_t K) {
    (void)serial;  // both entry points choose alike (gemm/strategy.h)
    return gemm::path_name(
        gemm::choose_path(trans_a, trans_b, M, N, K, gemm::active_ukernels().blk));
}

GemmLimits gemm_limits() {
    GemmLimits l{};
    l.dot_kb = gemm::kDotKB;
    l.dot_max_mn = gemm::kDotMaxMN;
    l.dot_k_ranges = gemm::kDotChunks;
    l.stream_max_m = gemm::kStreamMaxM;
    l.stream_min_n = gemm::kStreamMinN;
    l.stream_min_dot_k = gemm::kStreamMinDotK;
    l.stream_max_k = gemm::kStreamMaxK;
    l.whole_a_max_floats = gemm::kWholeAMaxFloats;
    l.min_work_per_thread = gemm::kMinWorkPerThread;
    return l;
}

void sgemm_dx_then_update(int64_t N, int64_t I, int64_t O, const float* dout, const float* x,
                          float alpha, float beta, float* w, float* dx) {
    const gemm::Ukernels kernels = gemm::active_ukernels();
    const bool streams =
        gemm::choose_path(false, true, N, I, O, kernels.blk) == gemm::Path::stream_nt &&
        gemm::choose_path(true, false, I, O, N, kernels.blk) == gemm::Path::stream_tn;
    if (!streams) {
        sgemm(false, true, N, I, O, 1.0f, dout, O, w, O, 0.0f, dx, I);
        sgemm(true, false, I, O, N, alpha, x, I, dout, O, beta, w, O);
        return;
    }
    int max_threads = 1;
    if (!pool::in_parallel()) max_threads = pool::max_threads();
    gemm::dx_then_update(kernels, N, I, O, dout, x, alpha, beta, w, dx, max_threads);
}

}  // namespace fastcnn
