// dispatch.cpp -- choose the SIMD path once: probe the CPU, honour
// FASTCNN_ISA, and hand out the matching GEMM micro-kernels.
//
// Paths, best first:
//   "avx512"  AVX-512 F/BW/DQ/VL kernels (*_avx512.cpp), where the CPU has all
//             four, the OS saves the zmm and opmask registers, and the build
//             compiled them;
//   "avx2"    AVX2 + FMA kernels (*_avx2.cpp), same conditions for ymm;
//   "generic" portable C++, everywhere.
// FASTCNN_ISA (read at import): unset, empty or "auto" = the best path this
// CPU and build run; "generic" / "avx2" / "avx512" = exactly that path, and an
// error (ImportError at import, naming the missing CPU feature or that the
// build lacks the path) when it cannot run here; any other value is an error
// too, so a typo never silently benchmarks the wrong path. set_isa (Python:
// fastcnn.set_isa) has the same names and errors.
//
// No SIMD code runs on a CPU without it: the avx2/avx512 kernels are reached
// only through the pointers returned below, after the probe said yes.
//
// Size letters: none (no buffers here).
//
// State: one atomic int (the path in use), so set_isa may race with a GEMM
// running on another thread; sgemm reads the kernels once per call.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define FASTCNN_X86_PROBE 1
#include <cpuid.h>
#else
#define FASTCNN_X86_PROBE 0
#endif

#include "fastcnn.h"
#include "gemm/gemm_internal.h"
#include "threadpool.h"

namespace fastcnn {

namespace {

constexpr int kUnset = -1;
constexpr int kGeneric = 0;
constexpr int kAvx2 = 1;
constexpr int kAvx512 = 2;
constexpr const char* kNames[] = {"generic", "avx2", "avx512"};

std::atomic<int> g_isa{kUnset};  // the path in use

// What the CPU and OS offer, probed once.
struct CpuFeatures {
    bool avx2 = false, fma = false;                          // CPUID
    bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
    bool os_ymm = false;   // XCR0: the OS saves SSE + ymm state
    bool os_zmm = false;   // XCR0: ... and opmask + both zmm halves
};

#if FASTCNN_X86_PROBE
// XCR0 by XGETBV (encoded as bytes: _xgetbv needs -mxsave on this file).
uint64_t read_xcr0() {
    uint32_t lo = 0, hi = 0;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t(hi) << 32) | lo;
}
#endif

CpuFeatures probe_cpu() {
    CpuFeatures f;
#if FASTCNN_X86_PROBE
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = c & bit_OSXSAVE;
    f.fma = c & bit_FMA;
    if (osxsave) {
        const uint64_t xcr0 = read_xcr0();
        f.os_ymm = (xcr0 & 0x6) == 0x6;     // SSE (bit 1) + AVX (bit 2)
        f.os_zmm = (xcr0 & 0xe6) == 0xe6;   // + opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7)
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.avx2 = b & bit_AVX2;
        f.avx512f = b & bit_AVX512F;
        f.avx512dq = b & bit_AVX512DQ;
        f.avx512bw = b & bit_AVX512BW;
        f.avx512vl = b & bit_AVX512VL;
    }
    // Our own XCR0 test above is what counts. (GCC 12's libgcc, behind
    // __builtin_cpu_supports("avx512f"), also reads XCR0 and reports AVX-512
    // only with opmask + zmm state enabled, and AVX2 only with ymm state; we
    // do not rely on that so the probe means the same with any compiler.)
#endif
    return f;
}

const CpuFeatures& cpu() {
    static const CpuFeatures f = probe_cpu();  // probed once, thread-safe init
    return f;
}

bool compiled(int isa) {
    if (isa == kAvx2) return FASTCNN_HAVE_AVX2_BUILD;
    if (isa == kAvx512) return FASTCNN_HAVE_AVX512_BUILD;
    return true;
}

// Why `isa` cannot run here ("" when it can).
std::string unavailable_reason(int isa) {
    const CpuFeatures& f = cpu();
    std::string missing;
    auto need = [&](bool have, const char* name) {
        if (!have) missing += missing.empty() ? name : std::string(", ") + name;
    };
    if (isa == kAvx2) {
        need(f.avx2, "AVX2");
        need(f.fma, "FMA");
        need(f.os_ymm, "OS support for ymm state (XCR0)");
    } else if (isa == kAvx512) {
        need(f.avx512f, "AVX-512F");
        need(f.avx512bw, "AVX-512BW");
        need(f.avx512dq, "AVX-512DQ");
        need(f.avx512vl, "AVX-512VL");
        need(f.os_zmm, "OS support for zmm/opmask state (XCR0)");
        need(f.avx2 && f.fma, "AVX2 + FMA");  // the path also runs AVX2 kernels
    }
    if (!missing.empty()) {
        return std::string("the '") + kNames[isa] + "' path needs a CPU feature this CPU lacks: " +
               missing;
    }
    if (!compiled(isa)) {
        return std::string("this build of fastcnn has no '") + kNames[isa] +
               "' kernels (compiled for a non-x86-64 target or without them)";
    }
    return "";
}

bool runnable(int isa) { return unavailable_reason(isa).empty(); }

int best_isa() {
    if (runnable(kAvx512)) return kAvx512;
    if (runnable(kAvx2)) return kAvx2;
    return kGeneric;
}

// The path named `name` (kUnset when the name is unknown).
int isa_by_name(const char* name) {
    for (int i = kGeneric; i <= kAvx512; ++i)
        if (std::strcmp(name, kNames[i]) == 0) return i;
    return kUnset;
}

int isa_in_use() {
    int isa = g_isa.load(std::memory_order_relaxed);
    if (isa == kUnset) {
        // Only reached if a kernel runs before init_dispatch (not via Python):
        // take the best path; FASTCNN_ISA errors are reported by init_dispatch.
        isa = best_isa();
        g_isa.store(isa, std::memory_order_relaxed);
    }
    return isa;
}

}  // namespace

