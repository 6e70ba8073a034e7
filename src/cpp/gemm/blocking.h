// blocking.h -- the GEMM block sizes, one table per SIMD path, with the
// cache arithmetic.
//
// Size letters: M N K = the GEMM sizes (C is M x N, the inner dimension is K).
//   MR x NR   register tile of C held by the micro-kernel
//   MC x KC   block of op(A) packed per thread, meant to stay in L2
//   KC x NC   block of op(B) packed per thread, meant to stay in L3
// The packed panel layouts depend on MR and NR (gemm_internal.h), so a path's
// kernels only ever see panels packed with its own table.
//
// Caches assumed: L1d 32 KiB per core (Zen 3, Zen 4, Skylake-SP and later);
// L2 512 KiB (Zen 3) / 1 MiB (Zen 4, Skylake-SP) or more; L3 several MiB per core.
//
// AVX2 + FMA (kBlockingAvx2; also the portable path, whose kernel is written
// for the same 6 x 16 tile): 8 floats per ymm register, 16 ymm registers.
//   MR = 6, NR = 16  The C tile is 6 x 16 floats = 6 rows x 2 ymm = 12 ymm
//                    accumulators; + 2 ymm for a row of the B panel + 1 for a
//                    broadcast element of A = 15 of 16 registers. Per k step:
//                    12 FMAs for 2 vector loads + 6 broadcasts, so the two FMA
//                    pipes, not the load ports, set the pace. The vector width
//                    runs along N, the long side of the conv GEMMs.
//   KC = 256         B micro-panel KC x NR x 4 B = 16 KiB (half of L1d), plus
//                    the A micro-panel in use and the next one, 2 x MR x KC x 4 B
//                    = 12 KiB: 28 KiB <= 32 KiB L1d.
//   MC = 144         A block MC x KC x 4 B = 144 KiB in a 512 KiB L2, leaving
//                    room for the B micro-panels streaming through and for C.
//   NC = 4080        B block KC x NC x 4 B = 4 MiB per thread; two threads use
//                    8 MiB of a 32 MiB L3.
//
// AVX-512 F/BW/DQ/VL (kBlockingAvx512): 16 floats per zmm, 32 zmm registers.
//   MR = 12, NR = 32 The C tile is 12 rows x 2 zmm = 24 accumulators; + 2 zmm
//                    for a row of the B panel; the A element is a broadcast
//                    memory operand of the FMA: 26 of 32 registers. Per k step
//                    24 FMAs for 2 vector loads + 12 broadcasts; 24 independent
//                    chains cover 2 FMA pipes x 4 cycles latency (Intel) and
//                    Zen 4's one 512-bit FMA per cycle with room to spare.
//                    M = 20, 40, 500 of the nets' conv layers fill 12 + 8 rows
//                    (edge tiles cost only their rows); N = 576 and 64 (conv
//                    outputs 24x24, 8x8) are whole multiples of 32.
//                    (On Zen 4 AVX-512 has the same FMA peak as AVX2 -- bench_peak.py
//                    -- so the gain here is fewer instructions and loads per FMA.)
//   KC = 512         Longer than L1 holds: the B micro-panel KC x NR x 4 B = 64 KiB
//                    streams from L2 with the A micro-panel (24 KiB). That is cheap
//                    here: per k step 24 FMAs (24 cycles on Zen 4, whose 512-bit FMA
//                    takes both 256-bit pipes; 12 on two 512-bit Intel ports) read
//                    128 B of B + 48 B of A, 7-15 B/cycle against L2's 32-64. A long
//                    KC halves the passes over the C tile (load + store per KC) of
//                    KC = 256; on Zen 4 each step of KC from 128 to 512 is faster
//                    (1024^3 and the nets' shapes).
//   MC = 240         A block MC x KC x 4 B = 480 KiB: half of a 1 MiB L2, with the
//                    B micro-panel (64 KiB) and C tiles beside it.
//   NC = 4096        B block KC x NC x 4 B = 8 MiB per thread in L3 (two threads:
//                    16 of Zen 4's 32 MiB).
//
// None of these depends on the thread count: each thread packs its own
// blocks (see whole_a.cpp and blocked.cpp).
#pragma once
#include <cstdint>

namespace fastcnn {
namespace gemm {

// One path's block sizes (see above).
struct Blocking {
    int64_t mr, nr, mc, kc, nc;
};

constexpr Blocking kBlockingAvx2{6, 16, 144, 256, 4080};
constexpr Blocking kBlockingRef = kBlockingAvx2;
constexpr Blocking kBlockingAvx512{12, 32, 240, 512, 4096};

// Bounds over every table (stack buffers, static checks).
constexpr int64_t kMaxNR = 32;
constexpr int64_t kMaxKC = 512;

// Streaming paths (stream_*.cpp): C columns per block, so a block of C rows
// (M <= kStreamMaxM of them, 2 KiB each) stays in L1 while rows of B stream
// past. A multiple of 32 (the widest vector loop there).
constexpr int64_t kStreamColumns = 512;
constexpr int64_t kStreamMaxM = 16;

static_assert(kStreamColumns % 32 == 0, "kStreamColumns must be a multiple of 32");
constexpr bool well_formed(const Blocking& b) {
    return b.mc % b.mr == 0 && b.nc % b.nr == 0 && b.nr <= kMaxNR && b.kc <= kMaxKC;
}
static_assert(well_formed(kBlockingAvx2), "AVX2 table: MC % MR, NC % NR, bounds");
static_assert(well_formed(kBlockingRef), "portable table: MC % MR, NC % NR, bounds");
static_assert(well_formed(kBlockingAvx512), "AVX-512 table: MC % MR, NC % NR, bounds");

}  // namespace gemm
}  // namespace fastcnn
