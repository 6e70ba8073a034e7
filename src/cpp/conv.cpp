// conv.cpp -- 2-D convolution (cross-correlation) forward and backward, by im2col + GEMM.
//
// Size letters:
//   N  batch   C  input channels   K  output channels (filters)
//   H W  image height/width   KH KW  kernel height/width   SH SW  stride
//   PH PW  zero padding   OH OW  output height/width, OH = (H + 2*PH - KH) / SH + 1
//   CKK = C*KH*KW (one column of im2col)   OHW = OH*OW (output pixels per image)
//
// Contract (see fastcnn.h): buffers are float32, C-contiguous, owned by the
// caller; the caller (bindings.cpp) has checked every size. Outputs are
// OVERWRITTEN, nothing accumulates across calls.
//   forward:  out (N,K,OH,OW) = w (K,C,KH,KW) * x (N,C,H,W) + b (K) [b may be null]
//   backward: from dout (N,K,OH,OW):
//             db (K)          = sum of dout over n, oh, ow            [may be null]
//             dw (K,C,KH,KW)  = dout_mat (K, N*OHW) . cols^T          (summed over chunks)
//             dx (N,C,H,W)    = col2im(w^T (CKK, K) . dout_mat)        [may be null: skipped]
//
// Memory bound: the batch runs in chunks of NB images. Per chunk the scratch is
// cols (CKK, NB*OHW) plus one K-row matrix (K, NB*OHW) (out_mat forward, dout_mat
// backward; backward reuses the cols buffer for dcols once dw is done). NB is the
// largest count with (CKK + K) * OHW * NB * 4 bytes <= kScratchBytes = 32 MiB, at
// least 1: so the scratch stays within 32 MiB unless a single image alone needs more.
// The scratch is allocated before any parallel region (may throw std::bad_alloc).
#include "fastcnn.h"

#include <algorithm>
#include <vector>

namespace fastcnn {

namespace {

constexpr int64_t kScratchBytes = int64_t(32) << 20;  // 32 MiB of float32 scratch per call

// Below this many values, a parallel region costs more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 15;

// Images per chunk: as many as fit (CKK + K) * OHW floats each into kScratchBytes.
int64_t chunk_images(int64_t N, int64_t CKK, int64_t K, int64_t OHW) {
    const int64_t per_image = (CKK + K) * OHW;  // floats
    const int64_t fit = kScratchBytes / static_cast<int64_t>(sizeof(float)) / per_image;
    return std::max<int64_t>(1, std::min(N, fit));
}

}  // namespace

void conv2d_forward(float* out, const float* x, const float* w, const float* b,
                    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                    int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const int64_t OH = (H + 2 * PH - KH) / SH + 1;
    const int64_t OW = (W + 2 * PW - KW) / SW + 1;
    const int64_t OHW = OH * OW;
    const int64_t CKK = C * KH * KW;
    const int64_t NB = chunk_images(N, CKK, K, OHW);

    std::vector<float> cols(static_cast<size_t>(CKK * NB * OHW));    // (CKK, NB*OHW)
    std::vector<float> out_mat(static_cast<size_t>(K * NB * OHW));   // (K, NB*OHW)

    for (int64_t n0 = 0; n0 < N; n0 += NB) {
        const int64_t nb = std::min(NB, N - n0);  // images in this chunk
        const int64_t q = nb * OHW;               // columns in this chunk
        im2col(cols.data(), x + n0 * C * H * W, nb, C, H, W, KH, KW, SH, SW, PH, PW);
        // out_mat (K, q) = w (K, CKK) . cols (CKK, q)
        sgemm(false, false, K, q, CKK, 1.0f, w, CKK, cols.data(), q, 0.0f, out_mat.data(), q);

        // Scatter out_mat[k][nn*OHW + p] to out[n0 + nn][k][p], adding b[k].
        float* out_chunk = out + n0 * K * OHW;    // (nb, K, OH, OW)
        const float* mat = out_mat.data();
#pragma omp parallel for schedule(static) if (K * q >= kParallelMin)
        for (int64_t t = 0; t < nb * K; ++t) {
            const int64_t nn = t / K;
            const int64_t k = t % K;
            const float* src = mat + k * q + nn * OHW;        // (OHW)
            float* dst = out_chunk + t * OHW;                 // out[n0+nn][k] (OHW)
            const float bias = b ? b[k] : 0.0f;
            if (b) {
                for (int64_t p = 0; p < OHW; ++p) dst[p] = src[p] + bias;
            } else {
                std::copy(src, src + OHW, dst);
            }
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
    const int64_t NB = chunk_images(N, CKK, K, OHW);

    // db[k] = sum over n and pixels of dout[n][k]; accumulated in double.
    if (db) {
#pragma omp parallel for schedule(static) if (N * K * OHW >= kParallelMin)
        for (int64_t k = 0; k < K; ++k) {
            double acc = 0.0;
            for (int64_t n = 0; n < N; ++n) {
                const float* src = dout + (n * K + k) * OHW;  // dout[n][k] (OHW)
                for (int64_t p = 0; p < OHW; ++p) acc += src[p];
            }
            db[k] = static_cast<float>(acc);
        }
    }

    std::vector<float> cols(static_cast<size_t>(CKK * NB * OHW));     // (CKK, NB*OHW), then dcols
    std::vector<float> dout_mat(static_cast<size_t>(K * NB * OHW));   // (K, NB*OHW)

    for (int64_t n0 = 0; n0 < N; n0 += NB) {
        const int64_t nb = std::min(NB, N - n0);  // images in this chunk
        const int64_t q = nb * OHW;               // columns in this chunk

        // Gather dout[n0 + nn][k][p] into dout_mat[k][nn*OHW + p].
        const float* dout_chunk = dout + n0 * K * OHW;        // (nb, K, OH, OW)
        float* mat = dout_mat.data();
#pragma omp parallel for schedule(static) if (K * q >= kParallelMin)
        for (int64_t t = 0; t < nb * K; ++t) {
            const int64_t nn = t / K;
            const int64_t k = t % K;
            const float* src = dout_chunk + t * OHW;          // dout[n0+nn][k] (OHW)
            std::copy(src, src + OHW, mat + k * q + nn * OHW);
        }

        // dw (K, CKK) (+)= dout_mat (K, q) . cols^T (q, CKK); the first chunk overwrites.
        im2col(cols.data(), x + n0 * C * H * W, nb, C, H, W, KH, KW, SH, SW, PH, PW);
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
