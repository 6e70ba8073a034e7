// whole_a.cpp -- the whole-A strategy of sgemm, and the packed op(A) that
// callers running many GEMMs with one op(A) hand in themselves.
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N; MR NR MC KC of the
// SIMD path in use (blocking.h); kc the extent of one K block, kc_step the
// step between them (k_step); m_pad = M rounded up to MR.
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
// The first tile of each B panel reads op(B) in place and writes the packed
// panel as it goes (ukernel_pack_fn), so the L3-bound packing overlaps FMAs.
//
// Buffers: the per-thread packed op(A) and B panel are allocated per call,
// before any parallel region (a std::bad_alloc is thrown outside it); the
// packed-A API below packs into the caller's buffer and uses one B panel on
// the stack.
#include <atomic>
#include <memory>

#include "common.h"
#include "fastcnn.h"
#include "gemm/strategy.h"
#include "scratch.h"
#include "threadpool.h"

namespace fastcnn {
namespace gemm {

// a_packed holds, for the K block starting at pc, m_pad/MR A panels (kc, MR)
// at a_packed + pc*m_pad.
void columns_whole_a(const Problem& g, const Ukernels& kernels, const float* a_packed,
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
                pack_b_panel(g.trans_b, g.B, g.ldb, pc, kc, jr, nr, NR, b_panel);
            }
            for (; ir < g.M; ir += MR) {
                kernels.tile(kc, a_block + ir * kc, b_panel, c_col + ir * g.ldc, g.ldc, beta,
                             min64(MR, g.M - ir), nr);
            }
        }
    }
}

void pack_whole_a(const Problem& g, int64_t MR, int64_t m_pad, int64_t kc_step,
                  float* a_packed) {
    for (int64_t pc = 0; pc < g.K; pc += kc_step) {
        const int64_t kc = min64(kc_step, g.K - pc);
        pack_a(g.trans_a, g.A, g.lda, 0, g.M, pc, kc, g.alpha, MR, a_packed + pc * m_pad);
    }
}

void gemm_whole_a(const Problem& g, const Ukernels& kernels, int64_t kc_step,
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

}  // namespace gemm

// ------------------------------------------------------ packed op(A) ----
//
// The whole-A layout of op(A) * alpha, packed once by the caller and shared
// by many single-threaded GEMMs: a conv layer multiplies the same weights by
// every image's columns, so packing them once per call instead of once per
// image saves a pass over the weights per image. Same packing and
// micro-kernels as the whole-A path of sgemm, so the values are those sgemm
// computes on that path. The layout (MR, KC) is the path's: sgemm_pack_a
// returns the path, and the caller hands it back to sgemm_with_packed_a, so a
// set_isa in between cannot mix layouts.

// The size is the largest any path's layout needs (ukernels_for only looks
// up tables), so a buffer sized before a set_isa still holds the packing.
int64_t sgemm_packed_a_size(int64_t M, int64_t K) {
    if (M <= 0 || K <= 0 || !gemm::whole_a_fits(M, K, gemm::active_ukernels().blk)) return 0;
    int64_t most = 0;
    for (int isa = 0; isa < gemm::kIsaCount; ++isa) {
        const int64_t mr = gemm::ukernels_for(isa).blk.mr;
        most = max64(most, ceil_div(M, mr) * mr * K);
    }
    return most;
}

void sgemm_rows_a(int layout, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float* C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    const gemm::Ukernels kernels = gemm::ukernels_for(layout);
    const int64_t MR = kernels.blk.mr, NR = kernels.blk.nr;
    const int64_t kc_step = gemm::k_step(K, kernels.blk.kc);
    alignas(64) float b_panel[gemm::kMaxKC * gemm::kMaxNR];  // one B panel (kc, NR)
    // columns_whole_a's loops and blocks, A's rows read where they are.
    for (int64_t pc = 0; pc < K; pc += kc_step) {
        const int64_t kc = min64(kc_step, K - pc);
        const float beta = pc == 0 ? 0.0f : 1.0f;
        for (int64_t jr = 0; jr < N; jr += NR) {
            const int64_t nr = min64(NR, N - jr);
            int64_t ir = 0;
            if (nr == NR) {  // the first tile packs the panel as it reads B
                kernels.tile_rows_a(kc, A + pc, lda, B + pc * ldb + jr, ldb, b_panel, C + jr, ldc,
                                    beta, min64(MR, M), NR);
                ir = MR;
            } else {
                gemm::pack_b_panel(false, B, ldb, pc, kc, jr, nr, NR, b_panel);
            }
            for (; ir < M; ir += MR) {
                kernels.tile_rows_a(kc, A + ir * lda + pc, lda, b_panel, NR, nullptr,
                                    C + ir * ldc + jr, ldc, beta, min64(MR, M - ir), nr);
            }
        }
    }
}

int sgemm_pack_a(bool trans_a, int64_t M, int64_t K, float alpha, const float* A, int64_t lda,
                 float* packed) {
    const int isa = gemm::active_isa_id();
    const gemm::Blocking blk = gemm::ukernels_for(isa).blk;
    const gemm::Problem g{trans_a, false, M, 0, K, alpha, A, lda, nullptr, 0, 0.0f, nullptr, 0};
    gemm::pack_whole_a(g, blk.mr, ceil_div(M, blk.mr) * blk.mr, gemm::k_step(K, blk.kc), packed);
    return isa;
}

void sgemm_with_packed_a(int layout, const float* packed, int64_t M, int64_t N, int64_t K,
                         bool trans_b, const float* B, int64_t ldb, float beta, float* C,
                         int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    const gemm::Ukernels kernels = gemm::ukernels_for(layout);  // the path it was packed for
    const gemm::Blocking& blk = kernels.blk;
    alignas(64) float b_panel[gemm::kMaxKC * gemm::kMaxNR];  // one B panel (kc, NR), on the stack
    const gemm::Problem g{false, trans_b, M, N, K, 1.0f, nullptr, 0, B, ldb, beta, C, ldc};
    gemm::columns_whole_a(g, kernels, packed, ceil_div(M, blk.mr) * blk.mr,
                          gemm::k_step(K, blk.kc), 0, N, b_panel);
}

}  // namespace fastcnn
