// costs.cpp -- the three costs of fastcnn.h: softmax log-likelihood,
// quadratic, binary cross-entropy on logits. Each returns the loss averaged
// over the N rows (a double) and OVERWRITES the gradient buffer.
//
// Size letters: N = rows (batch), K = classes, D = values per row, n = N*D.
//
// Contract:
//  * the loss is summed in double, in a fixed order that does not depend on
//    the thread count: per-row (softmax) or per-block (the others) partial
//    sums, added up serially at the end;
//  * the gradient may be the same buffer as the logits / predictions;
//  * labels lie in [0, K) (checked by the caller);
//  * NaN in the inputs comes out as NaN in the loss and in the gradient.
//
// Costs run once per batch on (N, K) outputs, a tiny share of the work, so
// they use std::exp / std::log1p (accurate, not vectorised).
#include <cmath>
#include <vector>

#include "elementwise.h"
#include "threadpool.h"
#include "fastcnn.h"

namespace fastcnn {

using elementwise::kMinParallelHeavy;
using elementwise::kMinParallelLight;

namespace {

// Values per partial sum for the flat costs.
constexpr int64_t kBlock = 4096;

double sum_in_order(const std::vector<double>& partial) {
    double total = 0.0;
    for (double p : partial) total += p;
    return total;
}

}  // namespace

// dlogits (N,K), logits (N,K), labels (N).
// Row r: z = logits[r] - max, p = softmax; loss_r = log(sum exp z) - z[label];
// dlogits[r] = (p - onehot(label)) / N.
double softmax_loglik(float* dlogits, const float* logits, const int64_t* labels,
                      int64_t N, int64_t K) {
    std::vector<double> row_loss(static_cast<size_t>(N));  // (N)
    const float inv_n = static_cast<float>(1.0 / static_cast<double>(N));
    pool::parallel_for(N, N * K >= kMinParallelHeavy, [=, &row_loss](int64_t r) {
        const float* z = logits + r * K;  // (K)
        float* d = dlogits + r * K;       // (K)
        const int64_t label = labels[r];
        const float z_label = z[label];  // read before d (maybe z itself) is written

        float m = z[0];
        for (int64_t j = 1; j < K; ++j) m = z[j] > m ? z[j] : m;
        double sum = 0.0;
        for (int64_t j = 0; j < K; ++j) {
            const float e = std::exp(z[j] - m);
            d[j] = e;
            sum += e;
        }
        row_loss[static_cast<size_t>(r)] =
            std::log(sum) - (static_cast<double>(z_label) - static_cast<double>(m));

        const float inv_sum = static_cast<float>(1.0 / sum);
        for (int64_t j = 0; j < K; ++j) d[j] *= inv_sum;  // softmax
        d[label] -= 1.f;
        for (int64_t j = 0; j < K; ++j) d[j] *= inv_n;
    });
    return sum_in_order(row_loss) / static_cast<double>(N);
}

// da (N,D), a (N,D), y (N,D): loss = sum 0.5 (a - y)^2 / N; da = (a - y) / N.
double quadratic_cost(float* da, const float* a, const float* y, int64_t N, int64_t D) {
    const int64_t n = N * D;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    std::vector<double> partial(static_cast<size_t>(blocks));  // (blocks)
    const float fn = static_cast<float>(N);
    pool::parallel_for(blocks, n >= kMinParallelLight, [=, &partial](int64_t b) {
        const int64_t end = (b + 1) * kBlock < n ? (b + 1) * kBlock : n;
        double s = 0.0;
        for (int64_t i = b * kBlock; i < end; ++i) {
            const float diff = a[i] - y[i];
            da[i] = diff / fn;
            s += static_cast<double>(diff) * diff;
        }
        partial[static_cast<size_t>(b)] = s;
    });
    return 0.5 * sum_in_order(partial) / static_cast<double>(N);
}

// dz (N,D), z (N,D) logits, y (N,D) targets in [0, 1].
// loss = sum [softplus(z) - y z] / N with softplus(z) = max(z, 0) + log1p(e^-|z|);
// dz = (sigmoid(z) - y) / N. Nothing overflows for any z. The linear part is
// summed in double: for large |z| it is a difference of two large terms.
double binary_cross_entropy(float* dz, const float* z, const float* y, int64_t N, int64_t D) {
    const int64_t n = N * D;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    std::vector<double> partial(static_cast<size_t>(blocks));  // (blocks)
    const float fn = static_cast<float>(N);
    pool::parallel_for(blocks, n >= kMinParallelHeavy, [=, &partial](int64_t b) {
        const int64_t end = (b + 1) * kBlock < n ? (b + 1) * kBlock : n;
        double s = 0.0;
        for (int64_t i = b * kBlock; i < end; ++i) {
            const float v = z[i];
            const float t = y[i];
            const float e = std::exp(-std::fabs(v));  // (0, 1]
            const float sig = (v >= 0.f ? 1.f : e) / (1.f + e);
            dz[i] = (sig - t) / fn;
            const double linear = (v > 0.f ? static_cast<double>(v) : 0.0) -
                                  static_cast<double>(t) * static_cast<double>(v);
            s += linear + static_cast<double>(std::log1p(e));
        }
        partial[static_cast<size_t>(b)] = s;
    });
    return sum_in_order(partial) / static_cast<double>(N);
}

}  // namespace fastcnn
