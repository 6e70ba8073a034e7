// common.h -- the small helpers the kernel files share (internal: not part of
// the fastcnn API, no Python). Each rule is written here once.
//
// Size letters: none (scalars only).
//
// Every function has internal linkage (static): the *_avx2.cpp / *_avx512.cpp
// files include this header too, and an inline function with external linkage
// compiled there with ISA flags could be the copy the linker keeps for the
// portable path. For the same reason nothing here may include <cmath> or
// <algorithm>.
#pragma once
#include <cstdint>

namespace fastcnn {

// ceil(a / b) for a >= 0, b >= 1.
static constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static constexpr int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static constexpr int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// Below this many values a loop over planes or blocks runs on one thread: a
// parallel region would cost more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 15;

// relu as relu_forward defines it: v where v > 0, NaN stays NaN, else +0.
static inline float relu_value(float v) { return v > 0.f ? v : (v != v ? v : 0.f); }

// The max-pool rule: the running choice cur gives way to the next element v
// (in row-major window order) when cur is not NaN and v is NaN or strictly
// larger. Applied in order this keeps the first NaN, or else the first maximum.
// (__builtin_isnan is what std::isnan is in GCC and Clang, without <cmath>;
// in this form the compiler vectorises the 2x2 max-pool loops.)
static inline bool takes_over(float v, float cur) {
    return !__builtin_isnan(cur) && (__builtin_isnan(v) || v > cur);
}

// The same test with & and | instead of && and ||: for loops where the
// compiler would otherwise emit branches (mispredicted half the time on
// random data) rather than compares and selects.
static inline bool takes_over_nobranch(float v, float cur) {
    return (cur == cur) & ((v != v) | (v > cur));
}

}  // namespace fastcnn
