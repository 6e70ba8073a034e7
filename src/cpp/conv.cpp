// conv.cpp -- 2-D convolution (cross-correlation) forward and backward, by im2col + GEMM.
//
// Size letters:
//   N  batch   C  input channels   K  output channels (filters)
//   H W  image height/width   KH KW  kernel height/width   SH SW  stride
//   PH PW  zero padding   OH OW  output height/width, OH = (H + 2*PH - KH) / SH + 1
//   CKK = C*KH*KW (one column of im2col)   OHW = OH*OW (output pixels per image)
//   G  images per group   S  images per sub-chunk (S <= G)   q = s*OHW columns of a sub-chunk
//
// Contract (see fastcnn.h): buffers are float32, C-contiguous, owned by the
// caller; the caller (bindings.cpp) has checked every size. Outputs are
// OVERWRITTEN, nothing accumulates across calls.
//   forward:  out (N,K,OH,OW) = w (K,C,KH,KW) * x (N,C,H,W) + b (K) [b may be null],
//             or relu of it (relu = true): applied to each image's output right
//             after its GEMM (per image) or in the scatter (batched), so the
//             output is not read and written once more by a separate relu pass
//   backward: from dout (N,K,OH,OW):
//             db (K)          = sum of dout over n, oh, ow            [may be null]
//             dw (K,C,KH,KW)  = sum over n of dout[n] (K, OHW) . cols[n]^T (OHW, CKK)
//             dx (N,C,H,W)    = col2im of w^T (CKK, K) . dout[n] (K, OHW)  [may be null: skipped]
//
// Parallelism over the batch. The batch is cut into groups of G images, with
// G depending only on N (at most kMaxGroups groups), and the groups are the
// tasks threads take in turn: each runs im2col, its GEMMs (single-threaded:
// the GEMMs of a mini-batch of 10 are too small to split well), the scatter
// or gather and col2im for its own images, with its own scratch. One parallel
// region per call; a thread delayed by another process on this shared
// machine does not hold up the others' tasks. With one group (or one thread)
// the groups run in order on the calling thread and the GEMMs may use every
// thread instead.
//
// Within a group, images go in sub-chunks of S so a sub-chunk's scratch is
// about kChunkBytes = 1 MiB (cols stays in the caches between im2col and the
// GEMMs; measured earlier: 25-30% faster than one 32 MiB chunk). Two ways to
// run the GEMMs of a sub-chunk, picked by OHW:
//   per image (OHW >= kPerImageMinOHW, e.g. first layers on 28x28 images):
//     one GEMM per image reading dout[n] / writing out[n] in place, as both
//     are (K, OHW) matrices already. The forward GEMM adds the bias: w gets b
//     as one more column, cols one more row of ones.
//   batched (small OHW, e.g. 8x8 outputs): one GEMM over a K-row matrix
//     (K, q): forward writes it and scatters it into out adding the bias;
//     backward first gathers dout into it.
//
// dw: each group sums its images' contributions into its own slot of
// dw_parts (the GEMMs accumulate, image by image or sub-chunk by sub-chunk),
// and the slots are added in group order at the end. The grouping depends on
// N only, so dw does not depend on the thread count or on which thread ran
// which group.
//
// db: per (image, k) a float sum of OHW values in 8 interleaved partial sums
// (vectorised, error ~ OHW/8 roundings), then summed over images in float.
//
// Scratch (allocated before any parallel region; may throw std::bad_alloc):
// per thread cols (CKK+1, S*OHW) and on the batched path the K-row matrix
// (K, S*OHW); w_bias (K, CKK+1) forward per image; dw_parts (groups, K, CKK).
#include "fastcnn.h"

#include <algorithm>
#include <exception>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastcnn {

