// activations.cpp -- relu, leaky_relu, sigmoid, tanh (forward and backward), softmax and
// log_softmax, as declared in fastcnn.h.
//
// Size letters: n = number of values (any shape, seen flat);
//               N = rows, K = classes per row (softmax, log_softmax).
//
// Contract:
//  * elementwise kernels read x[i] (and dout[i]) and write out[i] only, so out
//    may be the same buffer as an input (in place);
//  * relu(NaN) = NaN; relu_backward passes dout only where x > 0;
//  * leaky_relu(x) = alpha * x where x is not > 0 (NaN stays NaN); its backward
//    passes dout where x > 0, alpha * dout elsewhere;
//  * sigmoid/tanh backward take the forward OUTPUT y;
//  * softmax/log_softmax subtract the row max first (stable for any finite
//    logits); a row holding NaN or +Inf comes out all NaN, as in NumPy;
//  * backward kernels overwrite dx.
//
// sigmoid and tanh use the vectorisable exp_nonpos (elementwise.h); their
// plain twins (std::exp / std::tanh) are kept below as the oracle and fallback.
#include <cmath>

#include "common.h"
#include "elementwise.h"
#include "threadpool.h"
#include "fastcnn.h"

namespace fastcnn {

using elementwise::exp_nonpos;
using elementwise::from_bits;
using elementwise::kMinParallelHeavy;
using elementwise::kMinParallelLight;
using elementwise::mask_if;
using elementwise::to_bits;

// ---------------------------------------------------------------- relu ----

// out (n), x (n)
void relu_forward(float* out, const float* x, int64_t n) {
    pool::parallel_for(n, n >= kMinParallelLight, [=](int64_t i) {
        out[i] = relu_value(x[i]);  // NaN stays NaN (common.h)
    });
}

// dx (n), dout (n), x (n): the forward INPUT.
void relu_backward(float* dx, const float* dout, const float* x, int64_t n) {
    pool::parallel_for(n, n >= kMinParallelLight, [=](int64_t i) {
        const float d = dout[i];  // loaded unconditionally: keeps the loop branch-free
        dx[i] = x[i] > 0.f ? d : 0.f;
    });
}

// ---------------------------------------------------------- leaky relu ----

// out (n), x (n)
void leaky_relu_forward(float* out, const float* x, int64_t n, float alpha) {
    pool::parallel_for(n, n >= kMinParallelLight, [=](int64_t i) {
        const float v = x[i];
        out[i] = v > 0.f ? v : alpha * v;  // alpha * NaN = NaN
    });
}

// dx (n), dout (n), x (n): the forward INPUT.
void leaky_relu_backward(float* dx, const float* dout, const float* x, int64_t n, float alpha) {
    pool::parallel_for(n, n >= kMinParallelLight, [=](int64_t i) {
        const float d = dout[i];
        dx[i] = x[i] > 0.f ? d : alpha * d;
    });
}

// ------------------------------------------------------------- sigmoid ----

// out (n), x (n). With e = e^-|x| in (0, 1]: sigmoid = 1/(1+e) for x >= 0,
// e/(1+e) for x < 0, so nothing overflows for any x.
void sigmoid_forward(float* out, const float* x, int64_t n) {
    pool::parallel_for(n, n >= kMinParallelHeavy, [=](int64_t i) {
        const float v = x[i];
        const float e = exp_nonpos(v);  // e^-|v|; NaN -> NaN
        out[i] = (v >= 0.f ? 1.f : e) / (1.f + e);
    });
}

// Plain twin: same formula with std::exp.
void sigmoid_forward_plain(float* out, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float v = x[i];
        const float e = std::exp(-std::fabs(v));
        out[i] = (v >= 0.f ? 1.f : e) / (1.f + e);
    }
}

// dx (n), dout (n), y (n) = sigmoid(x): dx = dout * y * (1 - y).
void sigmoid_backward(float* dx, const float* dout, const float* y, int64_t n) {
    pool::parallel_for(n, n >= kMinParallelLight, [=](int64_t i) {
        const float s = y[i];
        dx[i] = dout[i] * s * (1.f - s);
    });
}

