// elementwise.h -- helpers shared by activations.cpp, costs.cpp, dropout.cpp
// and optim.cpp (internal: not part of the fastcnn API, no Python).
//
// Size letters: n = number of values in a flat buffer.
//
// What is here:
//  * the parallel-loop thresholds: loops over fewer values than these run on
//    one thread, so small arrays do not pay the thread start-up;
//  * exp_nonpos(x): e^x for x <= 0, written so that the compiler vectorises
//    the loops that call it (std::exp is a library call and never vectorises
//    without -ffast-math, which this project does not use).
//
// How to keep a loop vectorisable without -ffast-math (GCC 12 at -O3 with the
// default -ftrapping-math; check with -fopt-info-vec):
//  * no clamp `x = x < lo ? lo : x` in front of arithmetic on x alone: GCC's
//    PRE folds that arithmetic for the constant arm, the loop body becomes a
//    branch, and a branchy body with float operations that "could trap" is
//    not vectorised;
//  * no `cond ? a : b` where a or b is computed only for that select: the
//    computation sinks into a branch, same result;
//  so clamps are integer min() on bit patterns, and selects between computed
//  values are bit masks. Plain selects between already-computed values
//  (relu: `x > 0 ? x : 0`) are fine.
#pragma once

#include <cstdint>
#include <cstring>

namespace fastcnn {
namespace elementwise {

// Below these counts a loop runs on one thread, so small arrays do not pay
// the fork/join (~1 us with warm worker threads). On a 2-core x86-64
// (bench/bench_elementwise.py):
//  * light loops, ~0.2-0.5 ns per value (relu, dropout, SGD, the backward
//    products): 2 threads save ~40% from 32K values on;
//  * heavy loops, 2-6 ns per value (sigmoid, tanh, softmax, costs, Adagrad /
//    RMSprop / Adam with their sqrt): 2 threads save ~45% already at 4K.
constexpr int64_t kMinParallelLight = int64_t(1) << 15;
constexpr int64_t kMinParallelHeavy = int64_t(1) << 12;

inline float from_bits(uint32_t b) {
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
}

inline uint32_t to_bits(float f) {
    uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return b;
}

// All ones when c is true, else 0 (a select without a branch).
inline uint32_t mask_if(bool c) { return 0u - static_cast<uint32_t>(c); }

// e^x for x <= 0 (the sign of x is ignored: e^-|x|). NaN gives NaN; below
// -87.336 (where e^x leaves the normal float range) the result is 0.
// Cephes expf: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial,
// 2^n put straight into the exponent bits. Error <= 1.5 ulp (tested).
inline float exp_nonpos(float x) {
    const uint32_t kInfBits = 0x7F800000u;
    const uint32_t kLimitBits = 0x42AEAC4Fu;  // 87.336544 = -ln(FLT_MIN)
    const uint32_t abs_bits = to_bits(x) & 0x7FFFFFFFu;             // |x|; NaN > inf
    const uint32_t clamped = abs_bits < kLimitBits ? abs_bits : kLimitBits;  // integer min
    const float y = -from_bits(clamped);                             // in [-87.34, 0]

    // n = round(y / ln2) via the 1.5*2^23 trick; its integer value sits in
    // the low mantissa bits of k (no float->int conversion needed).
    const float shifter = 12582912.0f;
    const float k = y * 1.44269504088896341f + shifter;
    const float n = k - shifter;
    const uint32_t n_int = to_bits(k) - to_bits(shifter);  // n mod 2^32, n in [-126, 0]
    float r = y - n * 0.693359375f;  // ln2 split in two for an exact product
    r = r - n * -2.12194440e-4f;

    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;

    uint32_t e = to_bits(p * from_bits((n_int + 127u) << 23));
    e &= mask_if(abs_bits < kLimitBits);                   // underflow and -inf -> 0
    e |= mask_if(abs_bits > kInfBits) & 0x7FC00000u;       // NaN -> NaN
    return from_bits(e);
}

}  // namespace elementwise
}  // namespace fastcnn
