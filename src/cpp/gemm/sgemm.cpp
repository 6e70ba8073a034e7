// sgemm.cpp -- the packed, cache-blocked single-precision GEMM (BLIS style).
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N. MR NR MC KC NC are
// the block sizes of the SIMD path in use (blocking.h, read from the kernels'
// table once per call); mc kc nc mr nr the actual extents of a block.
//
// C (M, N; row stride ldc) = alpha * op(A) * op(B) + beta * C, exactly the
// contract of fastcnn::sgemm in fastcnn.h (beta == 0: C is write-only).
//
// Three paths (plus the streaming ones further down). The first two are built
// from the same packing and micro-kernels, so every C element gets the same
// instructions in the same order (the result does not depend on which of them
// runs, nor on the thread count); the third, for a small C and a long K, cuts
// K into a number of ranges fixed by K alone (summed in a fixed order), so it
// does not depend on the thread count either. sgemm_serial is sgemm on the
// calling thread for callers that share out work among threads themselves
// (the convolutions); its dot path sums K in one range:
//
// Dot (C at most 4096 elements, K >= 256, chosen by use_dot_path: the
// weight-gradient GEMMs of the convolutions, e.g. 20 x 25 x 36864): each C
// element is a dot product of a row of op(A) and a column of op(B), 3 x 4 of
// them at a time in registers, read straight from A and B when both run along
// K (A not transposed, B transposed); see gemm_dot.
//
// Whole A (op(A) small: one K block of it fits L2; all conv GEMMs, M = 20,
// 40 or 500 with K <= 640): each thread packs all of op(A) * alpha into its
// own buffer (cheap, and no thread waits for another's packing). The columns
// of C are cut into chunks of NR-wide panels, several per thread. Each thread
// works through its own contiguous run of chunks (the same on every call, so
// its columns of B and C stay in its core's caches), then takes chunks other
// threads have not started: a thread delayed by another process on this
// shared machine does not hold up the rest. Per chunk:
//   pc  over K in steps of ~KC   beta applies at pc == 0, later blocks add
//   jr  over the chunk's columns B panel (kc, NR), in L1, packed by the
//                                first tile that uses it
//   ir  over all of M            micro-kernel on an MR x NR tile of C
//
// Blocked (large op(A), e.g. 1024 x 1024), per BLIS, each thread on its own
// part of C (a tm x tn grid on MR/NR boundaries, chosen to duplicate the least
// packing), no shared buffers, no barriers:
//   jc  over N in steps of NC    B block  (kc, nc)  per thread, in L3
//   pc  over K in steps of ~KC
//   ic  over M in steps of MC    A block  (mc, kc)  per thread, in L2
//   jr  over nc in steps of NR   B panel  (kc, NR)  packed during the first ic
//   ir  over mc in steps of MR   micro-kernel
//
// The first tile of each B panel reads op(B) in place and writes the packed
// panel as it goes (ukernel_pack_fn), so the L3-bound packing overlaps FMAs.
// Pack buffers are allocated per call, before any parallel region (so a
// std::bad_alloc is thrown outside it); nothing throws inside.
#include <atomic>
#include <cstddef>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <new>

#include "threadpool.h"

#include "common.h"
#include "fastcnn.h"
#include "gemm/gemm_internal.h"
#include "scratch.h"

