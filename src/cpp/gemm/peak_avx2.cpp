// peak_avx2.cpp -- the machine's fp32 FMA peak on the AVX2 path, for
// bench/bench_peak.py (not used by any op).
//
// Size letters: none (no buffers; iters = loop count).
//
// fma_loop_avx2(iters) runs iters x 12 ymm FMAs on 12 independent chains (12
// chains cover 2 FMA pipes x 4-5 cycles latency) and returns a value of
// every chain, so the compiler keeps them all. Each iteration is
// 12 x 8 x 2 = 192 flops. acc = acc * a + b with a just below 1 stays finite
// and normal for any iteration count.
//
// Compiled with -mavx2 -mfma; everything but the entry point is internal.
#include <immintrin.h>

#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

float fma_loop_avx2(int64_t iters) {
    constexpr int kChains = 12;
    __m256 acc[kChains];
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(float(i));
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    __m256 s = acc[0];
    for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
    alignas(32) float out[8];
    _mm256_store_ps(out, s);
    return out[0] + out[7];
}

}  // namespace gemm
}  // namespace fastcnn
