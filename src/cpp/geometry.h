// geometry.h -- the output sizes of the window ops and the limits on sizes,
// one definition each, shared by the kernels and the bindings' intake (and,
// through _core.MAX_SIZE, CHOICE_NO_GRADIENT and MAX_FUSED_POOL_WINDOW, by
// the Python checks and the tests). Part of the native API (fastcnn.h).
//
// Size letters: size = an input extent (H or W), k = the window extent (KH or
// KW), stride = SH or SW, pad = PH or PW (zero padding on both sides).
#pragma once
#include <cstdint>

namespace fastcnn {

// Window positions along one axis: OH = (H + 2*PH - KH) / SH + 1, floor
// division; the caller has checked 1 <= k <= size + 2*pad.
constexpr int64_t conv_out_size(int64_t size, int64_t k, int64_t stride, int64_t pad) {
    return (size + 2 * pad - k) / stride + 1;
}

// The same without padding (pooling): OH = (H - KH) / SH + 1.
constexpr int64_t pool_out_size(int64_t size, int64_t k, int64_t stride) {
    return conv_out_size(size, k, stride, 0);
}

// 2x2 windows at stride 2: the pooling case with its own fast loops.
constexpr bool is_2x2_stride2(int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    return KH == 2 && KW == 2 && SH == 2 && SW == 2;
}

// The largest size, window, stride or padding the intake accepts: small
// enough that no intermediate of the index arithmetic (e.g. H + 2*PH)
// overflows int64.
constexpr int64_t kMaxDim = int64_t(1) << 40;

// A fused conv + max-pool records each window's chosen element as one byte,
// its offset i*PKW + j in the window, or kNoGradient where relu is on and the
// pooled value is not > 0. So a window holds at most kMaxFusedPoolWindow
// elements.
constexpr uint8_t kNoGradient = 255;
constexpr int64_t kMaxFusedPoolWindow = int64_t(kNoGradient) - 1;

}  // namespace fastcnn
