// dense.cpp -- fully connected layer forward and backward, by GEMM.
//
// Size letters:
//   N  batch   I  input features   O  output features
//
// Contract (see fastcnn.h): buffers are float32, C-contiguous, owned by the
// caller; the caller (the bindings' intake) has checked every size. Outputs are
// OVERWRITTEN.
//   forward:  out (N,O) = x (N,I) . w (I,O) + b (O)          [b may be null]
//   backward: dx (N,I) = dout (N,O) . w^T (O,I)               [may be null: skipped]
//             dw (I,O) = x^T (I,N) . dout (N,O)
//             db (O)   = column sums of dout, in double        [may be null]
//   backward + SGD step (dense_backward_sgd): dx as above, then the GEMM
//             that would give dw adds -lr * x^T . dout straight into w
//             (beta = 1 - lr*weight_decay), and b -= lr * db. For a mini-batch
//             of 10 this replaces writing dw and a separate pass reading w and
//             dw and writing w: the weights are read once and written once.
#include "fastcnn.h"

#include <algorithm>
#include <vector>

namespace fastcnn {

namespace {

// Column sums of dout (N,O), in double: (O).
std::vector<double> column_sums(const float* dout, int64_t N, int64_t O) {
    std::vector<double> acc(static_cast<size_t>(O), 0.0);
    for (int64_t n = 0; n < N; ++n) {
        const float* row = dout + n * O;  // dout[n] (O)
        for (int64_t o = 0; o < O; ++o) acc[static_cast<size_t>(o)] += row[o];
    }
    return acc;
}

}  // namespace

void dense_forward(float* out, const float* x, const float* w, const float* b,
                   int64_t N, int64_t I, int64_t O) {
    if (b) {
        // Start every row of out from b, then out (N,O) += x (N,I) . w (I,O).
        for (int64_t n = 0; n < N; ++n) std::copy(b, b + O, out + n * O);
        sgemm(false, false, N, O, I, 1.0f, x, I, w, O, 1.0f, out, O);
    } else {
        sgemm(false, false, N, O, I, 1.0f, x, I, w, O, 0.0f, out, O);
    }
}

void dense_backward(float* dx, float* dw, float* db, const float* dout,
                    const float* x, const float* w, int64_t N, int64_t I, int64_t O) {
    if (dx) {
        // dx (N,I) = dout (N,O) . w^T, w stored (I,O).
        sgemm(false, true, N, I, O, 1.0f, dout, O, w, O, 0.0f, dx, I);
    }
    // dw (I,O) = x^T . dout (N,O), x stored (N,I).
    sgemm(true, false, I, O, N, 1.0f, x, I, dout, O, 0.0f, dw, O);
    if (db) {
        const std::vector<double> acc = column_sums(dout, N, O);
        for (int64_t o = 0; o < O; ++o) db[o] = static_cast<float>(acc[static_cast<size_t>(o)]);
    }
}

void dense_backward_sgd(float* dx, float* w, float* b, const float* dout, const float* x,
                        int64_t N, int64_t I, int64_t O, float lr, float weight_decay) {
    if (dx) {
        // dx (N,I) = dout (N,O) . w^T, with w as it was before this step, and
        // w (I,O) = (1 - lr*wd) * w - lr * x^T . dout, in one pass over w.
        sgemm_dx_then_update(N, I, O, dout, x, -lr, 1.0f - lr * weight_decay, w, dx);
    } else {
        // w (I,O) = (1 - lr*wd) * w - lr * x^T . dout
        sgemm(true, false, I, O, N, -lr, x, I, dout, O, 1.0f - lr * weight_decay, w, O);
    }
    if (b) {
        const std::vector<double> acc = column_sums(dout, N, O);
        for (int64_t o = 0; o < O; ++o) {
            b[o] = static_cast<float>(b[o] - static_cast<double>(lr) * acc[static_cast<size_t>(o)]);
        }
    }
}

}  // namespace fastcnn
