// dot.cpp -- the dot strategy of sgemm: a small C and a long K (the
// weight-gradient GEMMs of the convolutions, e.g. 20 x 25 x 36864).
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N; kb = the K block
// (kDotKB); K8 = K rounded down to a multiple of 8; chunks = the K ranges.
//
// Each C element is a dot product of a row of op(A) and a column of op(B),
// 3 x 4 of them at a time in registers (dot_fn, gemm_internal.h), read
// straight from A and B when both run along K (A not transposed, B
// transposed). K is cut into a number of ranges fixed by K alone (one for
// sgemm_serial) and summed in a fixed order, so the result does not depend
// on the thread count.
#include <atomic>

#include "common.h"
#include "gemm/strategy.h"
#include "scratch.h"
#include "threadpool.h"

namespace fastcnn {
namespace gemm {

namespace {

// Small C, long K: every C element is one long dot product of a row of op(A)
// and a column of op(B). dot() takes them straight from A (M, K) and B (N, K)
// as stored in the NT case -- no packing, no padding of M or N to the 6 x 16
// tile; the other cases first copy each K block of op(A) / op(B) into that
// layout. The k < K8 (K rounded down to 8) are cut into `chunks` ranges on kb
// boundaries (split K; the count depends on K only, see gemm_dot), each with
// its own accumulators acc (M, N, 8) (8 lanes). Threads take chunks in turn,
// so one delayed by another process does not hold up the rest. At the end
// C = alpha * (sum over chunks 0, 1, .. and lanes 0..7, in that order, + the
// k >= K8 tail) + beta * C: a fixed order, whatever the thread count.
void dot_chunks(const Problem& g, dot_fn dot, int64_t kb, int threads, int64_t chunks) {
    const int64_t K8 = g.K & ~int64_t(7);
    const int64_t acc_size = ceil_div(g.M * g.N * 8, 16) * 16;            // (M, N, 8)
    const int64_t a_size = g.trans_a ? ceil_div(g.M * kb, 16) * 16 : 0;  // (M, kb)
    const int64_t b_size = g.trans_b ? 0 : ceil_div(g.N * kb, 16) * 16;  // (N, kb)
    const int64_t copy_size = a_size + b_size + 16;
    Scratch scratch(static_cast<size_t>(acc_size * chunks + copy_size * threads));
    float* accs = scratch.get();  // chunks x (M, N, 8)
    std::atomic<int64_t> next_chunk{0};

    auto run = [&](int t) {
        float* a_t = accs + acc_size * chunks + copy_size * t;  // (M, kb)
        float* b_t = a_t + a_size;                              // (N, kb)
        for (int64_t ch; (ch = next_chunk.fetch_add(1)) < chunks;) {
            float* acc = accs + ch * acc_size;  // (M, N, 8)
            for (int64_t x = 0; x < g.M * g.N * 8; ++x) acc[x] = 0.0f;
            int64_t k0, k1;
            slice(K8, kb, chunks, ch, &k0, &k1);
            for (int64_t p0 = k0; p0 < k1; p0 += kb) {
                const int64_t kc = min64(kb, k1 - p0);
                const float* a = g.A + p0;  // (M, kc), row stride lda
                int64_t lda = g.lda;
                if (g.trans_a) {  // A stored (K, M)
                    transpose_block(g.A + p0 * g.lda, g.lda, kc, g.M, a_t, kb);
                    a = a_t;
                    lda = kb;
                }
                const float* b = g.B + p0;  // (N, kc), row stride ldb
                int64_t ldb = g.ldb;
                if (!g.trans_b) {  // B stored (K, N)
                    transpose_block(g.B + p0 * g.ldb, g.ldb, kc, g.N, b_t, kb);
                    b = b_t;
                    ldb = kb;
                }
                dot(g.M, g.N, kc, a, lda, b, ldb, acc);
            }
        }
    };
    pool::run(threads, pool::PartFn(run));
    for (int64_t i = 0; i < g.M; ++i) {
        for (int64_t j = 0; j < g.N; ++j) {
            float sum = 0.0f;
            for (int64_t ch = 0; ch < chunks; ++ch) {
                const float* lanes = accs + ch * acc_size + (i * g.N + j) * 8;  // (8,)
                sum += ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                       ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
            }
            for (int64_t p = K8; p < g.K; ++p) {
                const float a = g.trans_a ? g.A[p * g.lda + i] : g.A[i * g.lda + p];
                const float b = g.trans_b ? g.B[j * g.ldb + p] : g.B[p * g.ldb + j];
                sum += a * b;
            }
            float* c = g.C + i * g.ldc + j;
            *c = (g.beta == 0.0f) ? g.alpha * sum : g.alpha * sum + g.beta * *c;
        }
    }
}

}  // namespace

void gemm_dot(const Problem& g, const Ukernels& kernels, bool serial, int max_threads) {
    // K in kDotChunks ranges (one for sgemm_serial); threads: at most one
    // per range, and only with enough work (M * N <= kDotMaxMN: no overflow).
    const int64_t blocks = ceil_div(g.K & ~int64_t(7), kDotKB);
    const int64_t chunks = serial ? 1 : min64(blocks, kDotChunks);
    int64_t threads = min64(max_threads, chunks);
    threads = max64(1, min64(threads, g.M * g.N * g.K / kMinWorkPerThread));
    dot_chunks(g, kernels.dot, kDotKB, static_cast<int>(threads), chunks);
}

}  // namespace gemm
}  // namespace fastcnn