namespace fastcnn {

namespace {

// Below this many multiply-adds one thread is faster than waking a second.
constexpr int64_t kMinWorkPerThread = int64_t(1) << 16;
// Whole-A path: column chunks per thread (more = better balance when a
// thread is delayed, fewer = less scheduling), and the largest packed op(A).
constexpr int64_t kChunksPerThread = 4;
constexpr int64_t kWholeAMaxFloats = int64_t(4) << 20;  // 16 MiB per thread

struct Problem {
    bool trans_a, trans_b;
    int64_t M, N, K;
    float alpha;
    const float* A;
    int64_t lda;
    const float* B;
    int64_t ldb;
    float beta;
    float* C;
    int64_t ldc;
};

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

// ------------------------------------------------------------- whole A ----

// C[:, n0:n1] from the packed op(A): a_packed holds, for the K block
// starting at pc, m_pad/MR A panels (kc, MR) at a_packed + pc*m_pad.
// b_panel (kc_step, NR) is this thread's buffer.
void columns_whole_a(const Problem& g, const gemm::Ukernels& kernels, const float* a_packed,
                      int64_t m_pad, int64_t kc_step, int64_t n0, int64_t n1, float* b_panel) {
    const int64_t MR = kernels.blk.mr, NR = kernels.blk.nr;
    for (int64_t pc = 0; pc < g.K; pc += kc_step) {
        const int64_t kc = min64(kc_step, g.K - pc);
        const float beta = (pc == 0) ? g.beta : 1.0f;
        const float* a_block = a_packed + pc * m_pad;  // m_pad/MR panels (kc, MR)
        for (int64_t jr = n0; jr < n1; jr += NR) {
            const int64_t nr = min64(NR, n1 - jr);
            float* c_col = g.C + jr;
            int64_t ir = 0;
            if (!g.trans_b && nr == NR) {
                const float* b_src = g.B + pc * g.ldb + jr;  // (kc, NR), row stride ldb
                kernels.tile_pack_b(kc, a_block, b_src, g.ldb, b_panel, c_col, g.ldc, beta,
                                    min64(MR, g.M));
                ir = MR;
            } else {
                gemm::pack_b_panel(g.trans_b, g.B, g.ldb, pc, kc, jr, nr, NR, b_panel);
            }
            for (; ir < g.M; ir += MR) {
                kernels.tile(kc, a_block + ir * kc, b_panel, c_col + ir * g.ldc, g.ldc, beta,
                             min64(MR, g.M - ir), nr);
            }
        }
    }
}

// All of op(A) (rows 0..M, every K block), times alpha, into a_packed: for the
// K block starting at pc, m_pad/MR A panels (kc, MR) at a_packed + pc*m_pad.
void pack_whole_a(const Problem& g, int64_t MR, int64_t m_pad, int64_t kc_step,
                  float* a_packed) {
    for (int64_t pc = 0; pc < g.K; pc += kc_step) {
        const int64_t kc = min64(kc_step, g.K - pc);
        gemm::pack_a(g.trans_a, g.A, g.lda, 0, g.M, pc, kc, g.alpha, MR, a_packed + pc * m_pad);
    }
}

void gemm_whole_a(const Problem& g, const gemm::Ukernels& kernels, int64_t kc_step,
                  int max_threads) {
    const int64_t MR = kernels.blk.mr, NR = kernels.blk.nr;
    const int64_t m_pad = ceil_div(g.M, MR) * MR;
    const int64_t n_panels = ceil_div(g.N, NR);
    int64_t threads = min64(max_threads, n_panels);
    threads = min64(threads, max64(1, g.M * g.N * g.K / kMinWorkPerThread));
    const int64_t chunk_panels = ceil_div(n_panels, threads * kChunksPerThread);
    const int64_t chunks = ceil_div(n_panels, chunk_panels);

    // Per thread: all of op(A) packed (m_pad, K), then one B panel (kc, NR).
    // Sizes are rounded to 64 floats (256 bytes) so no two threads ever write
    // the same 128-byte line pair (which the hardware prefetchers move as one).
    const int64_t a_size = ceil_div(m_pad * g.K, 64) * 64;
    const int64_t b_size = ceil_div(kc_step * NR, 64) * 64;
    const int64_t per_thread = a_size + b_size + 64;
    Scratch scratch(static_cast<size_t>(per_thread * threads));

    // Thread t owns chunks [first(t), first(t+1)) -- a contiguous block of
    // columns, the same on every call, so its part of B and C stays in its
    // core's L2 from one call to the next -- and takes them in order through
    // next_chunk[t]. A thread that runs out takes the others' remaining chunks.
    struct alignas(64) Counter {
        std::atomic<int64_t> value;
    };
    std::unique_ptr<Counter[]> next_chunk(new Counter[threads]);
    auto first = [&](int64_t t) { return chunks * t / threads; };
    for (int64_t t = 0; t < threads; ++t) next_chunk[t].value.store(first(t));

    auto work = [&](int64_t t) {
        float* a_packed = scratch.get() + t * per_thread;  // (m_pad, K) by K blocks
        float* b_panel = a_packed + a_size;                  // (kc, NR)
        bool a_ready = false;  // packed on taking the first chunk (a late thread may get none)
        for (int64_t r = 0; r < threads; ++r) {
            const int64_t owner = (t + r) % threads;
            for (int64_t ch; (ch = next_chunk[owner].value.fetch_add(1)) < first(owner + 1);) {
                if (!a_ready) {
                    pack_whole_a(g, MR, m_pad, kc_step, a_packed);
                    a_ready = true;
                }
                const int64_t n0 = ch * chunk_panels * NR;
                const int64_t n1 = min64(g.N, n0 + chunk_panels * NR);
                columns_whole_a(g, kernels, a_packed, m_pad, kc_step, n0, n1, b_panel);
            }
        }
    };
    if (threads > 1) {
        pool::run(static_cast<int>(threads), pool::PartFn(work));
        return;
    }
    work(0);
}

// ------------------------------------------------------------- blocked ----

// The i-th of `parts` nearly equal slices of `count` tiles of size `tile`,
// as element offsets [begin, end) clipped to `total`.
void slice(int64_t total, int64_t tile, int64_t parts, int64_t i, int64_t* begin, int64_t* end) {
    const int64_t tiles = ceil_div(total, tile);
    *begin = min64(total, (tiles * i / parts) * tile);
    *end = min64(total, (tiles * (i + 1) / parts) * tile);
}

// Thread grid tm x tn (tm * tn threads): the one packing the least, among
// those where every thread gets at least one tile and enough work.
void choose_grid(int64_t M, int64_t N, int64_t K, int64_t MR, int64_t NR, int max_threads,
                 int* tm, int* tn) {
    *tm = 1;
    *tn = 1;
    const int64_t tiles_m = ceil_div(M, MR);
    const int64_t tiles_n = ceil_div(N, NR);
    const int64_t work = M * N * K;  // multiply-adds (sizes checked by the caller)
    for (int t = max_threads; t > 1; --t) {
        if (work / t < kMinWorkPerThread) continue;
        int64_t best_cost = -1;
        for (int rows = 1; rows <= t; ++rows) {
            if (t % rows != 0) continue;
            const int cols = t / rows;
            if (rows > tiles_m || cols > tiles_n) continue;
            // Total packing: each row part is packed by `cols` threads, each
            // column part by `rows` threads.
            const int64_t cost = cols * M + rows * N;
            if (best_cost < 0 || cost < best_cost) {
                best_cost = cost;
                *tm = rows;
                *tn = t / rows;
            }
        }
        if (best_cost >= 0) return;
    }
}

// C[m0:m1, n0:n1] of problem g, on one thread, with its own pack buffers:
// a_buf (min(MC, rows) rounded up to MR, kc_step), b_buf (kc_step, NR) when one
// ic block covers the rows, else (kc_step, min(NC, cols) rounded up to NR).
void gemm_part(const Problem& g, const gemm::Ukernels& kernels, int64_t kc_step,
               int64_t m0, int64_t m1, int64_t n0, int64_t n1, float* a_buf, float* b_buf) {
    const int64_t MR = kernels.blk.mr, NR = kernels.blk.nr, MC = kernels.blk.mc,
                  NC = kernels.blk.nc;
    const bool one_ic = (m1 - m0) <= MC;
    for (int64_t jc = n0; jc < n1; jc += NC) {
        const int64_t nc = min64(NC, n1 - jc);
        for (int64_t pc = 0; pc < g.K; pc += kc_step) {
            const int64_t kc = min64(kc_step, g.K - pc);
            const float beta = (pc == 0) ? g.beta : 1.0f;
            for (int64_t ic = m0; ic < m1; ic += MC) {
                const int64_t mc = min64(MC, m1 - ic);
                const bool first_ic = (ic == m0);
                gemm::pack_a(g.trans_a, g.A, g.lda, ic, mc, pc, kc, g.alpha, MR, a_buf);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int64_t nr = min64(NR, nc - jr);
                    float* b_panel = one_ic ? b_buf : b_buf + jr * kc;  // (kc, NR)
                    float* c_col = g.C + jc + jr;
                    int64_t ir = 0;
                    if (first_ic && !g.trans_b && nr == NR) {
                        // The first tile packs the B panel while it uses it.
                        const float* b_src = g.B + pc * g.ldb + jc + jr;  // (kc, NR), row stride ldb
                        kernels.tile_pack_b(kc, a_buf, b_src, g.ldb, b_panel, c_col + ic * g.ldc,
                                            g.ldc, beta, min64(MR, mc));
                        ir = MR;
                    } else if (first_ic) {
                        gemm::pack_b_panel(g.trans_b, g.B, g.ldb, pc, kc, jc + jr, nr, NR,
                                           b_panel);
                    }
                    for (; ir < mc; ir += MR) {
                        const int64_t mr = min64(MR, mc - ir);
                        kernels.tile(kc, a_buf + ir * kc, b_panel, c_col + (ic + ir) * g.ldc,
                                     g.ldc, beta, mr, nr);
                    }
                }
            }
        }
    }
}

void gemm_blocked(const Problem& g, const gemm::Ukernels& kernels, int64_t kc_step,
                  int max_threads) {
    const int64_t MR = kernels.blk.mr, NR = kernels.blk.nr, MC = kernels.blk.mc,
                  NC = kernels.blk.nc;
    int tm = 1, tn = 1;
    choose_grid(g.M, g.N, g.K, MR, NR, max_threads, &tm, &tn);
    const int threads = tm * tn;

    // Largest part any thread gets, to size the per-thread buffers.
    const int64_t rows = ceil_div(ceil_div(g.M, MR), tm) * MR;
    const int64_t cols = ceil_div(ceil_div(g.N, NR), tn) * NR;
    const int64_t a_size = ceil_div(min64(MC, rows) * kc_step, 16) * 16;  // (mc, kc)
    const int64_t b_size =
        ceil_div((rows <= MC ? NR : min64(NC, cols)) * kc_step, 16) * 16;  // (kc, nc)
    const int64_t per_thread = a_size + b_size;  // both start on a 64-byte line
    Scratch scratch(static_cast<size_t>(per_thread * threads));

    auto run = [&](int t) {
        int64_t m0, m1, n0, n1;
        slice(g.M, MR, tm, t / tn, &m0, &m1);
        slice(g.N, NR, tn, t % tn, &n0, &n1);
        if (m0 >= m1 || n0 >= n1) return;
        float* a_buf = scratch.get() + t * per_thread;
        gemm_part(g, kernels, kc_step, m0, m1, n0, n1, a_buf, a_buf + a_size);
    };
    if (threads > 1) {
        pool::run(threads, pool::PartFn(run));
        return;
    }
    run(0);
}

// ----------------------------------------------------------------- dot ----

// Dot path: K block (multiple of 8; the rows of op(A) and op(B) in one block,
// (M + N) x kDotKB floats, stay in L1/L2 while every tile re-reads them), and
// the largest C it takes (the per-thread accumulators are M x N x 8 floats).
constexpr int64_t kDotKB = 256;
constexpr int64_t kDotMaxMN = 4096;
// K ranges of the dot path (at most; one per K block below that): enough for
// 2 threads to share out 4 each. Fixed, not per thread: the order of the sums,
// and so the result, is the same whether 1, 2 or 16 threads run them.
constexpr int64_t kDotChunks = 8;

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

// Small C, long K: every C element is one long dot product of a row of op(A)
// and a column of op(B). dot() takes them straight from A (M, K) and B (N, K)
// as stored in the NT case -- no packing, no padding of M or N to the 6 x 16
// tile; the other cases first copy each K block of op(A) / op(B) into that
// layout. The k < K8 (K rounded down to 8) are cut into `chunks` ranges on kb
// boundaries (split K; the count depends on K only, see sgemm_impl), each with
// its own accumulators acc (M, N, 8) (8 lanes). Threads take chunks in turn,
// so one delayed by another process does not hold up the rest. At the end
// C = alpha * (sum over chunks 0, 1, .. and lanes 0..7, in that order, + the
// k >= K8 tail) + beta * C: a fixed order, whatever the thread count.
void gemm_dot(const Problem& g, gemm::dot_fn dot, int64_t kb, int threads, int64_t chunks) {
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
                    gemm::transpose_block(g.A + p0 * g.lda, g.lda, kc, g.M, a_t, kb);
                    a = a_t;
                    lda = kb;
                }
                const float* b = g.B + p0;  // (N, kc), row stride ldb
                int64_t ldb = g.ldb;
                if (!g.trans_b) {  // B stored (K, N)
                    gemm::transpose_block(g.B + p0 * g.ldb, g.ldb, kc, g.N, b_t, kb);
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

// ----------------------------------------------------------- streaming ----
//
// A fully connected layer at mini-batch ~10: out = x . w (M = batch, small),
// dx = dout . w^T (M small, B transposed), dw = x^T . dout (K = batch, small).
// Each weight is used only ~M (or K) times, so these GEMMs are bound by
// reading (and for dw writing) the big matrix; the tiled paths' strided
// panel reads ran at a few GB/s from DRAM. The stream kernels
// (gemm_internal.h) go through B and C row by row instead, with op(A) (tiny)
// first copied as alpha * op(A) when it is not already in the needed layout.
// Threads take ranges of columns (rows for small K) in turn; each C value is
// computed by one thread in a fixed order, so the result does not depend on
// the thread count.

// Fewest columns worth the small-M path, and the largest K of the small-K path.
constexpr int64_t kStreamMinN = 64;
constexpr int64_t kStreamMaxK = 16;
// nt computes each C value as one dot product of length K: below this K the
// horizontal sums cost more than the packed path (a 10-way output layer's
// dx, K = 10: 28 us against 6 us).
constexpr int64_t kStreamMinDotK = 32;
constexpr int64_t kStreamChunk = 64;  // columns (rows) per thread task; multiple of 32

enum class Stream { none, nn, nt, tn };

Stream stream_path(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t NR) {
    if (M <= gemm::kStreamMaxM && N >= kStreamMinN) {
        if (!trans_b) return Stream::nn;
        if (K >= kStreamMinDotK && !use_dot_path(trans_a, trans_b, M, N, K, NR)) return Stream::nt;
    }
    if (K <= kStreamMaxK && !trans_b && M >= kStreamMinN && N >= kStreamMinN) return Stream::tn;
    return Stream::none;
}

void gemm_stream(const Problem& g, const gemm::Ukernels& kernels, Stream path, int max_threads) {
    // The operand op(A) as the kernel wants it, times alpha: a (M, K) for nn/nt,
    // at (K, M) for tn. Used in place when it already is (alpha == 1).
    const bool want_t = (path == Stream::tn);  // at (K, M)
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
    // C in place made the lines bounce between the cores on every update (2
    // threads were slower than 1). Each thread works on its own copy instead.
    const int64_t block_size = path == Stream::nn ? g.M * kStreamChunk : 0;
    Scratch blocks(static_cast<size_t>(block_size * threads));
    auto task = [&](int64_t t, int thread) {
        const int64_t lo = t * kStreamChunk, hi = min64(extent, lo + kStreamChunk);
        if (path == Stream::nn) {
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
        } else if (path == Stream::nt) {
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
void dx_then_update(const gemm::Ukernels& kernels, int64_t N, int64_t I, int64_t O,
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

// K in nearly equal blocks of at most KC (500 -> 250 + 250, not 256 + 244).
int64_t k_step(int64_t K, int64_t KC) { return ceil_div(K, ceil_div(K, KC)); }

// Whether the whole-A path takes op(A) (M, K): one K block of it packed fits
// the L2 share of an A block (MC x KC) and all of it stays modest.
bool whole_a_fits(int64_t M, int64_t K, const gemm::Blocking& blk) {
    const int64_t m_pad = ceil_div(M, blk.mr) * blk.mr;
    return m_pad * k_step(K, blk.kc) <= blk.mc * blk.kc && m_pad * K <= kWholeAMaxFloats;
}

}  // namespace

// ------------------------------------------------------ packed op(A) ----
//
// The whole-A layout of op(A) * alpha, packed once by the caller and shared
// by many single-threaded GEMMs: a conv layer multiplies the same weights by
// every image's columns, and packing them per image cost ~5% of a training
// step at mini-batch 10. Same packing and micro-kernels as the whole-A path
// of sgemm, so the values are those sgemm computes on that path. The layout
// (MR, KC) is the path's: sgemm_pack_a returns the path, and the caller hands
// it back to sgemm_with_packed_a, so a set_isa in between cannot mix layouts.

// The size is the largest any path's layout needs (ukernels_for only looks
// up tables), so a buffer sized before a set_isa still holds the packing.
int64_t sgemm_packed_a_size(int64_t M, int64_t K) {
    if (M <= 0 || K <= 0 || !whole_a_fits(M, K, gemm::active_ukernels().blk)) return 0;
    int64_t most = 0;
    for (int isa = 0; isa < gemm::kIsaCount; ++isa) {
        const int64_t mr = gemm::ukernels_for(isa).blk.mr;
        most = max64(most, ceil_div(M, mr) * mr * K);
    }
    return most;
}

int sgemm_pack_a(bool trans_a, int64_t M, int64_t K, float alpha, const float* A, int64_t lda,
                 float* packed) {
    const int isa = gemm::active_isa_id();
    const gemm::Blocking blk = gemm::ukernels_for(isa).blk;
    const Problem g{trans_a, false, M, 0, K, alpha, A, lda, nullptr, 0, 0.0f, nullptr, 0};
    pack_whole_a(g, blk.mr, ceil_div(M, blk.mr) * blk.mr, k_step(K, blk.kc), packed);
    return isa;
}

void sgemm_with_packed_a(int layout, const float* packed, int64_t M, int64_t N, int64_t K,
                         bool trans_b, const float* B, int64_t ldb, float beta, float* C,
                         int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    const gemm::Ukernels kernels = gemm::ukernels_for(layout);  // the path it was packed for
    const gemm::Blocking& blk = kernels.blk;
    alignas(64) float b_panel[gemm::kMaxKC * gemm::kMaxNR];  // one B panel (kc, NR), on the stack
    const Problem g{false, trans_b, M, N, K, 1.0f, nullptr, 0, B, ldb, beta, C, ldc};
    columns_whole_a(g, kernels, packed, ceil_div(M, blk.mr) * blk.mr, k_step(K, blk.kc), 0, N,
                    b_panel);
}

namespace {

void sgemm_impl(bool serial, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                float beta, float* C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    const Problem g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
    const gemm::Ukernels kernels = gemm::active_ukernels();
    const int64_t kc_step = k_step(K, kernels.blk.kc);

    int max_threads = 1;
    if (!serial && !pool::in_parallel()) max_threads = pool::max_threads();
    const Stream stream = stream_path(trans_a, trans_b, M, N, K, kernels.blk.nr);
    if (stream != Stream::none) {
        gemm_stream(g, kernels, stream, max_threads);
        return;
    }
    if (use_dot_path(trans_a, trans_b, M, N, K, kernels.blk.nr)) {
        // K in kDotChunks ranges (one for sgemm_serial); threads: at most one
        // per range, and only with enough work (M * N <= kDotMaxMN: no overflow).
        const int64_t blocks = ceil_div(K & ~int64_t(7), kDotKB);
        const int64_t chunks = serial ? 1 : min64(blocks, kDotChunks);
        int64_t threads = min64(max_threads, chunks);
        threads = max64(1, min64(threads, M * N * K / kMinWorkPerThread));
        gemm_dot(g, kernels.dot, kDotKB, static_cast<int>(threads), chunks);
        return;
    }
    if (whole_a_fits(M, K, kernels.blk)) {
        gemm_whole_a(g, kernels, kc_step, max_threads);
    } else {
        gemm_blocked(g, kernels, kc_step, max_threads);
    }
}

}  // namespace

void sgemm_dx_then_update(int64_t N, int64_t I, int64_t O, const float* dout, const float* x,
                          float alpha, float beta, float* w, float* dx) {
    if (N <= 0 || I <= 0 || O <= 0) {
        sgemm(false, true, N, I, O, 1.0f, dout, O, w, O, 0.0f, dx, I);
        sgemm(true, false, I, O, N, alpha, x, I, dout, O, beta, w, O);
        return;
    }
    const gemm::Ukernels kernels = gemm::active_ukernels();
    const int64_t nr = kernels.blk.nr;
    if (stream_path(false, true, N, I, O, nr) != Stream::nt ||
        stream_path(true, false, I, O, N, nr) != Stream::tn) {
        sgemm(false, true, N, I, O, 1.0f, dout, O, w, O, 0.0f, dx, I);
        sgemm(true, false, I, O, N, alpha, x, I, dout, O, beta, w, O);
        return;
    }
    int max_threads = 1;
    if (!pool::in_parallel()) max_threads = pool::max_threads();
    dx_then_update(kernels, N, I, O, dout, x, alpha, beta, w, dx, max_threads);
}

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

}  // namespace fastcnn
