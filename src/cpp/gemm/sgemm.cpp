// sgemm.cpp -- the packed, cache-blocked single-precision GEMM (BLIS style).
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N. MR NR MC KC NC are
// the block sizes (blocking.h); mc kc nc mr nr the actual extents of a block.
//
// C (M, N; row stride ldc) = alpha * op(A) * op(B) + beta * C, exactly the
// contract of fastcnn::sgemm in fastcnn.h (beta == 0: C is write-only).
//
// Loops, outermost first, for the part of C one thread owns:
//   jc  over N in steps of NC    B block  (kc, nc)  packed once per (jc, pc)
//   pc  over K in steps of ~KC   beta applies at pc == 0, later blocks add
//   ic  over M in steps of MC    A block  (mc, kc)  packed, stays in L2
//   jr  over nc in steps of NR   B panel  (kc, NR)  stays in L1
//   ir  over mc in steps of MR   micro-kernel on a MR x NR tile of C
// The B panels are packed lazily, during the first ic block: the first tile
// of each panel reads op(B) in place and writes the packed panel as it goes
// (ukernel_pack_fn), so the L3-bound packing overlaps the FMAs. When one ic
// block covers all the thread's rows (the skinny conv shapes, M = 20 or 40),
// a B panel is never reused, so one L1-sized panel buffer is recycled.
//
// Threads: C is cut into a tm x tn grid of parts on MR/NR boundaries, one part
// per thread, no shared buffers and no barriers. Each thread packs the op(A)
// rows and op(B) columns of its part, so the grid is chosen to duplicate the
// least packing (M small vs N, as in conv: split N; square: either). Cutting on
// tile boundaries means every C element is computed by the same instructions
// in the same order whatever the thread count: results do not depend on it.
// Pack buffers are allocated per call, before the parallel region (so a
// std::bad_alloc is thrown outside it); nothing throws inside.
#include <cstddef>
#include <cstdlib>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastcnn.h"
#include "gemm/gemm_internal.h"

namespace fastcnn {

namespace {

using gemm::KC;
using gemm::MC;
using gemm::MR;
using gemm::NC;
using gemm::NR;

// Below this many multiply-adds one thread is faster than waking a second.
constexpr int64_t kMinWorkPerThread = int64_t(1) << 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

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

// Float scratch aligned to a cache line, uninitialised, freed on scope exit.
class Scratch {
public:
    explicit Scratch(size_t count) {
        const size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
        data_ = static_cast<float*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64));
        if (data_ == nullptr) throw std::bad_alloc();
    }
    ~Scratch() { std::free(data_); }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    float* get() { return data_; }

private:
    float* data_ = nullptr;
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

// The i-th of `parts` nearly equal slices of `count` tiles of size `tile`,
// as element offsets [begin, end) clipped to `total`.
void slice(int64_t total, int64_t tile, int64_t parts, int64_t i, int64_t* begin, int64_t* end) {
    const int64_t tiles = ceil_div(total, tile);
    *begin = min64(total, (tiles * i / parts) * tile);
    *end = min64(total, (tiles * (i + 1) / parts) * tile);
}

// Thread grid tm x tn (tm * tn threads): the one packing the least, among
// those where every thread gets at least one tile and enough work.
void choose_grid(int64_t M, int64_t N, int64_t K, int max_threads, int* tm, int* tn) {
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
    const bool one_ic = (m1 - m0) <= MC;
    for (int64_t jc = n0; jc < n1; jc += NC) {
        const int64_t nc = min64(NC, n1 - jc);
        for (int64_t pc = 0; pc < g.K; pc += kc_step) {
            const int64_t kc = min64(kc_step, g.K - pc);
            const float beta = (pc == 0) ? g.beta : 1.0f;
            for (int64_t ic = m0; ic < m1; ic += MC) {
                const int64_t mc = min64(MC, m1 - ic);
                const bool first_ic = (ic == m0);
                gemm::pack_a(g.trans_a, g.A, g.lda, ic, mc, pc, kc, g.alpha, a_buf);
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
                        gemm::pack_b_panel(g.trans_b, g.B, g.ldb, pc, kc, jc + jr, nr, b_panel);
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

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
           float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    const Problem g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
    const gemm::Ukernels kernels = gemm::active_ukernels();

    // K in nearly equal blocks of at most KC (500 -> 250 + 250, not 256 + 244).
    const int64_t kc_step = ceil_div(K, ceil_div(K, KC));

    int max_threads = 1;
#ifdef _OPENMP
    if (!omp_in_parallel()) max_threads = omp_get_max_threads();
#endif
    int tm = 1, tn = 1;
    choose_grid(M, N, K, max_threads, &tm, &tn);
    const int threads = tm * tn;

    // Largest part any thread gets, to size the per-thread buffers.
    const int64_t rows = ceil_div(ceil_div(M, MR), tm) * MR;
    const int64_t cols = ceil_div(ceil_div(N, NR), tn) * NR;
    const int64_t a_size = ceil_div(min64(MC, rows) * kc_step, 16) * 16;        // (mc, kc)
    const int64_t b_size = ceil_div((rows <= MC ? NR : min64(NC, cols)) * kc_step, 16) * 16;  // (kc, nc)
    const int64_t per_thread = a_size + b_size;  // both start on a 64-byte line
    Scratch scratch(static_cast<size_t>(per_thread * threads));

    auto run = [&](int t) {
        int64_t m0, m1, n0, n1;
        slice(M, MR, tm, t / tn, &m0, &m1);
        slice(N, NR, tn, t % tn, &n0, &n1);
        if (m0 >= m1 || n0 >= n1) return;
        float* a_buf = scratch.get() + t * per_thread;
        gemm_part(g, kernels, kc_step, m0, m1, n0, n1, a_buf, a_buf + a_size);
    };
#ifdef _OPENMP
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
            // The runtime may grant fewer threads than asked: loop over parts.
            const int team = omp_get_num_threads();
            for (int t = omp_get_thread_num(); t < threads; t += team) run(t);
        }
        return;
    }
#endif
    run(0);
}

}  // namespace fastcnn
