// blocking.h -- the GEMM block sizes, in one table, with the cache arithmetic.
//
// Size letters: M N K = the GEMM sizes (C is M x N, the inner dimension is K).
//   MR x NR   register tile of C held by the micro-kernel
//   MC x KC   block of op(A) packed per thread, meant to stay in L2
//   KC x NC   block of op(B) packed per thread, meant to stay in L3
//
// Target: AMD EPYC Zen3-class, per core L1d 32 KiB, L2 512 KiB; L3 32 MiB
// shared; AVX2 + FMA (8 floats per ymm register, 16 ymm registers).
//
//   MR = 6, NR = 16  The C tile is 6 x 16 floats = 6 rows x 2 ymm = 12 ymm
//                    accumulators; + 2 ymm for a row of the B panel + 1 for a
//                    broadcast element of A = 15 of 16 registers. Per k step:
//                    12 FMAs for 2 vector loads + 6 broadcasts, so the two FMA
//                    pipes, not the load ports, set the pace. The vector width
//                    runs along N, the long side of the conv GEMMs.
//   KC = 256         B micro-panel KC x NR x 4 B = 16 KiB (half of L1d), plus
//                    the A micro-panel in use and the next one, 2 x MR x KC x 4 B
//                    = 12 KiB: 28 KiB <= 32 KiB L1d.
//   MC = 144         A block MC x KC x 4 B = 144 KiB in the 512 KiB L2, leaving
//                    room for the B micro-panels streaming through and for C.
//                    Multiple of MR.
//   NC = 4080        B block KC x NC x 4 B = 4 MiB per thread; two threads use
//                    8 MiB of the 32 MiB L3. Multiple of NR.
//
// None of these depends on the thread count: each thread packs its own
// blocks (see sgemm.cpp).
#pragma once
#include <cstdint>

namespace fastcnn {
namespace gemm {

constexpr int64_t MR = 6;
constexpr int64_t NR = 16;
constexpr int64_t MC = 144;
constexpr int64_t KC = 256;
constexpr int64_t NC = 4080;

// Streaming paths (stream_*.cpp): C columns per block, so a block of C rows
// (M <= kStreamMaxM of them, 2 KiB each) stays in L1 while rows of B stream
// past. A multiple of 32 (the widest vector loop there).
constexpr int64_t kStreamColumns = 512;
constexpr int64_t kStreamMaxM = 16;

static_assert(kStreamColumns % 32 == 0, "kStreamColumns must be a multiple of 32");
static_assert(MC % MR == 0, "MC must be a multiple of MR");
static_assert(NC % NR == 0, "NC must be a multiple of NR");

}  // namespace gemm
}  // namespace fastcnn
