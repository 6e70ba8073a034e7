// optim.cpp -- the in-place optimizer steps of fastcnn.h: SGD (momentum,
// Nesterov), Adagrad, RMSprop, Adam. Every rule first forms
// g = grad + weight_decay * param.
//
// Size letters: n = number of parameters (any shape, seen flat).
//
// Contract: param and the state buffers (velocity, sum_sq, sq_avg, m, v) are
// updated in place, element by element; grad is read only. The buffers do not
// overlap (checked by the caller). Hyper-parameters are checked by the caller
// (lr >= 0, momentum/alpha/betas in [0, 1), eps > 0, step >= 1).
//
// std::sqrt in the Adagrad/RMSprop/Adam loops is a plain sqrt instruction
// (correctly rounded, as the library's): the kernels are built with
// -fno-math-errno (CMakeLists.txt), so no errno branch stops vectorisation.
#include <cmath>

#include "elementwise.h"
#include "threadpool.h"
#include "fastcnn.h"

namespace fastcnn {

using elementwise::kMinParallelHeavy;
using elementwise::kMinParallelLight;

// param (n), grad (n), velocity (n) [null allowed only when momentum == 0].
void sgd_update(float* param, const float* grad, float* velocity, int64_t n,
                float lr, float momentum, float weight_decay, bool nesterov) {
    if (velocity == nullptr) {  // plain SGD: p -= lr * g
        pool::parallel_for(n, n >= kMinParallelLight, [=](int64_t i) {
            const float g = grad[i] + weight_decay * param[i];
            param[i] -= lr * g;
        });
    } else if (nesterov) {  // v = mu v + g; p -= lr (g + mu v)
        pool::parallel_for(n, n >= kMinParallelLight, [=](int64_t i) {
            const float g = grad[i] + weight_decay * param[i];
            const float v = momentum * velocity[i] + g;
            velocity[i] = v;
            param[i] -= lr * (g + momentum * v);
        });
    } else {  // v = mu v + g; p -= lr v
        pool::parallel_for(n, n >= kMinParallelLight, [=](int64_t i) {
            const float g = grad[i] + weight_decay * param[i];
            const float v = momentum * velocity[i] + g;
            velocity[i] = v;
            param[i] -= lr * v;
        });
    }
}

// param (n), grad (n), sum_sq (n): s += g^2; p -= lr g / (sqrt(s) + eps).
void adagrad_update(float* param, const float* grad, float* sum_sq, int64_t n,
                    float lr, float eps, float weight_decay) {
    pool::parallel_for(n, n >= kMinParallelHeavy, [=](int64_t i) {
        const float g = grad[i] + weight_decay * param[i];
        const float s = sum_sq[i] + g * g;
        sum_sq[i] = s;
        param[i] -= lr * g / (std::sqrt(s) + eps);
    });
}

// param (n), grad (n), sq_avg (n): s = alpha s + (1 - alpha) g^2;
// p -= lr g / (sqrt(s) + eps).
void rmsprop_update(float* param, const float* grad, float* sq_avg, int64_t n,
                    float lr, float alpha, float eps, float weight_decay) {
    const float one_minus_alpha = 1.f - alpha;
    pool::parallel_for(n, n >= kMinParallelHeavy, [=](int64_t i) {
        const float g = grad[i] + weight_decay * param[i];
        const float s = alpha * sq_avg[i] + one_minus_alpha * g * g;
        sq_avg[i] = s;
        param[i] -= lr * g / (std::sqrt(s) + eps);
    });
}

// param (n), grad (n), m (n), v (n), step t >= 1:
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
// The bias corrections are computed once, in double.
void adam_update(float* param, const float* grad, float* m, float* v, int64_t n, int64_t step,
                 float lr, float beta1, float beta2, float eps, float weight_decay) {
    const double t = static_cast<double>(step);
    const float step_size = static_cast<float>(lr / (1.0 - std::pow(double(beta1), t)));
    const float inv_correction2 = static_cast<float>(1.0 / (1.0 - std::pow(double(beta2), t)));
    const float one_minus_b1 = 1.f - beta1;
    const float one_minus_b2 = 1.f - beta2;
    pool::parallel_for(n, n >= kMinParallelHeavy, [=](int64_t i) {
        const float g = grad[i] + weight_decay * param[i];
        const float mi = beta1 * m[i] + one_minus_b1 * g;
        const float vi = beta2 * v[i] + one_minus_b2 * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] -= step_size * mi / (std::sqrt(vi * inv_correction2) + eps);
    });
}

}  // namespace fastcnn