namespace {

constexpr int64_t kChunkBytes = int64_t(1) << 20;  // scratch per sub-chunk, see above

// The per-image GEMMs need this many output pixels (columns) to be efficient.
// Measured: per image is 10-35% faster on 24x24 / 26x26 outputs (576 / 676
// columns), 5-10% slower on 8x8 / 11x11 (64 / 121).
constexpr int64_t kPerImageMinOHW = 256;

// At most this many groups (tasks) per call: 16 balances 2 threads well at
// any batch (a batch of 10 is 10 groups of 1). And at most kPartsBytes of dw
// slots, so a large layer gets fewer, larger groups.
constexpr int64_t kMaxGroups = 16;
constexpr int64_t kPartsBytes = int64_t(8) << 20;

// Below this many values, a parallel region costs more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 15;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Plan {
    bool per_image;   // GEMMs per image, else per sub-chunk with a K-row matrix
    int64_t G;        // images per group
    int64_t groups;   // ceil(N / G)
    int64_t S;        // images per sub-chunk
    int threads;      // threads sharing the groups (1: in order on this thread)
};

Plan make_plan(int64_t N, int64_t CKK, int64_t K, int64_t OHW) {
    Plan p{};
    p.per_image = OHW >= kPerImageMinOHW;
    const int64_t max_groups = std::max<int64_t>(
        1, std::min(kMaxGroups, kPartsBytes / static_cast<int64_t>(sizeof(float)) / (K * CKK)));
    p.G = ceil_div(N, std::min(N, max_groups));
    p.groups = ceil_div(N, p.G);
    // Scratch per image of a sub-chunk: its columns (+ the row of ones), plus
    // its part of the K-row matrix on the batched path.
    const int64_t per_image_floats = p.per_image ? (CKK + 1) * OHW : (CKK + K) * OHW;
    const int64_t fit = kChunkBytes / static_cast<int64_t>(sizeof(float)) / per_image_floats;
    p.S = std::max<int64_t>(1, std::min(p.G, fit));
    const int64_t threads = get_num_threads();
    p.threads = static_cast<int>(std::min<int64_t>(threads, p.groups));
    return p;
}

