// dense.cpp -- fully connected layer forward and backward, by GEMM.
//
// Size letters:
//   N  batch   I  input features   O  output features
//
// Contract (see fastcnn.h): buffers are float32, C-contiguous, owned by the
// caller; the caller (bindings.cpp) has checked every size. Outputs are
// OVERWRITTEN.
//   forward:  out (N,O) = x (N,I) . w (I,O) + b (O)          [b may be null]
//   backward: dx (N,I) = dout (N,O) . w^T (O,I)               [may be null: skipped]
//             dw (I,O) = x^T (I,N) . dout (N,O)
//             db (O)   = column sums of dout, in double        [may be null]
#include "fastcnn.h"

#include <algorithm>
#include <vector>

namespace fastcnn {

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
        std::vector<double> acc(static_cast<size_t>(O), 0.0);  // (O)
        for (int64_t n = 0; n < N; ++n) {
            const float* row = dout + n * O;                   // dout[n] (O)
            for (int64_t o = 0; o < O; ++o) acc[static_cast<size_t>(o)] += row[o];
        }
        for (int64_t o = 0; o < O; ++o) db[o] = static_cast<float>(acc[static_cast<size_t>(o)]);
    }
}

}  // namespace fastcnn