// ---------------------------------------------------------------- tanh ----

// out (n), x (n). Cephes tanhf, branch-free:
//   |x| <  0.625: x + x^3 P(x^2)            (no cancellation near 0)
//   |x| >= 0.625: (1 - e) / (1 + e), e = e^-2|x| <= 0.29
// then the sign of x is put back. Both are computed and one is picked by mask.
void tanh_forward(float* out, const float* x, int64_t n) {
    const uint32_t kSplitBits = 0x3F200000u;  // 0.625f
    pool::parallel_for(n, n >= kMinParallelHeavy, [=](int64_t i) {
        const uint32_t v_bits = to_bits(x[i]);
        const uint32_t abs_bits = v_bits & 0x7FFFFFFFu;
        const float a = from_bits(abs_bits);

        const float e = exp_nonpos(2.f * a);  // NaN -> NaN, inf -> 0
        const float large = (1.f - e) / (1.f + e);

        // polynomial input clamped to 0.625 so it stays finite for large |x|
        const float s = from_bits(abs_bits < kSplitBits ? abs_bits : kSplitBits);
        const float z = s * s;
        const float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z -
                               5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
                             3.33332819422e-1f) * z * s + s;

        const uint32_t use_small = mask_if(abs_bits < kSplitBits);
        const uint32_t t = (to_bits(small) & use_small) | (to_bits(large) & ~use_small);
        out[i] = from_bits(t | (v_bits & 0x80000000u));  // sign of x
    });
}

// Plain twin.
void tanh_forward_plain(float* out, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(x[i]);
}

// dx (n), dout (n), y (n) = tanh(x): dx = dout * (1 - y^2), computed as
// (1 - y)(1 + y): exact 1 - y for |y| near 1, where 1 - y*y loses digits.
void tanh_backward(float* dx, const float* dout, const float* y, int64_t n) {
    pool::parallel_for(n, n >= kMinParallelLight, [=](int64_t i) {
        const float t = y[i];
        dx[i] = dout[i] * ((1.f - t) * (1.f + t));
    });
}

// ------------------------------------------------------------- softmax ----

namespace {

// Largest value of row (K); a NaN in the row makes exp(row - max) NaN later,
// so the whole row comes out NaN either way.
float row_max(const float* row, int64_t K) {
    float m = row[0];
    for (int64_t j = 1; j < K; ++j) m = row[j] > m ? row[j] : m;
    return m;
}

// out (K) = exp(row - m); returns the sum (in double).
double exp_shifted(float* out, const float* row, float m, int64_t K) {
    double sum = 0.0;
    for (int64_t j = 0; j < K; ++j) {
        const float e = std::exp(row[j] - m);
        out[j] = e;
        sum += e;
    }
    return sum;
}

}  // namespace

// out (N,K), x (N,K): out[r] = exp(x[r] - max) / sum.
void softmax_forward(float* out, const float* x, int64_t N, int64_t K) {
    pool::parallel_for(N, N * K >= kMinParallelHeavy, [=](int64_t r) {
        const float* row = x + r * K;  // (K)
        float* o = out + r * K;        // (K)
        const float m = row_max(row, K);
        const float inv_sum = static_cast<float>(1.0 / exp_shifted(o, row, m, K));
        for (int64_t j = 0; j < K; ++j) o[j] *= inv_sum;
    });
}

// out (N,K), x (N,K): out[r] = (x[r] - max) - log(sum exp(x[r] - max)).
void log_softmax_forward(float* out, const float* x, int64_t N, int64_t K) {
    pool::parallel_for(N, N * K >= kMinParallelHeavy, [=](int64_t r) {
        const float* row = x + r * K;  // (K)
        float* o = out + r * K;        // (K)
        const float m = row_max(row, K);
        double sum = 0.0;
        for (int64_t j = 0; j < K; ++j) sum += std::exp(row[j] - m);
        const float log_sum = static_cast<float>(std::log(sum));
        for (int64_t j = 0; j < K; ++j) o[j] = (row[j] - m) - log_sum;
    });
}

}  // namespace fastcnn
