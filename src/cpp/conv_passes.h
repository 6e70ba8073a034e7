// conv_passes.h -- the forward and backward passes of a 2-D convolution by
// im2col + GEMM, shared by conv.cpp (conv2d) and conv_pool.cpp (conv2d fused
// with a max-pool). Internal: not part of the fastcnn API, no Python.
//
// Size letters:
//   N  batch   C  input channels   K  output channels (filters)
//   H W  image height/width   KH KW  kernel height/width   SH SW  stride
//   PH PW  zero padding   OH OW  output height/width (conv_out_size, geometry.h)
//   CKK = C*KH*KW (one column of im2col)   OHW = OH*OW (output pixels per image)
//   G  images per group   S  images per sub-chunk (S <= G)   q = s*OHW columns of a sub-chunk
//
// Both passes are templates over what differs between the two ops:
//   Epilogue (forward): where the GEMM of image n writes its (K, OHW) result,
//     target(n, scratch), and finish(n, z, kstride, add_bias): turn that
//     result (channel k's plane at z + k*kstride; add_bias: b[k] still to be
//     added) into the op's output. kScratch: whether it needs a (K, OHW)
//     scratch block per thread on the per-image path.
//   DzSource (backward): where the gradient dz (K, OHW) of the conv output of
//     image n comes from: image(n, scratch) returns it contiguous, fill(n,
//     dst, kstride) writes it with channel k's plane at dst + k*kstride.
//     kScratch as above.
// Given the same epilogue or source the passes run the same instructions in
// the same order, which is why the fused op is bit for bit conv2d + relu +
// maxpool2d (and their backward passes in sequence).
//
// Parallelism over the batch. The batch is cut into groups of G images, with
// G depending only on N (at most kMaxGroups groups), and the groups are the
// tasks threads take in turn: each runs im2col, its GEMMs (single-threaded:
// the GEMMs of a mini-batch of 10 are too small to split well), the scatter
// or gather and col2im for its own images, with its own scratch. One parallel
// region per call; a thread delayed by another process on this shared
// machine does not hold up the others' tasks. With one group (a batch of
// one) or one thread the groups run in order on the calling thread, inside
// the region, so nothing in them splits further: a batch of one runs on one
// thread (splitting one image's im2col and GEMM columns between two threads
// was tried and measured no faster: docs/performance.md).
//
// Within a group, images go in sub-chunks of S so a sub-chunk's scratch is
// about kChunkBytes = 1 MiB: cols stays in the caches between im2col and the
// GEMMs. Two ways to run the GEMMs of a sub-chunk, picked by OHW:
//   per image (OHW >= kPerImageMinOHW, e.g. first layers on 28x28 images):
//     one GEMM per image reading dout[n] / writing out[n] in place, as both
//     are (K, OHW) matrices already. The forward GEMM adds the bias: w gets b
//     as one more column, cols one more row of ones.
//   batched (small OHW, e.g. 8x8 outputs): one GEMM over a K-row matrix
//     (K, q): forward writes it and scatters it into out adding the bias;
//     backward first gathers dz into it.
//
// dw: each group sums its images' contributions into its own slot of
// dw_parts (the GEMMs accumulate, image by image or sub-chunk by sub-chunk),
// and the slots are added in group order at the end. The grouping depends on
// N only, so dw does not depend on the thread count or on which thread ran
// which group.
//
// db: per (image, k) a float sum of OHW values in 8 interleaved partial sums
// (vectorised, error ~ OHW/8 roundings), taken while the image's dz is in
// cache, then summed over images in order, in float.
//
// Scratch (allocated before any parallel region; may throw std::bad_alloc):
// per thread cols (CKK+1, S*OHW) and on the batched path the K-row matrix
// (K, S*OHW), with a kScratch epilogue or source on the per-image path one
// (K, OHW) plane set; w_bias (K, CKK+1) forward per image; dw_parts (groups,
// K, CKK); db_parts (N, K). The caller owns x, w, b, out, dout, dx, dw, db.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "fastcnn.h"
#include "scratch.h"
#include "threadpool.h"

