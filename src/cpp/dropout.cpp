// dropout.cpp -- dropout_apply of fastcnn.h: out = x * mask * scale, with
// scale = 1 / keep_prob. The same kernel serves the forward pass (x) and the
// backward pass (dout): both multiply by the same keep-mask.
//
// Size letters: n = number of values (any shape, seen flat).
//
// Contract: mask holds one byte per value; 0 drops the value, anything else
// keeps it (the caller passes 0/1). Dropped values are multiplied by 0, as the
// formula says, so NaN and Inf stay NaN where dropped (x * 0). out may be the
// same buffer as x.
#include "elementwise.h"
#include "threadpool.h"
#include "fastcnn.h"

namespace fastcnn {

// out (n), x (n), mask (n)
void dropout_apply(float* out, const float* x, const uint8_t* mask, float scale, int64_t n) {
    // The keep factor as arithmetic (scale or 0, exactly), not a ?: on the byte:
    // compiled inside the thread pool's loop, a ?: becomes a branch per value,
    // half of them mispredicted on a random mask.
    pool::parallel_for(n, n >= elementwise::kMinParallelLight, [=](int64_t i) {
        out[i] = x[i] * (static_cast<float>(mask[i] != 0) * scale);
    });
}

// out (n), x (n)
void dropout_scale(float* out, const float* x, float scale, int64_t n) {
    pool::parallel_for(n, n >= elementwise::kMinParallelLight, [=](int64_t i) {
        out[i] = x[i] * scale;
    });
}

}  // namespace fastcnn
