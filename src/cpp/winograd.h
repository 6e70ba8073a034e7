// winograd.h -- 3x3 stride-1 convolutions by Winograd's F(4x4, 3x3): the
// forward pass, the input gradient and the weight gradient, for conv.cpp
// (conv2d) and conv_pool.cpp (conv2d fused with a max-pool), which call these
// passes where choose() says so and the im2col passes (conv_passes.h)
// otherwise. Internal: not part of the fastcnn API, no Python.
//
// Size letters: N C H W K KH KW SH SW PH PW OH OW as in fastcnn.h (here KH =
// KW = 3, SH = SW = 1, any padding); OHW = OH*OW; TH TW = tiles per image
// along OH, OW (ceil(OH/4), ceil(OW/4)); Tb = tiles per block (the matrices'
// leading dimension); e = 0..35, an element of a 6x6 tile in the Winograd
// domain (the matrices: winograd_tiles.cpp).
//
// The output is cut into 4x4 tiles (edge tiles clipped), each computed from
// its 6x6 input patch (zero outside the image). Per block of tiles:
//   forward  V (36, C, Tb) = B^T d B of every tile and channel;
//            M[e] (K, Tb)  = U[e] (K, C) . V[e] (C, Tb), 36 GEMMs with the
//            transformed weights U (36, K, C) = G w G^T, packed once per call;
//            out tile = A^T M A + b, into the epilogue's target, whose
//            finish() runs per image (relu; or the fused max-pool).
//   backward Z (36, K, Tb) = A dz A^T of the output gradient's tiles; V as above;
//            dU[e] (K, C) += Z[e] (K, Tb) . V[e]^T, summed per group;
//            dV[e] (C, Tb) = U[e]^T (C, K) . Z[e] (K, Tb), and dx += B dV B^T
//            patch by patch (overlapping patches add up);
//            dw = G^T dU G; db as the im2col pass sums it (same bits).
// The GEMMs are fastcnn's packed sgemm on the calling thread (whole-A layout:
// conv::PackedWeights; dw through sgemm_serial). Each GEMM reads and writes
// contiguous (rows, Tb) or (K, C) matrices.
//
// Blocks and threads. A block is either several whole images or a band of
// tile rows of one image, so its scratch (V, and M or Z: 36 (C + K) Tb
// floats) is about kBlockBytes and stays in L2. Images go in groups, the tasks
// the threads take in turn (pool::parallel_for_dynamic); a group runs its
// blocks in order on one thread, so the input gradient's overlapping patches
// are added in a fixed order and the images' epilogues see whole images.
// Forward: a group is one block (or one image). Backward: at most kMaxGroups
// groups (fewer when their dw slots would pass kPartsBytes), each summing dU
// over its blocks in a per-thread (36, K, C) accumulator and writing G^T dU G
// to its own dw slot; the slots are added in group order. Groups depend on
// the shape only, so results do not depend on the thread count.
//
// Accuracy (fastcnn.h: kWinogradErrorBound; tests/test_winograd.py checks it
// against the float64 reference): with S = the same convolution of |x| and |w|
// (for dx: of |dout| and |w|; for dw: of |dout| and |x|), the error anywhere in
// an output plane is at most kWinogradErrorBound * (the largest S of that plane).
// Non-finite values: a NaN or Inf spreads over a whole tile here, so a pass
// that meets one (in its output) returns false and the caller recomputes the
// call by im2col, which puts them where the direct convolution does.
//
// Scratch (allocated before the parallel region; may throw std::bad_alloc):
// U (36, K, C) and its packed copies; per thread V, M or Z, the transforms'
// chunk buffers, the epilogue's or dz source's image planes when they need
// them (kScratch), and backward the (36, K, C) accumulator; dw slots (groups,
// K, C, 9); db_parts (N, K).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>

#include "common.h"
#include "conv_passes.h"
#include "fastcnn.h"
#include "scratch.h"
#include "threadpool.h"
#include "winograd_tiles.h"

