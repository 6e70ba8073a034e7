// conv.cpp -- 2-D convolution (cross-correlation) forward and backward, by im2col + GEMM.
//
// Size letters:
//   N  batch   C  input channels   K  output channels (filters)
//   H W  image height/width   KH KW  kernel height/width   SH SW  stride
//   PH PW  zero padding   OH OW  output height/width, OH = (H + 2*PH - KH) / SH + 1
//   CKK = C*KH*KW (one column of im2col)   OHW = OH*OW (output pixels per image)
//   NB  images per chunk   q = nb*OHW  columns of one chunk (nb <= NB images)
//
// Contract (see fastcnn.h): buffers are float32, C-contiguous, owned by the
// caller; the caller (bindings.cpp) has checked every size. Outputs are
// OVERWRITTEN, nothing accumulates across calls.
//   forward:  out (N,K,OH,OW) = w (K,C,KH,KW) * x (N,C,H,W) + b (K) [b may be null]
//   backward: from dout (N,K,OH,OW):
//             db (K)          = sum of dout over n, oh, ow            [may be null]
//             dw (K,C,KH,KW)  = sum over n of dout[n] (K, OHW) . cols[n]^T (OHW, CKK)
//             dx (N,C,H,W)    = col2im of w^T (CKK, K) . dout[n] (K, OHW)  [may be null: skipped]
//
// Chunks: the batch runs in chunks of NB images; per chunk im2col writes
// cols (CKK, nb*OHW) and the GEMMs read it back. NB is chosen so the chunk's
// scratch is about kChunkBytes = 1 MiB (at least 1 image): cols stays in the
// caches between im2col and the GEMMs. Measured on the nets' layers at batch
// 64 (1 thread): 1 MiB is 25-30% faster than one 32 MiB chunk, and 0.5 to 2 MiB
// are all within noise of it.
//
// Two ways to run the GEMMs of a chunk, picked by OHW:
//   per image (OHW >= kPerImageMinOHW, e.g. first layers on 28x28 images):
//     one GEMM per image reading dout[n] / writing out[n] in place, as both are
//     (K, OHW) matrices already. No copy of out or dout. The GEMM adds the
//     bias: w gets b as one more column, cols one more row of ones (a separate
//     pass over out for the bias cost 10% of the forward time). With more than
//     one thread, the images of a chunk are shared out among the threads
//     (each image's GEMMs on one thread: these GEMMs are too small to split
//     well, e.g. dw of a first layer is K x CKK = 20 x 25), dynamically, as
//     a core may be busy with another process. Each image's dw goes to its
//     own slot of dw_image, summed into dw in image order after the chunk: dw
//     does not depend on the thread count or on which thread ran which image.
//   batched (small OHW, e.g. 8x8 outputs): per image the GEMMs would be too
//     narrow (OHW columns) to run fast, so one GEMM per chunk over a K-row
//     matrix (K, q): forward writes it and then scatters it into out adding the
//     bias; backward first gathers dout into it.
// Scratch: cols (CKK, NB*OHW) (one more row of ones for the bias, forward per
// image), plus the K-row matrix on the batched path, or w_bias (K, CKK+1)
// forward and dw_image (NB, K, CKK) backward on the per-image path.
// It is allocated before any parallel region (may throw std::bad_alloc).
//
// db: per (image, k) a float sum of OHW values in 8 interleaved partial sums
// (vectorised, error ~ OHW/8 roundings), then summed over images in float.
#include "fastcnn.h"

#include <algorithm>
#include <exception>
#include <vector>

