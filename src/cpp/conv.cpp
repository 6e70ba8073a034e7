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
//     (K, OHW) matrices already. No copy of out or dout; the bias is written
//     into out first and the GEMM adds to it.
//   batched (small OHW, e.g. 8x8 outputs): per image the GEMMs would be too
//     narrow (OHW columns) to run fast, so one GEMM per chunk over a K-row
//     matrix (K, q): forward writes it and then scatters it into out adding the
//     bias; backward first gathers dout into it.
// Scratch: cols (CKK, NB*OHW), plus the K-row matrix on the batched path.
// It is allocated before any parallel region (may throw std::bad_alloc).
//
// db: per (image, k) a float sum of OHW values in 8 interleaved partial sums
// (vectorised, error ~ OHW/8 roundings), then summed over images in float.
#include "fastcnn.h"

#include <algorithm>
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
    const int64_t per_image_floats = (per_image ? CKK : CKK + K) * OHW;
    const int64_t fit = kChunkBytes / static_cast<int64_t>(sizeof(float)) / per_image_floats;
    return {per_image, std::max<int64_t>(1, std::min(N, fit))};
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

    std::vector<float> cols(static_cast<size_t>(CKK * NB * OHW));          // (CKK, NB*OHW)
    std::vector<float> out_mat(plan.per_image ? 0 : static_cast<size_t>(K * NB * OHW));
                                                                           // (K, NB*OHW)
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
        const int64_t nb = std::min(NB, N - n0);  // images in this chunk
        const int64_t q = nb * OHW;               // columns in this chunk
        float* out_chunk = out + n0 * K * OHW;    // (nb, K, OH, OW)
        im2col(cols.data(), x + n0 * C * H * W, nb, C, H, W, KH, KW, SH, SW, PH, PW);

        if (plan.per_image) {
            if (b) {
                for (int64_t t = 0; t < nb * K; ++t) {               // out[n0+nn][k] = b[k]
                    std::fill(out_chunk + t * OHW, out_chunk + (t + 1) * OHW, b[t % K]);
                }
            }
            for (int64_t nn = 0; nn < nb; ++nn) {
                // out[n0+nn] (K, OHW) (+)= w (K, CKK) . cols[:, nn*OHW ...] (CKK, OHW; ld q)
                sgemm(false, false, K, OHW, CKK, 1.0f, w, CKK, cols.data() + nn * OHW, q,
                      b ? 1.0f : 0.0f, out_chunk + nn * K * OHW, OHW);
            }
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

    std::vector<float> cols(static_cast<size_t>(CKK * NB * OHW));  // (CKK, NB*OHW), then dcols
    std::vector<float> dout_mat(plan.per_image ? 0 : static_cast<size_t>(K * NB * OHW));
                                                                   // (K, NB*OHW)
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
        const int64_t nb = std::min(NB, N - n0);  // images in this chunk
        const int64_t q = nb * OHW;               // columns in this chunk
        const float* dout_chunk = dout + n0 * K * OHW;  // (nb, K, OH, OW)
        im2col(cols.data(), x + n0 * C * H * W, nb, C, H, W, KH, KW, SH, SW, PH, PW);

        if (plan.per_image) {
            for (int64_t nn = 0; nn < nb; ++nn) {
                // dw (K, CKK) (+)= dout[n0+nn] (K, OHW) . cols[:, nn*OHW ...]^T (OHW, CKK);
                // the first image overwrites.
                sgemm(false, true, K, CKK, OHW, 1.0f, dout_chunk + nn * K * OHW, OHW,
                      cols.data() + nn * OHW, q, n0 + nn == 0 ? 0.0f : 1.0f, dw, CKK);
            }
            if (dx) {
                for (int64_t nn = 0; nn < nb; ++nn) {
                    // dcols[:, nn*OHW ...] (CKK, OHW; ld q) = w^T (CKK, K) . dout[n0+nn] (K, OHW),
                    // into the cols buffer (the dw GEMMs of this chunk are done with it).
                    sgemm(true, false, CKK, OHW, K, 1.0f, w, CKK, dout_chunk + nn * K * OHW, OHW,
                          0.0f, cols.data() + nn * OHW, q);
                }
                col2im(dx + n0 * C * H * W, cols.data(), nb, C, H, W, KH, KW, SH, SW, PH, PW);
            }
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
