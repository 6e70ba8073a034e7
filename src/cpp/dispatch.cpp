// dispatch.cpp -- choose the SIMD path once: probe the CPU, honour
// FASTCNN_ISA, and hand out the matching GEMM micro-kernels.
//
// Paths: "avx2" (AVX2 + FMA kernels from the *_avx2.cpp files) where the CPU
// has both and the build compiled them; "generic" (portable C++) everywhere.
// FASTCNN_ISA=generic forces the portable path; FASTCNN_ISA=avx2 asks for
// AVX2 and falls back to generic when the CPU or build lacks it; any other
// value (or none) means the best path available. Nothing here ever crashes on
// a CPU without AVX2: the AVX2 code is only reached through the pointer set
// below, after the probe said yes.
//
// Size letters: none (no buffers here).
//
// State: one atomic int (the path in use), so set_isa may race with a GEMM
// running on another thread; sgemm reads the kernels once per call.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "fastcnn.h"
#include "gemm/gemm_internal.h"

namespace fastcnn {

namespace {

constexpr int kUnset = -1;
constexpr int kGeneric = 0;
constexpr int kAvx2 = 1;

std::atomic<int> g_isa{kUnset};  // the path in use

bool probe_cpu() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    // libgcc/compiler-rt also check that the OS saves the ymm registers.
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

bool avx2_runnable() { return FASTCNN_HAVE_AVX2_BUILD && cpu_has_avx2_fma(); }

int best_isa() { return avx2_runnable() ? kAvx2 : kGeneric; }

int isa_in_use() {
    int isa = g_isa.load(std::memory_order_relaxed);
    if (isa == kUnset) {
        init_dispatch();
        isa = g_isa.load(std::memory_order_relaxed);
    }
    return isa;
}

}  // namespace

bool cpu_has_avx2_fma() {
    static const bool has = probe_cpu();  // probed once, thread-safe init
    return has;
}

void init_dispatch() {
    const char* env = std::getenv("FASTCNN_ISA");
    int isa = best_isa();
    if (env && std::strcmp(env, "generic") == 0) isa = kGeneric;
    // "avx2", "auto", unset or unknown: the best path this CPU and build run.
    g_isa.store(isa, std::memory_order_relaxed);
}

bool set_isa(const char* name) {
    if (name == nullptr) return false;
    if (std::strcmp(name, "generic") == 0) {
        g_isa.store(kGeneric, std::memory_order_relaxed);
        return true;
    }
    if (std::strcmp(name, "avx2") == 0 && avx2_runnable()) {
        g_isa.store(kAvx2, std::memory_order_relaxed);
        return true;
    }
    return false;
}

const char* simd_level() { return isa_in_use() == kAvx2 ? "avx2" : "generic"; }

namespace gemm {

Ukernels active_ukernels() {
#if FASTCNN_HAVE_AVX2_BUILD
    if (isa_in_use() == kAvx2) return {&ukernel_avx2, &ukernel_pack_avx2, &dot_block_avx2,
                                              &stream_nn_avx2, &stream_nt_avx2, &stream_tn_avx2};
#endif
    return {&ukernel_ref, &ukernel_pack_ref, &dot_block_ref,
            &stream_nn_ref, &stream_nt_ref, &stream_tn_ref};
}

}  // namespace gemm

}  // namespace fastcnn
