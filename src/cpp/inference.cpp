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
// output.
//
// A conv + max-pool step (conv2d_maxpool: what conv2d_maxpool_forward gives
// the training pass, which also records each window's choice) runs as
// conv2d_forward without relu, maxpool2d_forward and, when relu is on,
// relu_forward on the pooled values: bit for bit the fused op's out (it is
// conv2d + relu + maxpool2d bit for bit, and relu commutes with the max-pool
// rule: relu is non-decreasing, keeps NaN a NaN and sends every value <= 0
// to +0), and without the choice bytes faster, ~1.6x on a first layer (the
// fused op's per-element choice bookkeeping costs more than a second pass
// over the conv output while it is in cache). The images go through in
// chunks whose conv output fits kChunkBytes, each chunk all three passes on
// one thread, so its conv output never leaves that core's cache; the threads
// take chunks in turn (one parallel region per step; about four chunks a
// thread when the batch allows, one image at least). An im2col conv's output
// for an image does not depend on the other images of its call, so no
// chunking changes a value. That holds only where conv_path gives im2col for
// the whole batch (and then for any part of it: Winograd's rule asks for a
// number of tiles, which fewer images do not reach): Winograd's choice
// depends on the batch size, and a non-finite value anywhere sends its whole
// call to im2col. Where the batch takes Winograd the step is one
// conv2d_maxpool_forward call over the batch, as the layers' forward makes
// it, without the choice bytes (the same out).
#include <algorithm>
#include <cstring>

#include "fastcnn.h"
#include "threadpool.h"

namespace fastcnn {

namespace {

// The conv output of one chunk of a conv + max-pool step: well inside L2.
constexpr int64_t kChunkBytes = int64_t(1) << 20;
// Buffers up to this size stay with the plan between runs; larger ones (large
// images at large batches) are freed after each run, as the ops' outputs are.
constexpr size_t kKeepBytes = size_t(64) << 20;

int64_t conv_size(const InferStep& s) {   // per image, before the pool
    return s.K * conv_out_size(s.H, s.KH, s.SH, s.PH) * conv_out_size(s.W, s.KW, s.SW, s.PW);
}

// Images per chunk of a conv + max-pool step on a batch of N with `threads` threads.
int64_t chunk_images(const InferStep& s, int64_t N, int64_t threads) {
    const int64_t fit = std::max<int64_t>(1, kChunkBytes / int64_t(sizeof(float)) / conv_size(s));
    const int64_t share = threads > 1 ? (N + 4 * threads - 1) / (4 * threads) : N;
    return std::max<int64_t>(1, std::min(fit, share));
}

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

// Whether the conv of step s runs by im2col on a batch of N (the setting in use).
bool im2col_conv(const InferStep& s, int64_t N) {
    return std::strcmp(conv_path(N, s.C, s.H, s.W, s.K, s.KH, s.KW, s.SH, s.SW, s.PH, s.PW),
                       "im2col") == 0;
}

// out (N, K, OH, OW) <- the conv + max-pool step s on x (N, C, H, W), chunk by
// chunk; conv: `threads` blocks of (chunk, K, conv OH, conv OW), one a thread.
// Where the batch takes Winograd, the fused op over the whole batch instead,
// without its choice bytes.
void conv_maxpool(const InferStep& s, float* out, const float* x, int64_t N, const float* w,
                  const float* b, float* conv, int threads) {
    if (!im2col_conv(s, N)) {
        conv2d_maxpool_forward(out, nullptr, x, w, b, N, s.C, s.H, s.W, s.K, s.KH, s.KW, s.SH,
                               s.SW, s.PH, s.PW, s.PKH, s.PKW, s.PSH, s.PSW, s.relu);
        return;
    }
    const int64_t COH = conv_out_size(s.H, s.KH, s.SH, s.PH);
    const int64_t COW = conv_out_size(s.W, s.KW, s.SW, s.PW);
    const int64_t S = chunk_images(s, N, threads);
    pool::parallel_for_dynamic((N + S - 1) / S, threads, [&](int64_t c, int t) {
        const int64_t n0 = c * S, n = std::min(S, N - n0);
        float* z = conv + t * S * conv_size(s);     // (n, K, COH, COW)
        float* pooled = out + n0 * out_size(s);     // (n, K, OH, OW)
        conv2d_forward(z, x + n0 * s.C * s.H * s.W, w, b, n, s.C, s.H, s.W, s.K, s.KH, s.KW,
                       s.SH, s.SW, s.PH, s.PW, false);
        maxpool2d_forward(pooled, z, n, s.K, COH, COW, s.PKH, s.PKW, s.PSH, s.PSW);
        if (s.relu) relu_forward(pooled, pooled, n * out_size(s));
    });
}

// out (N, K, OH, OW) <- step s on x (N, C, H, W); conv: scratch for the
// conv + max-pool steps, for `threads` threads.
void run_step(const InferStep& s, float* out, const float* x, int64_t N,
              const float* const* params, float* conv, int threads) {
    const float* w = s.w >= 0 ? params[s.w] : nullptr;
    const float* b = s.b >= 0 ? params[s.b] : nullptr;
    const int64_t n = N * s.C * s.H * s.W;  // values of the input (elementwise steps)
    switch (s.op) {
        case InferOp::conv2d:
            conv2d_forward(out, x, w, b, N, s.C, s.H, s.W, s.K, s.KH, s.KW, s.SH, s.SW, s.PH,
                           s.PW, s.relu);
            return;
        case InferOp::conv2d_maxpool:
            conv_maxpool(s, out, x, N, w, b, conv, threads);
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

void InferencePlan::reserve(int64_t N, int threads) {
    if (N <= capacity_ && threads <= capacity_threads_) return;
    N = std::max(N, capacity_);
    threads = std::max(threads, capacity_threads_);
    int64_t largest = 0, chunks = 0;  // per image; the conv + max-pool steps' scratch
    for (const InferStep& s : steps_) {
        largest = std::max(largest, out_size(s));
        if (s.op == InferOp::conv2d_maxpool) {
            for (int t = 1; t <= threads; ++t) {   // t threads' chunks, for any batch <= N
                chunks = std::max(chunks, t * chunk_images(s, N, t) * conv_size(s));
            }
        }
    }
    // Each block rounded up to 16 floats (64 bytes), so all are aligned.
    const int64_t floats = (N * largest + 15) / 16 * 16;
    const size_t bytes = static_cast<size_t>(2 * floats + (chunks + 15) / 16 * 16 + 16) *
                         sizeof(float);
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (p == nullptr) throw std::bad_alloc();
    buffers_.reset(p);
    buffer_bytes_ = bytes;
    buffer_floats_ = floats;
    capacity_ = N;
    capacity_threads_ = threads;
}

void InferencePlan::run(float* out, const float* x, int64_t N, const float* const* params) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (steps_.empty()) {
        std::memcpy(out, x, static_cast<size_t>(N * in_size_) * sizeof(float));
        return;
    }
    const int threads = pool::max_threads();
    reserve(N, threads);
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
        run_step(s, dst, src, N, params, buf[1] + buffer_floats_, threads);
        src = dst;
    }
    if (buffer_bytes_ > kKeepBytes) {
        buffers_.reset();
        capacity_ = capacity_threads_ = 0;
    }
}

}  // namespace fastcnn
