// conv.cpp -- 2-D convolution (cross-correlation) forward and backward, by im2col + GEMM
// (or Winograd, winograd.h).
//
// Size letters:
//   N  batch   C  input channels   K  output channels (filters)
//   H W  image height/width   KH KW  kernel height/width   SH SW  stride
//   PH PW  zero padding   OH OW  output height/width (conv_out_size, geometry.h)
//   OHW = OH*OW (output pixels per image)
//
// Contract (see fastcnn.h): buffers are float32, C-contiguous, owned by the
// caller; the caller (the bindings' intake) has checked every size. Outputs
// are OVERWRITTEN, nothing accumulates across calls.
//   forward:  out (N,K,OH,OW) = w (K,C,KH,KW) * x (N,C,H,W) + b (K) [b may be null],
//             or relu of it (relu = true): applied to each image's output right
//             after its GEMM (per image) or in the scatter (batched), so the
//             output is not read and written once more by a separate relu pass
//   backward: from dout (N,K,OH,OW):
//             db (K)          = sum of dout over n, oh, ow            [may be null]
//             dw (K,C,KH,KW)  = sum over n of dout[n] (K, OHW) . cols[n]^T (OHW, CKK)
//             dx (N,C,H,W)    = col2im of w^T (CKK, K) . dout[n] (K, OHW)  [may be null: skipped]
//
// The passes themselves (batch groups, sub-chunks, per-image or batched
// GEMMs, the dw and db sums) are in conv_passes.h; this file gives them the
// plain epilogue (results straight into out) and dz source (dout itself).
// 3x3 stride-1 layers take the Winograd passes (winograd.h) instead where
// wino::choose says so, with the same epilogue and dz source; a Winograd call
// whose result is not finite is run again by im2col.
#include <algorithm>

#include "common.h"
#include "conv_passes.h"
#include "fastcnn.h"
#include "winograd.h"

namespace fastcnn {

namespace {

void relu_in_place(float* v, int64_t count) {
    for (int64_t i = 0; i < count; ++i) v[i] = relu_value(v[i]);
}

// The epilogue of conv2d (Epilogue in conv_passes.h): out (N, K, OH, OW),
// relu or not; the per-image GEMMs write straight into out.
struct PlainForward {
    float* out;
    const float* b;
    int64_t K, OHW;
    bool relu;

    static constexpr bool kScratch = false;
    float* target(int64_t n, float* /*scratch*/) const { return out + n * K * OHW; }
    void finish(int64_t n, float* z, int64_t kstride, bool add_bias) const {
        float* out_n = out + n * K * OHW;
        if (z == out_n) {  // written in place by the per-image GEMM
            if (relu) relu_in_place(out_n, K * OHW);  // still in L2
            return;
        }
        for (int64_t k = 0; k < K; ++k) {
            const float* src = z + k * kstride;    // (OHW)
            float* dst = out_n + k * OHW;          // out[n][k] (OHW)
            const float bias = add_bias && b ? b[k] : 0.0f;
            if (relu) {
                for (int64_t p = 0; p < OHW; ++p) dst[p] = relu_value(src[p] + bias);
            } else {
                for (int64_t p = 0; p < OHW; ++p) dst[p] = src[p] + bias;
            }
        }
    }
};

// The dz source of conv2d_backward (DzSource in conv_passes.h): dz is dout
// itself.
struct PlainDz {
    const float* dout;
    int64_t K, OHW;

    static constexpr bool kScratch = false;
    const float* image(int64_t n, float* /*scratch*/) const { return dout + n * K * OHW; }
    void fill(int64_t n, float* dst, int64_t kstride) const {
        for (int64_t k = 0; k < K; ++k) {
            const float* src = dout + (n * K + k) * OHW;
            std::copy(src, src + OHW, dst + k * kstride);
        }
    }
};

}  // namespace

void conv2d_forward(float* out, const float* x, const float* w, const float* b,
                    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                    int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW,
                    bool relu) {
    const conv::Shape dims = conv::make_shape(N, C, H, W, K, KH, KW, SH, SW, PH, PW);
    const PlainForward epi{out, b, K, dims.OHW, relu};
    if (wino::choose_forward(dims) && wino::forward_pass(epi, x, w, b, dims)) return;
    conv::conv_forward_pass(epi, x, w, b, dims);
}

void conv2d_backward(float* dx, float* dw, float* db, const float* dout,
                     const float* x, const float* w,
                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                     int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const conv::Shape dims = conv::make_shape(N, C, H, W, K, KH, KW, SH, SW, PH, PW);
    const PlainDz src{dout, K, dims.OHW};
    if (wino::choose(dims) && wino::backward_pass(src, dx, dw, db, x, w, dims)) return;
    conv::conv_backward_pass(src, dx, dw, db, x, w, dims);
}

}  // namespace fastcnn
