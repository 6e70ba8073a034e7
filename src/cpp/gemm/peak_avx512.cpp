// peak_avx512.cpp -- the machine's fp32 FMA peak on the AVX-512 path, for
// bench/bench_peak.py (not used by any op).
//
// Size letters: none (no buffers; iters = loop count).
//
// fma_loop_avx512(iters) runs iters x 24 zmm FMAs on 24 independent chains
// (enough for 2 FMA pipes x 4 cycles latency, and for Zen 4's 512-bit FMAs
// on its two 256-bit pipes) and returns a value of every chain. Each
// iteration is 24 x 16 x 2 = 768 flops.
//
// Compiled with the AVX-512 flags; everything but the entry point is internal.
#include <immintrin.h>

#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

float fma_loop_avx512(int64_t iters) {
    constexpr int kChains = 24;
    __m512 acc[kChains];
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i));
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
        for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
    alignas(64) float out[16];
    _mm512_store_ps(out, s);
    return out[0] + out[15];
}

}  // namespace gemm
}  // namespace fastcnn
