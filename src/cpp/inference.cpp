// inference.cpp -- InferencePlan::run of fastcnn.h: a model's whole inference
// forward pass, step after step, in one call.
//
// Size letters:
//   N  batch   C H W  one image of a step's input   K OH OW  one image of its output
//   (flat features F are (F, 1, 1)); KH KW SH SW PH PW  the conv kernel or pooling
//   window, stride, padding; PKH PKW PSH PSW  the fused max-pool's window and stride.
//
// Contract: the bindings checked every step when it was added (shapes follow
// from one step to the next, weights match, no size overflows for any batch
// they accept) and check x, out and N at each run; run() trusts them.
//
// Each step calls the kernel its layer's forward calls, with the same sizes,
// so the output is bit for bit what the layers give one op at a time (which
// batch sizes, thread counts and SIMD paths give is the kernels' business).
// Where outputs go:
//   the last step          writes out;
//   an elementwise step    works in place when its input is a plan buffer
//                          (the kernels allow out == x), else (its input is
//                          the caller's x) writes a buffer;
//   any other step         writes the buffer its input is not in.
// So x is never written, and one batch needs two buffers of the largest
// output and, for fused conv + max-pool steps, one of choice bytes (the
// kernel records each window's choice; inference does not need it).
#include <algorithm>
#include <cstring>

#include "fastcnn.h"

namespace fastcnn {

namespace {

bool elementwise(InferOp op) {
    switch (op) {
        case InferOp::relu:
        case InferOp::leaky_relu:
        case InferOp::sigmoid:
        case InferOp::tanh:
        case InferOp::softmax:
        case InferOp::scale:
            return true;
        default:
            return false;
    }
}

int64_t out_size(const InferStep& s) { return s.K * s.OH * s.OW; }   // per image

// out (N, K, OH, OW) <- step s on x (N, C, H, W); choice: scratch for the
// fused conv + max-pool.
void run_step(const InferStep& s, float* out, const float* x, int64_t N,
              const float* const* params, uint8_t* choice) {
    const float* w = s.w >= 0 ? params[s.w] : nullptr;
    const float* b = s.b >= 0 ? params[s.b] : nullptr;
    const int64_t n = N * s.C * s.H * s.W;  // values of the input (elementwise steps)
    switch (s.op) {
        case InferOp::conv2d:
            conv2d_forward(out, x, w, b, N, s.C, s.H, s.W, s.K, s.KH, s.KW, s.SH, s.SW, s.PH,
                           s.PW, s.relu);
            return;
        case InferOp::conv2d_maxpool:
            conv2d_maxpool_forward(out, choice, x, w, b, N, s.C, s.H, s.W, s.K, s.KH, s.KW,
                                   s.SH, s.SW, s.PH, s.PW, s.PKH, s.PKW, s.PSH, s.PSW, s.relu);
            return;
        case InferOp::maxpool2d:
            maxpool2d_forward(out, x, N, s.C, s.H, s.W, s.KH, s.KW, s.SH, s.SW);
            return;
        case InferOp::avgpool2d:
            avgpool2d_forward(out, x, N, s.C, s.H, s.W, s.KH, s.KW, s.SH, s.SW);
            return;
        case InferOp::l2pool2d:
            l2pool2d_forward(out, x, N, s.C, s.H, s.W, s.KH, s.KW, s.SH, s.SW);
            return;
        case InferOp::global_avgpool2d:
            global_avgpool2d_forward(out, x, N, s.C, s.H * s.W);
            return;
        case InferOp::dense:
            dense_forward(out, x, w, b, N, s.C * s.H * s.W, out_size(s));
            return;
        case InferOp::relu:
            relu_forward(out, x, n);
            return;
        case InferOp::leaky_relu:
            leaky_relu_forward(out, x, n, s.alpha);
            return;
        case InferOp::sigmoid:
            sigmoid_forward(out, x, n);
            return;
        case InferOp::tanh:
            tanh_forward(out, x, n);
            return;
        case InferOp::softmax:
            softmax_forward(out, x, N, s.C * s.H * s.W);
            return;
        case InferOp::scale:
            dropout_scale(out, x, s.alpha, n);
            return;
    }
}

}  // namespace

void InferencePlan::reserve(int64_t N) {
    if (N <= capacity_) return;
    int64_t largest = 0, largest_choice = 0;  // per image
    for (const InferStep& s : steps_) {
        largest = std::max(largest, out_size(s));
        if (s.op == InferOp::conv2d_maxpool) largest_choice = std::max(largest_choice, out_size(s));
    }
    // Each buffer rounded up to 16 floats (64 bytes), so the second is aligned too.
    const int64_t floats = (N * largest + 15) / 16 * 16;
    const size_t bytes = static_cast<size_t>(2 * floats + 16) * sizeof(float);
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (p == nullptr) throw std::bad_alloc();
    buffers_.reset(p);
    buffer_floats_ = floats;
    choice_.assign(static_cast<size_t>(N * largest_choice), 0);
    capacity_ = N;
}

void InferencePlan::run(float* out, const float* x, int64_t N, const float* const* params) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (steps_.empty()) {
        std::memcpy(out, x, static_cast<size_t>(N * in_size_) * sizeof(float));
        return;
    }
    reserve(N);
    float* buf[2] = {buffers_.get(), buffers_.get() + buffer_floats_};
    const float* src = x;
    for (size_t i = 0; i < steps_.size(); ++i) {
        const InferStep& s = steps_[i];
        float* dst;
        if (i + 1 == steps_.size()) {
            dst = out;
        } else if (elementwise(s.op) && src != x) {
            dst = const_cast<float*>(src);  // a plan buffer: in place
        } else {
            dst = src == buf[0] ? buf[1] : buf[0];
        }
        run_step(s, dst, src, N, params, choice_.data());
        src = dst;
    }
}

}  // namespace fastcnn