namespace fastcnn {

namespace {

constexpr int64_t kChunkBytes = int64_t(1) << 20;  // scratch per chunk, see above

// The per-image GEMMs need this many output pixels (columns) to be efficient.
// Measured: per image is 10-35% faster on 24x24 / 26x26 outputs (576 / 676
// columns), 5-10% slower on 8x8 / 11x11 (64 / 121).
constexpr int64_t kPerImageMinOHW = 256;

// Below this many values, a parallel region costs more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 15;

struct Plan {
    bool per_image;  // GEMMs per image, else per chunk with a K-row matrix
    int64_t NB;      // images per chunk
};

Plan make_plan(int64_t N, int64_t CKK, int64_t K, int64_t OHW) {
    const bool per_image = OHW >= kPerImageMinOHW;
    // Scratch per image: its columns, plus its slot of dw_image or its part
    // of the K-row matrix.
    const int64_t per_image_floats = per_image ? CKK * OHW + K * CKK : (CKK + K) * OHW;
    const int64_t fit = kChunkBytes / static_cast<int64_t>(sizeof(float)) / per_image_floats;
    return {per_image, std::max<int64_t>(1, std::min(N, fit))};
}

// Runs body(nn) for the images nn in [0, count): with 2+ threads and 2+ images
// shared out among the threads (each sgemm then runs on its calling thread
// alone), else in order on this thread (each sgemm may use all threads).
// sgemm may throw std::bad_alloc: caught inside the parallel region, rethrown here.
template <class Body>
void for_each_image(int64_t count, Body body) {
    const bool parallel = get_num_threads() > 1 && count >= 2;
    std::exception_ptr error = nullptr;
#pragma omp parallel for schedule(dynamic) if (parallel)
    for (int64_t nn = 0; nn < count; ++nn) {
        try {
            body(nn);
        } catch (...) {
#pragma omp critical(fastcnn_conv_error)
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}

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
                    int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const int64_t OH = (H + 2 * PH - KH) / SH + 1;
    const int64_t OW = (W + 2 * PW - KW) / SW + 1;
    const int64_t OHW = OH * OW;
    const int64_t CKK = C * KH * KW;
    const Plan plan = make_plan(N, CKK, K, OHW);
    const int64_t NB = plan.NB;

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

    std::vector<float> cols(static_cast<size_t>(KB * NB * OHW));          // (KB, NB*OHW)
    std::vector<float> out_mat(plan.per_image ? 0 : static_cast<size_t>(K * NB * OHW));
                                                                           // (K, NB*OHW)
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
        const int64_t nb = std::min(NB, N - n0);  // images in this chunk
        const int64_t q = nb * OHW;               // columns in this chunk
        float* out_chunk = out + n0 * K * OHW;    // (nb, K, OH, OW)
        im2col(cols.data(), x + n0 * C * H * W, nb, C, H, W, KH, KW, SH, SW, PH, PW);

        if (plan.per_image) {
            if (bias_in_gemm) std::fill(cols.data() + CKK * q, cols.data() + KB * q, 1.0f);
            for_each_image(nb, [&](int64_t nn) {
                // out[n0+nn] (K, OHW) = w_gemm (K, KB) . cols[:, nn*OHW ...] (KB, OHW; ld q)
                sgemm(false, false, K, OHW, KB, 1.0f, w_gemm, KB, cols.data() + nn * OHW, q,
                      0.0f, out_chunk + nn * K * OHW, OHW);
            });
            continue;
        }

        // out_mat (K, q) = w (K, CKK) . cols (CKK, q)
        sgemm(false, false, K, q, CKK, 1.0f, w, CKK, cols.data(), q, 0.0f, out_mat.data(), q);
        // Scatter out_mat[k][nn*OHW + p] to out[n0 + nn][k][p], adding b[k].
        const float* mat = out_mat.data();
#pragma omp parallel for schedule(static) if (K * q >= kParallelMin)
        for (int64_t t = 0; t < nb * K; ++t) {
            const int64_t nn = t / K;
            const int64_t k = t % K;
            const float* src = mat + k * q + nn * OHW;        // (OHW)
            float* dst = out_chunk + t * OHW;                 // out[n0+nn][k] (OHW)
            const float bias = b ? b[k] : 0.0f;
            for (int64_t p = 0; p < OHW; ++p) dst[p] = src[p] + bias;
        }
    }
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
    const int64_t NB = plan.NB;

    // db[k] = sum over images of the float sum of dout[n][k] (OHW).
    if (db) {
#pragma omp parallel for schedule(static) if (N * K * OHW >= kParallelMin)
        for (int64_t k = 0; k < K; ++k) {
            float acc = 0.0f;
            for (int64_t n = 0; n < N; ++n) acc += sum_floats(dout + (n * K + k) * OHW, OHW);
            db[k] = acc;
        }
    }

    std::vector<float> dw_image(plan.per_image ? static_cast<size_t>(NB * K * CKK) : 0);
                                                                   // (NB, K, CKK)
    std::vector<float> cols(static_cast<size_t>(CKK * NB * OHW));  // (CKK, NB*OHW), then dcols
    std::vector<float> dout_mat(plan.per_image ? 0 : static_cast<size_t>(K * NB * OHW));
                                                                   // (K, NB*OHW)
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
        const int64_t nb = std::min(NB, N - n0);  // images in this chunk
        const int64_t q = nb * OHW;               // columns in this chunk
        const float* dout_chunk = dout + n0 * K * OHW;  // (nb, K, OH, OW)
        im2col(cols.data(), x + n0 * C * H * W, nb, C, H, W, KH, KW, SH, SW, PH, PW);

        if (plan.per_image) {
            for_each_image(nb, [&](int64_t nn) {
                const float* dout_n = dout_chunk + nn * K * OHW;     // dout[n0+nn] (K, OHW)
                float* cols_n = cols.data() + nn * OHW;              // (CKK, OHW; ld q)
                // dw_image[nn] (K, CKK) = dout_n (K, OHW) . cols_n^T (OHW, CKK)
                sgemm(false, true, K, CKK, OHW, 1.0f, dout_n, OHW, cols_n, q,
                      0.0f, dw_image.data() + nn * K * CKK, CKK);
                if (dx) {
                    // dcols_n (CKK, OHW; ld q) = w^T (CKK, K) . dout_n (K, OHW), over cols_n.
                    sgemm(true, false, CKK, OHW, K, 1.0f, w, CKK, dout_n, OHW, 0.0f, cols_n, q);
                }
            });
            // dw (K, CKK) (+)= dw_image[0] + dw_image[1] + ..., in image order; image 0 overwrites.
            for (int64_t nn = 0; nn < nb; ++nn) {
                const float* part = dw_image.data() + nn * K * CKK;  // (K, CKK)
                if (n0 + nn == 0) {
                    std::copy(part, part + K * CKK, dw);
                } else {
                    for (int64_t e = 0; e < K * CKK; ++e) dw[e] += part[e];
                }
            }
            if (dx) col2im(dx + n0 * C * H * W, cols.data(), nb, C, H, W, KH, KW, SH, SW, PH, PW);
            continue;
        }

        // Gather dout[n0 + nn][k][p] into dout_mat[k][nn*OHW + p].
        float* mat = dout_mat.data();
#pragma omp parallel for schedule(static) if (K * q >= kParallelMin)
        for (int64_t t = 0; t < nb * K; ++t) {
            const int64_t nn = t / K;
            const int64_t k = t % K;
            const float* src = dout_chunk + t * OHW;          // dout[n0+nn][k] (OHW)
            std::copy(src, src + OHW, mat + k * q + nn * OHW);
        }
        // dw (K, CKK) (+)= dout_mat (K, q) . cols^T (q, CKK); the first chunk overwrites.
        sgemm(false, true, K, CKK, q, 1.0f, mat, q, cols.data(), q,
              n0 == 0 ? 0.0f : 1.0f, dw, CKK);
        if (dx) {
            // dcols (CKK, q) = w^T (CKK, K) . dout_mat (K, q), into the cols buffer.
            sgemm(true, false, CKK, q, K, 1.0f, w, CKK, mat, q, 0.0f, cols.data(), q);
            col2im(dx + n0 * C * H * W, cols.data(), nb, C, H, W, KH, KW, SH, SW, PH, PW);
        }
    }
}

}  // namespace fastcnn