namespace fastcnn {
namespace conv {

// Scratch per sub-chunk (see above).
constexpr int64_t kChunkBytes = int64_t(1) << 20;

// The per-image GEMMs need this many output pixels (columns) to be efficient:
// per image wins on 24x24 / 26x26 outputs (576 / 676 columns) and loses on
// 8x8 / 11x11 (64 / 121).
constexpr int64_t kPerImageMinOHW = 256;

// At most this many groups (tasks) per call: 16 balances 2 threads well at
// any batch (a batch of 10 is 10 groups of 1). And at most kPartsBytes of dw
// slots, so a large layer gets fewer, larger groups.
constexpr int64_t kMaxGroups = 16;
constexpr int64_t kPartsBytes = int64_t(8) << 20;

// Floats each thread's forward scratch block has to spare after its last
// plane: an epilogue may read up to this many past the last window of a row
// (the fused max-pool's SSE2 rows, conv_pool.cpp).
constexpr int64_t kScratchSpare = 16;

// The sizes of one conv call, OH OW OHW CKK derived once from the others.
struct Shape {
    int64_t N, C, H, W, K, KH, KW, SH, SW, PH, PW;
    int64_t OH, OW, OHW, CKK;
};
Shape make_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH, int64_t KW,
                 int64_t SH, int64_t SW, int64_t PH, int64_t PW);

struct Plan {
    bool per_image;   // GEMMs per image, else per sub-chunk with a K-row matrix
    int64_t G;        // images per group
    int64_t groups;   // ceil(N / G)
    int64_t S;        // images per sub-chunk
    int threads;      // threads sharing the groups (1: in order on this thread)
};
Plan make_plan(const Shape& s);

// Runs body(g, t) for the groups g in [0, plan.groups), t = the thread's
// index (for its scratch): shared out dynamically among plan.threads threads,
// or in order here. An exception (sgemm's std::bad_alloc) is rethrown here.
template <class Body>
void for_each_group(const Plan& plan, Body body) {
    pool::parallel_for_dynamic(plan.groups, plan.threads, body);
}

// op(A) (M, K) of the GEMMs a conv call runs once per image or sub-chunk (w,
// [w | b] or w^T), packed once (sgemm_pack_a) when it is small enough, so no
// GEMM packs it again. gemm(n, B, ldb, C, ldc): C (M, n) = op(A) . B (K, n),
// write-only C, on the calling thread; sgemm_serial when op(A) is too large to pack.
class PackedWeights {
public:
    // columns: how many columns all of the call's GEMMs have together; up to
    // kRowsAMaxColumns (a batch of one on small images) A is not packed but
    // read in place (sgemm_rows_a: the same bits), which costs less than the
    // packing would save. -1: unknown (packed).
    PackedWeights(bool trans, int64_t M, int64_t K, const float* A, int64_t lda,
                  int64_t columns = -1);
    void gemm(int64_t n, const float* B, int64_t ldb, float* C, int64_t ldc) const;

private:
    bool trans_;
    int64_t M_, K_;
    const float* A_;
    int64_t lda_;
    bool rows_;       // A read in place (before packed_: it decides packed_'s size)
    Scratch packed_;
    int layout_ = 0;  // the SIMD path packed_ holds its layout for (or the rows-A kernels')
};

// See PackedWeights. With it predict_proba at a batch of one runs N2 1.17-1.20x
// faster (its second conv: 64 columns, 40 x 500 weights) and C2 1.16-1.22x (64
// and 256 columns) on 1 thread (bench/bench_infer.py, docs/performance.md);
// training batches have more columns and pack as before.
constexpr int64_t kRowsAMaxColumns = 256;

// Sum of v[0..count) in float: 8 interleaved partial sums, combined pairwise.
float sum_floats(const float* v, int64_t count);

// dw (n) = parts[0] + parts[1] + ... + parts[groups-1] (each (n,)), in that
// order for every value.
void sum_dw_parts(float* dw, const float* parts, int64_t n, int64_t groups);

// Calls body(n0, s) for the sub-chunks [n0, n0 + s) of group g in order, each
// after im2col has unfolded its s images of x into cols (CKK, s*OHW).
template <class Body>
void for_each_subchunk(const Plan& plan, const Shape& dims, int64_t g, const float* x,
                       float* cols, Body body) {
    const int64_t image = dims.C * dims.H * dims.W;  // floats of one image of x
    const int64_t n_end = std::min(dims.N, (g + 1) * plan.G);
    for (int64_t n0 = g * plan.G; n0 < n_end; n0 += plan.S) {
        const int64_t s = std::min(plan.S, n_end - n0);  // images in this sub-chunk
        im2col(cols, x + n0 * image, s, dims.C, dims.H, dims.W, dims.KH, dims.KW, dims.SH,
               dims.SW, dims.PH, dims.PW);
        body(n0, s);
    }
}

template <class Epilogue>
void conv_forward_pass(const Epilogue& epi, const float* x, const float* w, const float* b,
                       const Shape& dims) {
    const int64_t K = dims.K, OHW = dims.OHW, CKK = dims.CKK;
    const Plan plan = make_plan(dims);
    const int64_t S = plan.S;

    // Per-image path with a bias: the GEMM adds it, as one more inner step:
    // w_bias (K, CKK+1) = [w | b] times cols with one more row of ones.
    const bool bias_in_gemm = plan.per_image && b != nullptr;
    const int64_t KB = bias_in_gemm ? CKK + 1 : CKK;  // inner dimension of the GEMMs
    std::vector<float> w_bias(bias_in_gemm ? static_cast<size_t>(K * KB) : 0);  // (K, CKK+1)
    for (int64_t k = 0; k < K && bias_in_gemm; ++k) {
        std::copy(w + k * CKK, w + (k + 1) * CKK, w_bias.begin() + k * KB);
        w_bias[k * KB + CKK] = b[k];
    }
    const float* w_gemm = bias_in_gemm ? w_bias.data() : w;  // (K, KB)
    // w_gemm packed once for every image's GEMM (0: too large, sgemm_serial packs it itself).
    const PackedWeights wp(false, K, KB, w_gemm, KB, dims.N * OHW);

    const int64_t cols_size = KB * S * OHW;                       // (KB, S*OHW)
    const int64_t mat_size = plan.per_image ? (Epilogue::kScratch ? K * OHW : 0)  // (K, OHW)
                                            : K * S * OHW;        // (K, S*OHW)
    // Each thread's block ends with kScratchSpare floats, so an epilogue's
    // reads past its last row stay in the thread's own block.
    const int64_t block = cols_size + mat_size + kScratchSpare;
    const Scratch scratch(static_cast<size_t>(block * plan.threads));

    for_each_group(plan, [&](int64_t g, int t) {
        float* cols = scratch.get() + block * t;
        float* mat = cols + cols_size;
        for_each_subchunk(plan, dims, g, x, cols, [&](int64_t n0, int64_t s) {
            const int64_t q = s * OHW;  // the sub-chunk's columns
            if (plan.per_image) {
                if (bias_in_gemm) std::fill(cols + CKK * q, cols + KB * q, 1.0f);
                for (int64_t nn = 0; nn < s; ++nn) {
                    // z (K, OHW) = w_gemm (K, KB) . cols[:, nn*OHW ...] (KB, OHW; ld q)
                    float* z = epi.target(n0 + nn, mat);
                    wp.gemm(OHW, cols + nn * OHW, q, z, OHW);
                    epi.finish(n0 + nn, z, OHW, false);
                }
                return;
            }
            // mat (K, q) = w (K, CKK) . cols (CKK, q); image nn's channel k is
            // mat[k][nn*OHW ...], b[k] still to be added.
            wp.gemm(q, cols, q, mat, q);  // (here w_gemm = w, KB = CKK)
            for (int64_t nn = 0; nn < s; ++nn) epi.finish(n0 + nn, mat + nn * OHW, q, true);
        });
    });
}

template <class DzSource>
void conv_backward_pass(const DzSource& src, float* dx, float* dw, float* db, const float* x,
                        const float* w, const Shape& dims) {
    const int64_t N = dims.N, C = dims.C, H = dims.H, W = dims.W, K = dims.K;
    const int64_t OHW = dims.OHW, CKK = dims.CKK;
    const Plan plan = make_plan(dims);
    const int64_t S = plan.S;

    // w^T (CKK, K), packed once for the input-gradient GEMMs.
    const PackedWeights wt(true, CKK, K, w, CKK);
    const int64_t cols_size = CKK * S * OHW;                      // (CKK, S*OHW), then dcols
    const int64_t mat_size = plan.per_image ? (DzSource::kScratch ? K * OHW : 0)  // (K, OHW)
                                            : K * S * OHW;        // (K, S*OHW)
    const Scratch scratch(static_cast<size_t>((cols_size + mat_size) * plan.threads));
    // One dw slot per group; a single group writes dw itself.
    const Scratch dw_parts(plan.groups > 1 ? static_cast<size_t>(plan.groups * K * CKK) : 0);
    // db_parts[n][k]: float sum of image n's dz[k] (OHW), taken while it is in cache.
    const Scratch db_parts(db ? static_cast<size_t>(N * K) : 0);

    for_each_group(plan, [&](int64_t g, int t) {
        float* cols = scratch.get() + (cols_size + mat_size) * t;
        float* mat = cols + cols_size;
        float* dw_g = plan.groups > 1 ? dw_parts.get() + g * K * CKK : dw;  // (K, CKK)
        float beta = 0.0f;  // the group's first GEMM overwrites its slot, the rest add
        for_each_subchunk(plan, dims, g, x, cols, [&](int64_t n0, int64_t s) {
            const int64_t q = s * OHW;  // the sub-chunk's columns
            if (plan.per_image) {
                for (int64_t nn = 0; nn < s; ++nn) {
                    const float* dz_n = src.image(n0 + nn, mat);  // (K, OHW)
                    for (int64_t k = 0; k < K && db; ++k) {
                        db_parts.get()[(n0 + nn) * K + k] = sum_floats(dz_n + k * OHW, OHW);
                    }
                    float* cols_n = cols + nn * OHW;                  // (CKK, OHW; ld q)
                    // dw_g (K, CKK) (+)= dz_n (K, OHW) . cols_n^T (OHW, CKK)
                    sgemm_serial(false, true, K, CKK, OHW, 1.0f, dz_n, OHW, cols_n, q, beta, dw_g,
                                 CKK);
                    beta = 1.0f;
                    if (dx) {
                        // dcols_n (CKK, OHW; ld q) = w^T (CKK, K) . dz_n (K, OHW), over cols_n.
                        wt.gemm(OHW, dz_n, OHW, cols_n, q);
                    }
                }
            } else {
                // mat (K, q): image nn's dz[k] at mat[k][nn*OHW ...].
                for (int64_t nn = 0; nn < s; ++nn) {
                    src.fill(n0 + nn, mat + nn * OHW, q);
                    for (int64_t k = 0; k < K && db; ++k) {
                        db_parts.get()[(n0 + nn) * K + k] = sum_floats(mat + k * q + nn * OHW, OHW);
                    }
                }
                // dw_g (K, CKK) (+)= mat (K, q) . cols^T (q, CKK)
                sgemm_serial(false, true, K, CKK, q, 1.0f, mat, q, cols, q, beta, dw_g, CKK);
                beta = 1.0f;
                if (dx) {
                    // dcols (CKK, q) = w^T (CKK, K) . mat (K, q), into the cols buffer.
                    wt.gemm(q, mat, q, cols, q);
                }
            }
            if (dx) {
                col2im(dx + n0 * C * H * W, cols, s, C, H, W, dims.KH, dims.KW, dims.SH, dims.SW,
                       dims.PH, dims.PW);
            }
        });
    });

    if (db) {
        // db[k] = sum over images, in image order.
        for (int64_t k = 0; k < K; ++k) {
            float acc = 0.0f;
            for (int64_t n = 0; n < N; ++n) acc += db_parts.get()[n * K + k];
            db[k] = acc;
        }
    }
    if (plan.groups > 1) sum_dw_parts(dw, dw_parts.get(), K * CKK, plan.groups);
}

}  // namespace conv
}  // namespace fastcnn