namespace fastcnn {
namespace wino {

// Scratch of a block's two matrices (36 (C + K) Tb floats).
constexpr int64_t kBlockBytes = int64_t(3) << 19;   // 1.5 MiB
// But at least this many tiles (two 32-column GEMM panels; many channels on
// small images: the GEMMs' inner dimension in dw) and at most this many.
constexpr int64_t kMinBlockTiles = 64;
constexpr int64_t kMaxBlockTiles = 1024;
// At most this many whole images per block (the passes keep a pointer per image).
constexpr int64_t kMaxBlockImages = 64;

// Which algorithm a conv takes (winograd.cpp): the setting (FASTCNN_CONV /
// set_conv_algo) and, under "auto", the rule by shape.
bool applicable(const conv::Shape& s);   // 3x3, stride 1
bool choose(const conv::Shape& s);          // the backward pass
bool choose_forward(const conv::Shape& s);  // the forward pass: also on fewer, larger images

TileGrid tile_grid(const conv::Shape& s);

struct Plan {
    TileGrid tg;
    int64_t images_per_block;  // whole images per block (1 when a block is a band of rows)
    int64_t rows_per_block;    // tile rows per block (TH when blocks are whole images)
    int64_t Tb;                // the most tiles of a block
    int64_t G;                 // images per group
    int64_t groups;            // ceil(N / G)
    int threads;               // threads sharing the groups
};
Plan make_plan(const conv::Shape& s, bool backward);

// Calls body(blk) for the blocks of group g in order.
template <class Body>
void for_each_block(const Plan& p, int64_t N, int64_t g, Body body) {
    const int64_t n_end = std::min(N, (g + 1) * p.G);
    for (int64_t n = g * p.G; n < n_end; n += p.images_per_block) {
        if (p.rows_per_block == p.tg.TH) {
            body(Block{n, std::min(n_end, n + p.images_per_block), 0, p.tg.TH});
            continue;
        }
        for (int64_t ty = 0; ty < p.tg.TH; ty += p.rows_per_block) {
            body(Block{n, n + 1, ty, std::min(p.tg.TH, ty + p.rows_per_block)});
        }
    }
}

// The 36 packed U[e] (K, C) (or U[e]^T (C, K) when trans) of one call.
class PackedTiles {
public:
    PackedTiles(bool trans, const float* U, int64_t K, int64_t C) {
        for (int64_t e = 0; e < 36; ++e) {
            packed_.emplace_back(trans, trans ? C : K, trans ? K : C, U + e * K * C, C);
        }
    }
    // C (rows, n) = op(U[e]) . B (inner, n)
    void gemm(int64_t e, int64_t n, const float* B, int64_t ldb, float* C, int64_t ldc) const {
        packed_[static_cast<size_t>(e)].gemm(n, B, ldb, C, ldc);
    }

private:
    std::deque<conv::PackedWeights> packed_;  // never moved (PackedWeights cannot be)
};

// -------------------------------------------------------------- passes ----

// The forward pass of conv_passes.h's conv_forward_pass with the same
// Epilogue; false (outputs partly written) if a value was not finite.
template <class Epilogue>
bool forward_pass(const Epilogue& epi, const float* x, const float* w, const float* b,
                  const conv::Shape& s) {
    const int64_t C = s.C, K = s.K, OHW = s.OHW;
    const Plan p = make_plan(s, false);
    const int64_t Tb = p.Tb;
    const TileKernels tk = tile_kernels();
    Scratch U(static_cast<size_t>(36 * K * C + 27 * C));
    tk.weights(U.get(), w, K, C, U.get() + 36 * K * C);
    const PackedTiles packed(false, U.get(), K, C);

    const int64_t v_size = 36 * C * Tb, m_size = 36 * K * Tb;
    const int64_t bands = band_floats(p.images_per_block, p.rows_per_block, p.tg);
    const int64_t planes = Epilogue::kScratch ? p.images_per_block * K * OHW : 0;
    const int64_t per_thread = v_size + m_size + kTileWorkFloats + bands + planes +
                               conv::kScratchSpare;
    const Scratch scratch(static_cast<size_t>(per_thread * p.threads));
    std::atomic<bool> finite{true};

    pool::parallel_for_dynamic(p.groups, p.threads, [&](int64_t g, int t) {
        float* V = scratch.get() + per_thread * t;
        float* M = V + v_size;
        float* work = M + m_size;
        float* band = work + kTileWorkFloats;
        float* plane_scratch = band + bands;
        for_each_block(p, s.N, g, [&](const Block& blk) {
            const int64_t n = block_tiles(blk, p.tg);
            tk.input(V, Tb, x, C, p.tg, blk, work, band);
            for (int64_t e = 0; e < 36; ++e) packed.gemm(e, n, V + e * C * Tb, Tb, M + e * K * Tb, Tb);
            float* z[kMaxBlockImages];  // the images' targets
            for (int64_t i = 0; i < blk.n1 - blk.n0; ++i) {
                z[i] = epi.target(blk.n0 + i, plane_scratch + i * K * OHW);
            }
            if (!tk.output(z, M, Tb, K, b, p.tg, blk, work, band)) finite.store(false);
            if (blk.ty1 < p.tg.TH) return;  // the image's last band finishes it
            for (int64_t i = 0; i < blk.n1 - blk.n0; ++i) epi.finish(blk.n0 + i, z[i], OHW, false);
        });
    });
    return finite.load();
}

// The backward pass of conv_backward_pass with the same DzSource; dx may be
// null (not computed), db may be null. False (outputs partly written) if a
// value of dx or dw was not finite.
template <class DzSource>
bool backward_pass(const DzSource& src, float* dx, float* dw, float* db, const float* x,
                   const float* w, const conv::Shape& s) {
    const int64_t N = s.N, C = s.C, H = s.H, W = s.W, K = s.K, OHW = s.OHW;
    const Plan p = make_plan(s, true);
    const int64_t Tb = p.Tb;
    const TileKernels tk = tile_kernels();
    Scratch U(static_cast<size_t>(dx ? 36 * K * C + 27 * C : 0));
    if (dx) tk.weights(U.get(), w, K, C, U.get() + 36 * K * C);
    std::deque<PackedTiles> packed_t;  // U[e]^T, for dx
    if (dx) packed_t.emplace_back(true, U.get(), K, C);

    const int64_t v_size = 36 * C * Tb, z_size = 36 * K * Tb, du_size = 36 * K * C;
    const int64_t planes = DzSource::kScratch ? p.images_per_block * K * OHW : 0;
    const int64_t work_size = std::max(kTileWorkFloats, 27 * C);
    const int64_t bands = band_floats(p.images_per_block, p.rows_per_block, p.tg);
    const int64_t per_thread = v_size + z_size + du_size + work_size + bands + planes;
    const Scratch scratch(static_cast<size_t>(per_thread * p.threads));
    const Scratch dw_parts(p.groups > 1 ? static_cast<size_t>(p.groups * K * C * 9) : 0);
    const Scratch db_parts(db ? static_cast<size_t>(N * K) : 0);
    std::atomic<bool> finite{true};

    pool::parallel_for_dynamic(p.groups, p.threads, [&](int64_t g, int t) {
        float* V = scratch.get() + per_thread * t;  // then dV
        float* Z = V + v_size;
        float* dU = Z + z_size;
        float* work = dU + du_size;
        float* band = work + work_size;
        float* plane_scratch = band + bands;
        float beta = 0.0f;  // the group's first GEMMs overwrite dU, the rest add
        for_each_block(p, N, g, [&](const Block& blk) {
            const int64_t n = block_tiles(blk, p.tg);
            const float* dz[kMaxBlockImages];
            for (int64_t i = 0; i < blk.n1 - blk.n0; ++i) {
                dz[i] = src.image(blk.n0 + i, plane_scratch + i * K * OHW);  // (K, OHW)
                for (int64_t k = 0; k < K && db && blk.ty0 == 0; ++k) {
                    db_parts.get()[(blk.n0 + i) * K + k] = conv::sum_floats(dz[i] + k * OHW, OHW);
                }
            }
            tk.output_grad(Z, Tb, dz, K, p.tg, blk, work, band);
            tk.input(V, Tb, x, C, p.tg, blk, work, band);
            for (int64_t e = 0; e < 36; ++e) {
                // dU[e] (K, C) (+)= Z[e] (K, n) . V[e]^T (n, C)
                sgemm_serial(false, true, K, C, n, 1.0f, Z + e * K * Tb, Tb, V + e * C * Tb, Tb,
                             beta, dU + e * K * C, C);
            }
            beta = 1.0f;
            if (!dx) return;
            for (int64_t e = 0; e < 36; ++e) {
                packed_t.front().gemm(e, n, Z + e * K * Tb, Tb, V + e * C * Tb, Tb);  // dV[e]
            }
            if (blk.ty0 == 0) {
                std::fill(dx + blk.n0 * C * H * W, dx + blk.n1 * C * H * W, 0.0f);
            }
            if (!tk.input_grad(dx, V, Tb, C, p.tg, blk, work, band)) finite.store(false);
        });
        tk.weight_gradient(p.groups > 1 ? dw_parts.get() + g * K * C * 9 : dw, dU, K, C, work);
    });

    if (db) {
        // db[k] = sum over images, in image order (as conv_backward_pass).
        for (int64_t k = 0; k < K; ++k) {
            float acc = 0.0f;
            for (int64_t n = 0; n < N; ++n) acc += db_parts.get()[n * K + k];
            db[k] = acc;
        }
    }
    if (p.groups > 1) conv::sum_dw_parts(dw, dw_parts.get(), K * C * 9, p.groups);
    float all = 0.0f;
    for (int64_t v = 0; v < K * C * 9; ++v) all += dw[v] * 0.0f;
    return finite.load() && all == 0.0f;
}

}  // namespace wino
}  // namespace fastcnn
