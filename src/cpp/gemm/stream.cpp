// stream.cpp -- the streaming strategies of sgemm (stream_nn, stream_nt,
// stream_tn) and the fused dx-then-update of a dense layer: the part that
// prepares op(A) and shares the work among threads; the ISA kernels that do
// the arithmetic are stream_ref.cpp, stream_avx2.cpp and stream_avx512.cpp.
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N; for the dense
// layer N = batch, I = input features, O = output features.
//
// A fully connected layer at a mini-batch of ~10: out = x . w (M = batch,
// small), dx = dout . w^T (M small, B transposed), dw = x^T . dout (K =
// batch, small). Each weight is used only ~M (or K) times, so these GEMMs are
// bound by reading (and for dw writing) the big matrix, and the tiled paths'
// strided panel reads are slow from DRAM. The stream kernels
// (gemm_internal.h) go through B and C row by row instead, with op(A) (tiny)
// first copied as alpha * op(A) when it is not already in the needed layout.
// Threads take ranges of columns (rows for small K) in turn; each C value is
// computed by one thread in a fixed order, so the result does not depend on
// the thread count. Scratch (the copy of op(A), nn's per-thread C blocks) is
// allocated before the parallel region.
#include "common.h"
#include "gemm/strategy.h"
#include "scratch.h"
#include "threadpool.h"

namespace fastcnn {
namespace gemm {

void gemm_stream(const Problem& g, const Ukernels& kernels, Path path, int max_threads) {
    // The operand op(A) as the kernel wants it, times alpha: a (M, K) for nn/nt,
    // at (K, M) for tn. Used in place when it already is (alpha == 1).
    const bool want_t = (path == Path::stream_tn);  // at (K, M)
    const bool in_place = g.alpha == 1.0f && (g.trans_a == want_t);
    Scratch copy(in_place ? 0 : static_cast<size_t>(g.M * g.K));
    const float* a = g.A;
    int64_t lda = g.lda;
    if (!in_place) {
        float* dst = copy.get();
        const int64_t rows = want_t ? g.K : g.M, cols = want_t ? g.M : g.K;
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c)
                dst[r * cols + c] = g.alpha * (g.trans_a == want_t ? g.A[r * g.lda + c]
                                                                   : g.A[c * g.lda + r]);
        a = dst;
        lda = cols;
    }
    const int64_t extent = want_t ? g.M : g.N;  // what the threads share out
    const int64_t tasks = ceil_div(extent, kStreamChunk);
    const int64_t threads = max64(1, min64(min64(max_threads, tasks),
                                           g.M * g.N * g.K / kMinWorkPerThread));
    // nn updates its block of C (M rows x one chunk of columns) once per four
    // rows of B. Rows of C are not 64-byte aligned (a 1000-wide layer: 4000-byte
    // rows), so two threads' neighbouring chunks share cache lines, and updating
    // C in place would bounce the lines between the cores on every update. So
    // each thread works on its own copy of its block.
    const int64_t block_size = path == Path::stream_nn ? g.M * kStreamChunk : 0;
    Scratch blocks(static_cast<size_t>(block_size * threads));
    auto task = [&](int64_t t, int thread) {
        const int64_t lo = t * kStreamChunk, hi = min64(extent, lo + kStreamChunk);
        if (path == Path::stream_nn) {
            float* c = blocks.get() + thread * block_size;  // (M, kStreamChunk)
            const int64_t w = hi - lo;
            for (int64_t r = 0; r < g.M && g.beta != 0.0f; ++r) {
                const float* src = g.C + r * g.ldc + lo;
                for (int64_t j = 0; j < w; ++j) c[r * kStreamChunk + j] = src[j];
            }
            kernels.stream_nn(g.M, g.K, 0, w, a, lda, g.B + lo, g.ldb, g.beta, c, kStreamChunk);
            for (int64_t r = 0; r < g.M; ++r) {
                float* dst = g.C + r * g.ldc + lo;
                for (int64_t j = 0; j < w; ++j) dst[j] = c[r * kStreamChunk + j];
            }
        } else if (path == Path::stream_nt) {
            kernels.stream_nt(g.M, g.K, lo, hi, a, lda, g.B, g.ldb, g.beta, g.C, g.ldc);
        } else {
            kernels.stream_tn(g.K, lo, hi, g.N, a, lda, g.B, g.ldb, g.beta, g.C, g.ldc);
        }
    };
    pool::parallel_for_dynamic(tasks, static_cast<int>(threads), task);
}

// dx = dout . w^T, then w = beta * w + alpha * x^T . dout, one block of rows
// of w at a time (see sgemm_dx_then_update in fastcnn.h): the block is read
// by stream_nt for dx's columns and then updated by stream_tn while it is
// still in L2, so w crosses the memory bus once each way instead of being
// read twice. Both kernels compute every value whole, in a fixed order, so
// the values are those of the two separate streaming GEMMs.
void dx_then_update(const Ukernels& kernels, int64_t N, int64_t I, int64_t O,
                    const float* dout, const float* x, float alpha, float beta, float* w,
                    float* dx, int max_threads) {
    Scratch at_copy(static_cast<size_t>(N * I));  // alpha * x (N, I), as gemm_stream makes it
    float* at = at_copy.get();
    for (int64_t e = 0; e < N * I; ++e) at[e] = alpha * x[e];
    const int64_t tasks = ceil_div(I, kStreamChunk);  // kStreamChunk rows of w: 64 x O floats
    const int64_t threads =
        max64(1, min64(min64(max_threads, tasks), N * I * O / kMinWorkPerThread));
    auto task = [&](int64_t t, int) {
        const int64_t lo = t * kStreamChunk, hi = min64(I, lo + kStreamChunk);
        kernels.stream_nt(N, O, lo, hi, dout, O, w, O, 0.0f, dx, I);
        kernels.stream_tn(N, lo, hi, O, at, I, dout, O, beta, w, O);
    };
    pool::parallel_for_dynamic(tasks, static_cast<int>(threads), task);
}

}  // namespace gemm
}  // namespace fastcnn