int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Runs body(g, t) for the groups g in [0, plan.groups), t = the thread's
// index (for its scratch): shared out dynamically among plan.threads threads,
// or in order here. Exceptions (sgemm's std::bad_alloc) are caught inside the
// parallel region and rethrown here.
template <class Body>
void for_each_group(const Plan& plan, Body body) {
    std::exception_ptr error = nullptr;
#pragma omp parallel for schedule(dynamic) num_threads(plan.threads) if (plan.threads > 1)
    for (int64_t g = 0; g < plan.groups; ++g) {
        try {
            body(g, plan.threads > 1 ? thread_id() : 0);
        } catch (...) {
#pragma omp critical(fastcnn_conv_error)
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}

// relu as relu_forward computes it (activations.cpp): NaN stays NaN.
inline float relu_value(float v) { return v > 0.f ? v : (v != v ? v : 0.f); }

void relu_in_place(float* v, int64_t count) {
    for (int64_t i = 0; i < count; ++i) v[i] = relu_value(v[i]);
}

// op(A) (M, K) of the GEMMs a conv call runs once per image or sub-chunk (w,
// [w | b] or w^T), packed once (sgemm_pack_a) when it is small enough, so no
// GEMM packs it again. gemm(n, B, ldb, C, ldc): C (M, n) = op(A) . B (K, n),
// write-only C, on the calling thread; sgemm when op(A) was too large to pack.
class PackedWeights {
public:
    PackedWeights(bool trans, int64_t M, int64_t K, const float* A, int64_t lda)
        : trans_(trans), M_(M), K_(K), A_(A), lda_(lda),
          packed_(static_cast<size_t>(sgemm_packed_a_size(M, K))) {
        if (!packed_.empty()) sgemm_pack_a(trans, M, K, 1.0f, A, lda, packed_.data());
    }
    void gemm(int64_t n, const float* B, int64_t ldb, float* C, int64_t ldc) const {
        if (packed_.empty()) {
            sgemm(trans_, false, M_, n, K_, 1.0f, A_, lda_, B, ldb, 0.0f, C, ldc);
        } else {
            sgemm_with_packed_a(packed_.data(), M_, n, K_, false, B, ldb, 0.0f, C, ldc);
        }
    }

private:
    bool trans_;
    int64_t M_, K_;
    const float* A_;
    int64_t lda_;
    std::vector<float> packed_;
};

// Sum of v[0..count) in float: 8 interleaved partial sums, combined pairwise.
float sum_floats(const float* v, int64_t count) {
    float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int64_t p = 0;
    for (; p + 8 <= count; p += 8) {
        for (int l = 0; l < 8; ++l) lane[l] += v[p + l];
    }
    float tail = 0.0f;
    for (; p < count; ++p) tail += v[p];
    return ((lane[0] + lane[4]) + (lane[1] + lane[5])) +
           ((lane[2] + lane[6]) + (lane[3] + lane[7])) + tail;
}

}  // namespace

void conv2d_forward(float* out, const float* x, const float* w, const float* b,
                    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                    int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW,
                    bool relu) {
    const int64_t OH = (H + 2 * PH - KH) / SH + 1;
    const int64_t OW = (W + 2 * PW - KW) / SW + 1;
    const int64_t OHW = OH * OW;
    const int64_t CKK = C * KH * KW;
    const Plan plan = make_plan(N, CKK, K, OHW);
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
    // w_gemm packed once for every image's GEMM (0: too large, sgemm packs it itself).
    const PackedWeights wp(false, K, KB, w_gemm, KB);

    const int64_t cols_size = KB * S * OHW;                       // (KB, S*OHW)
    const int64_t mat_size = plan.per_image ? 0 : K * S * OHW;    // (K, S*OHW)
    std::vector<float> scratch(static_cast<size_t>((cols_size + mat_size) * plan.threads));

    for_each_group(plan, [&](int64_t g, int t) {
        float* cols = scratch.data() + (cols_size + mat_size) * t;
        float* mat = cols + cols_size;
        const int64_t n_end = std::min(N, (g + 1) * plan.G);
        for (int64_t n0 = g * plan.G; n0 < n_end; n0 += S) {
            const int64_t s = std::min(S, n_end - n0);  // images in this sub-chunk
            const int64_t q = s * OHW;                  // its columns
            float* out_chunk = out + n0 * K * OHW;      // (s, K, OH, OW)
            im2col(cols, x + n0 * C * H * W, s, C, H, W, KH, KW, SH, SW, PH, PW);
            if (plan.per_image) {
                if (bias_in_gemm) std::fill(cols + CKK * q, cols + KB * q, 1.0f);
                for (int64_t nn = 0; nn < s; ++nn) {
                    // out[n0+nn] (K, OHW) = w_gemm (K, KB) . cols[:, nn*OHW ...] (KB, OHW; ld q)
                    float* out_n = out_chunk + nn * K * OHW;
                    wp.gemm(OHW, cols + nn * OHW, q, out_n, OHW);
                    if (relu) relu_in_place(out_n, K * OHW);  // still in L2
                }
                continue;
            }
            // mat (K, q) = w (K, CKK) . cols (CKK, q); then mat[k][nn*OHW + p]
            // goes to out[n0 + nn][k][p], plus b[k].
            wp.gemm(q, cols, q, mat, q);  // (here w_gemm = w, KB = CKK)
            for (int64_t nn = 0; nn < s; ++nn) {
                for (int64_t k = 0; k < K; ++k) {
                    const float* src = mat + k * q + nn * OHW;        // (OHW)
                    float* dst = out_chunk + (nn * K + k) * OHW;      // out[n0+nn][k] (OHW)
                    const float bias = b ? b[k] : 0.0f;
                    if (relu) {
                        for (int64_t p = 0; p < OHW; ++p) dst[p] = relu_value(src[p] + bias);
                    } else {
                        for (int64_t p = 0; p < OHW; ++p) dst[p] = src[p] + bias;
                    }
                }
            }
        }
    });
}

void conv2d_backward(float* dx, float* dw, float* db, const float* dout,
                     const float* x, const float* w,
                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                     int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const int64_t OH = (H + 2 * PH - KH) / SH + 1;
    const int64_t OW = (W + 2 * PW - KW) / SW + 1;
    const int64_t OHW = OH * OW;
    const int64_t CKK = C * KH * KW;
    const Plan plan = make_plan(N, CKK, K, OHW);
    const int64_t S = plan.S;

    // db[k] = sum over images of the float sum of dout[n][k] (OHW).
    if (db) {
#pragma omp parallel for schedule(static) if (N * K * OHW >= kParallelMin)
        for (int64_t k = 0; k < K; ++k) {
            float acc = 0.0f;
            for (int64_t n = 0; n < N; ++n) acc += sum_floats(dout + (n * K + k) * OHW, OHW);
            db[k] = acc;
        }
    }

    // w^T (CKK, K), packed once for the input-gradient GEMMs.
    const PackedWeights wt(true, CKK, K, w, CKK);
    const int64_t cols_size = CKK * S * OHW;                      // (CKK, S*OHW), then dcols
    const int64_t mat_size = plan.per_image ? 0 : K * S * OHW;    // (K, S*OHW)
    std::vector<float> scratch(static_cast<size_t>((cols_size + mat_size) * plan.threads));
    // One dw slot per group; a single group writes dw itself.
    std::vector<float> dw_parts(plan.groups > 1 ? static_cast<size_t>(plan.groups * K * CKK) : 0);

    for_each_group(plan, [&](int64_t g, int t) {
        float* cols = scratch.data() + (cols_size + mat_size) * t;
        float* mat = cols + cols_size;
        float* dw_g = plan.groups > 1 ? dw_parts.data() + g * K * CKK : dw;  // (K, CKK)
        float beta = 0.0f;  // the group's first GEMM overwrites its slot, the rest add
        const int64_t n_end = std::min(N, (g + 1) * plan.G);
        for (int64_t n0 = g * plan.G; n0 < n_end; n0 += S) {
            const int64_t s = std::min(S, n_end - n0);      // images in this sub-chunk
            const int64_t q = s * OHW;                      // its columns
            const float* dout_chunk = dout + n0 * K * OHW;  // (s, K, OH, OW)
            im2col(cols, x + n0 * C * H * W, s, C, H, W, KH, KW, SH, SW, PH, PW);
            if (plan.per_image) {
                for (int64_t nn = 0; nn < s; ++nn) {
                    const float* dout_n = dout_chunk + nn * K * OHW;  // dout[n0+nn] (K, OHW)
                    float* cols_n = cols + nn * OHW;                  // (CKK, OHW; ld q)
                    // dw_g (K, CKK) (+)= dout_n (K, OHW) . cols_n^T (OHW, CKK)
                    sgemm(false, true, K, CKK, OHW, 1.0f, dout_n, OHW, cols_n, q, beta, dw_g, CKK);
                    beta = 1.0f;
                    if (dx) {
                        // dcols_n (CKK, OHW; ld q) = w^T (CKK, K) . dout_n (K, OHW), over cols_n.
                        wt.gemm(OHW, dout_n, OHW, cols_n, q);
                    }
                }
            } else {
                // Gather dout[n0 + nn][k][p] into mat[k][nn*OHW + p].
                for (int64_t nn = 0; nn < s; ++nn) {
                    for (int64_t k = 0; k < K; ++k) {
                        const float* src = dout_chunk + (nn * K + k) * OHW;  // (OHW)
                        std::copy(src, src + OHW, mat + k * q + nn * OHW);
                    }
                }
                // dw_g (K, CKK) (+)= mat (K, q) . cols^T (q, CKK)
                sgemm(false, true, K, CKK, q, 1.0f, mat, q, cols, q, beta, dw_g, CKK);
                beta = 1.0f;
                if (dx) {
                    // dcols (CKK, q) = w^T (CKK, K) . mat (K, q), into the cols buffer.
                    wt.gemm(q, mat, q, cols, q);
                }
            }
            if (dx) col2im(dx + n0 * C * H * W, cols, s, C, H, W, KH, KW, SH, SW, PH, PW);
        }
    });

    if (plan.groups > 1) {
        // dw = slot 0 + slot 1 + ..., in group order, for every value.
        const int64_t n = K * CKK;
        const float* parts = dw_parts.data();
#pragma omp parallel for schedule(static) if (n * plan.groups >= kParallelMin)
        for (int64_t e = 0; e < n; ++e) {
            float acc = parts[e];
            for (int64_t g = 1; g < plan.groups; ++g) acc += parts[g * n + e];
            dw[e] = acc;
        }
    }
}

}  // namespace fastcnn