std::string init_dispatch() {
    const char* env = std::getenv("FASTCNN_ISA");
    if (env == nullptr || env[0] == '\0' || std::strcmp(env, "auto") == 0) {
        g_isa.store(best_isa(), std::memory_order_relaxed);
        return "";
    }
    std::string err = set_isa(env);
    if (!err.empty()) {
        g_isa.store(best_isa(), std::memory_order_relaxed);
        return "FASTCNN_ISA=" + std::string(env) + ": " + err;
    }
    return "";
}

std::string set_isa(const char* name) {
    const int isa = name ? isa_by_name(name) : kUnset;
    if (isa == kUnset) {
        return std::string("unknown SIMD path '") + (name ? name : "") +
               "' (use generic, avx2 or avx512; FASTCNN_ISA also takes auto)";
    }
    std::string why = unavailable_reason(isa);
    if (why.empty()) g_isa.store(isa, std::memory_order_relaxed);
    return why;
}

const char* simd_level() { return kNames[isa_in_use()]; }

std::vector<std::string> supported_isas() {
    std::vector<std::string> out;
    for (int i = kGeneric; i <= kAvx512; ++i)
        if (runnable(i)) out.emplace_back(kNames[i]);
    return out;
}

std::vector<std::string> compiled_isas() {
    std::vector<std::string> out;
    for (int i = kGeneric; i <= kAvx512; ++i)
        if (compiled(i)) out.emplace_back(kNames[i]);
    return out;
}

bool cpu_has_avx2_fma() { return cpu().avx2 && cpu().fma && cpu().os_ymm; }

bool cpu_has_avx512() {
    const CpuFeatures& f = cpu();
    return f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.os_zmm;
}

int64_t peak_fma(const char* name, int64_t iters, int threads, float* sink) {
    const int isa = name ? isa_by_name(name) : kUnset;
    if (isa == kUnset || !runnable(isa) || iters <= 0 || threads < 1) return 0;
    float (*loop)(int64_t) = &gemm::fma_loop_ref;
    int64_t flops = gemm::kPeakFlopsRef;
#if FASTCNN_HAVE_AVX2_BUILD
    if (isa == kAvx2) {
        loop = &gemm::fma_loop_avx2;
        flops = gemm::kPeakFlopsAvx2;
    }
#endif
#if FASTCNN_HAVE_AVX512_BUILD
    if (isa == kAvx512) {
        loop = &gemm::fma_loop_avx512;
        flops = gemm::kPeakFlopsAvx512;
    }
#endif
    if (threads > 255) threads = 255;
    std::vector<float> part_sums(static_cast<size_t>(threads));
    auto part = [&](int t) { part_sums[static_cast<size_t>(t)] = loop(iters); };
    pool::run(threads, pool::PartFn(part));
    float total = 0.0f;
    for (float v : part_sums) total += v;
    *sink = total;
    return flops * iters * threads;
}

bool gemm_blocking(const char* name, int64_t out[5]) {
    const int isa = name ? isa_by_name(name) : kUnset;
    if (isa == kUnset || !compiled(isa)) return false;
    const gemm::Blocking b = gemm::ukernels_for(isa).blk;
    const int64_t values[5] = {b.mr, b.nr, b.mc, b.kc, b.nc};
    for (int i = 0; i < 5; ++i) out[i] = values[i];
    return true;
}

namespace gemm {

Ukernels ukernels_for(int isa) {
#if FASTCNN_HAVE_AVX512_BUILD
    if (isa == kAvx512) {
        // The dot kernel is the AVX2 one (see ukernel_avx512.cpp); every
        // AVX-512 CPU has AVX2 + FMA, and the avx512 build implies the avx2 one.
        return {&ukernel_avx512,   &ukernel_pack_avx512, &ukernel_rows_avx512,
                &dot_block_avx2,   &stream_nn_avx512,    &stream_nt_avx512,
                &stream_tn_avx512, kBlockingAvx512};
    }
#endif
#if FASTCNN_HAVE_AVX2_BUILD
    if (isa == kAvx2) {
        return {&ukernel_avx2,   &ukernel_pack_avx2, &ukernel_rows_avx2, &dot_block_avx2,
                &stream_nn_avx2, &stream_nt_avx2,    &stream_tn_avx2,    kBlockingAvx2};
    }
#endif
    (void)isa;
    return {&ukernel_ref,   &ukernel_pack_ref, &ukernel_rows_ref, &dot_block_ref,
            &stream_nn_ref, &stream_nt_ref,    &stream_tn_ref,    kBlockingRef};
}

Ukernels active_ukernels() { return ukernels_for(isa_in_use()); }

int active_isa_id() { return isa_in_use(); }

}  // namespace gemm

}  // namespace fastcnn
