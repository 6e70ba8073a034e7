// blocked.cpp -- the blocked strategy of sgemm: the BLIS loops, for an op(A)
// too large for the whole-A path (e.g. 1024 x 1024).
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N; MR NR MC KC NC of
// the SIMD path in use (blocking.h); mc kc nc mr nr the actual extents of a
// block; tm x tn the thread grid.
//
// Each thread computes its own part of C (a tm x tn grid on MR/NR boundaries,
// chosen to duplicate the least packing), with its own pack buffers: no
// shared buffers, no barriers.
//   jc  over N in steps of NC    B block  (kc, nc)  per thread, in L3
//   pc  over K in steps of ~KC   beta applies at pc == 0, later blocks add
//   ic  over M in steps of MC    A block  (mc, kc)  per thread, in L2
//   jr  over nc in steps of NR   B panel  (kc, NR)  packed during the first ic
//   ir  over mc in steps of MR   micro-kernel
// The first tile of each B panel reads op(B) in place and writes the packed
// panel as it goes (ukernel_pack_fn), so the L3-bound packing overlaps FMAs.
// Pack buffers are allocated per call, before any parallel region (so a
// std::bad_alloc is thrown outside it); nothing throws inside.
#include "common.h"
#include "gemm/strategy.h"
#include "scratch.h"
#include "threadpool.h"

namespace fastcnn {
namespace gemm {

void slice(int64_t total, int64_t tile, int64_t parts, int64_t i, int64_t* begin, int64_t* end) {
    const int64_t tiles = ceil_div(total, tile);
    *begin = min64(total, (tiles * i / parts) * tile);
    *end = min64(total, (tiles * (i + 1) / parts) * tile);
}

namespace {

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
void gemm_part(const Problem& g, const Ukernels& kernels, int64_t kc_step,
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
                pack_a(g.trans_a, g.A, g.lda, ic, mc, pc, kc, g.alpha, MR, a_buf);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int64_t nr = min64(NR, nc - jr);
                    float* b_panel = one_ic ? b_buf : b_buf + jr * kc;  // (kc, NR)
                    float* c_col = g.C + jc + jr;
                    int64_t ir = 0;
                    if (first_ic && !g.trans_b && nr == NR) {
                        // The first tile packs the B panel while it uses it.
                        // b_src (kc, NR), row stride ldb
                        const float* b_src = g.B + pc * g.ldb + jc + jr;
                        kernels.tile_pack_b(kc, a_buf, b_src, g.ldb, b_panel, c_col + ic * g.ldc,
                                            g.ldc, beta, min64(MR, mc));
                        ir = MR;
                    } else if (first_ic) {
                        pack_b_panel(g.trans_b, g.B, g.ldb, pc, kc, jc + jr, nr, NR,
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

}  // namespace

void gemm_blocked(const Problem& g, const Ukernels& kernels, int64_t kc_step,
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

}  // namespace gemm
}  // namespace fastcnn
