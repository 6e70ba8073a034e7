// strategy.h -- the strategies sgemm chooses among, one file each, and the
// choice (sgemm.cpp). Internal to the native core.
//
// Size letters: C is M x N, op(A) is M x K, op(B) is K x N. MR NR MC KC NC are
// the block sizes of the SIMD path in use (blocking.h, read from the kernels'
// table once per call); mc kc nc mr nr the actual extents of a block.
//
// Every strategy computes C (M, N; row stride ldc) = alpha * op(A) * op(B) +
// beta * C, the contract of fastcnn::sgemm (fastcnn.h; beta == 0: C is
// write-only), on up to max_threads threads, with a result that does not
// depend on the thread count. choose_path picks, in this order:
//   empty      M or N is 0: nothing to do.
//   scale      K is 0: C = beta * C (sgemm.cpp).
//   stream_nn, stream_nt, stream_tn (stream.cpp): a dense layer at a small
//              mini-batch -- M <= kStreamMaxM (nn; nt when B is transposed and
//              K is long enough) or K <= kStreamMaxK (tn) -- no packing, every
//              row of the big matrix read front to back.
//   dot        (dot.cpp): small C (M*N <= kDotMaxMN), K >= kDotKB, when the
//              dot products cost less than the padded tiles (use_dot_path).
//   whole_a    (whole_a.cpp): op(A) small enough that all of it, packed, is
//              each thread's (whole_a_fits): every conv GEMM.
//   blocked    (blocked.cpp): anything else, the BLIS loops.
// whole_a and blocked share the packing and micro-kernels (pack.cpp,
// ukernel_*.cpp), so every C element gets the same instructions in the same
// order on either.
#pragma once
#include <cstdint>

#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace gemm {

// One call's arguments, as sgemm takes them.
struct Problem {
    bool trans_a, trans_b;
    int64_t M, N, K;
    float alpha;
    const float* A;
    int64_t lda;
    const float* B;
    int64_t ldb;
    float beta;
    float* C;
    int64_t ldc;
};

// -------------------------------------------------------------- choice ----

enum class Path { empty, scale, stream_nn, stream_nt, stream_tn, dot, whole_a, blocked };

// The strategy sgemm and sgemm_serial take for these sizes with block table
// blk (sgemm.cpp). Both entry points choose alike; serial only changes the
// threads (and the dot path's K ranges) the strategy uses.
Path choose_path(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                 const Blocking& blk);
const char* path_name(Path path);  // "empty", "scale", "stream_nn", ..., "blocked"

// Below this many multiply-adds one thread is faster than waking a second.
constexpr int64_t kMinWorkPerThread = int64_t(1) << 16;

// The i-th of `parts` nearly equal slices of ceil(total / tile) tiles of size
// `tile`, as element offsets [begin, end) clipped to `total` (blocked.cpp).
void slice(int64_t total, int64_t tile, int64_t parts, int64_t i, int64_t* begin, int64_t* end);

// K in nearly equal blocks of at most KC (500 -> 250 + 250, not 256 + 244).
int64_t k_step(int64_t K, int64_t KC);

// ------------------------------------------------------------- whole A ----

// Column chunks per thread (more = better balance when a thread is delayed,
// fewer = less scheduling), and the largest packed op(A) the path takes.
constexpr int64_t kChunksPerThread = 4;
constexpr int64_t kWholeAMaxFloats = int64_t(4) << 20;  // 16 MiB per thread

// Whether the whole-A path takes op(A) (M, K): one K block of it packed fits
// the L2 share of an A block (MC x KC) and all of it stays modest.
bool whole_a_fits(int64_t M, int64_t K, const Blocking& blk);

// All of op(A) (rows 0..M, every K block), times alpha, into a_packed: for the
// K block starting at pc, m_pad/MR A panels (kc, MR) at a_packed + pc*m_pad.
void pack_whole_a(const Problem& g, int64_t MR, int64_t m_pad, int64_t kc_step,
                  float* a_packed);

// C[:, n0:n1] from the packed op(A) (as pack_whole_a lays it out); b_panel
// (kc_step, NR) is the calling thread's buffer.
void columns_whole_a(const Problem& g, const Ukernels& kernels, const float* a_packed,
                     int64_t m_pad, int64_t kc_step, int64_t n0, int64_t n1, float* b_panel);

void gemm_whole_a(const Problem& g, const Ukernels& kernels, int64_t kc_step, int max_threads);

// ------------------------------------------------------------- blocked ----

void gemm_blocked(const Problem& g, const Ukernels& kernels, int64_t kc_step, int max_threads);

// ----------------------------------------------------------------- dot ----

// K block (multiple of 8; the rows of op(A) and op(B) in one block,
// (M + N) x kDotKB floats, stay in L1/L2 while every tile re-reads them), and
// the largest C the path takes (the per-thread accumulators are M x N x 8 floats).
constexpr int64_t kDotKB = 256;
constexpr int64_t kDotMaxMN = 4096;
// K ranges of the dot path (at most; one per K block below that): enough for
// 2 threads to share out 4 each. Fixed, not per thread: the order of the sums,
// and so the result, is the same whether 1, 2 or 16 threads run them.
constexpr int64_t kDotChunks = 8;

// Whether the dot path beats the tiled paths for these sizes (sgemm.cpp).
bool use_dot_path(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t NR);

// The dot path: K in kDotChunks ranges (one when serial).
void gemm_dot(const Problem& g, const Ukernels& kernels, bool serial, int max_threads);

// ------------------------------------------------------------ streaming ----

// Fewest columns worth the small-M path, and the largest K of the small-K path.
constexpr int64_t kStreamMinN = 64;
constexpr int64_t kStreamMaxK = 16;
// nt computes each C value as one dot product of length K: below this K the
// horizontal sums cost more than the packed path (a 10-way output layer's dx,
// K = 10, runs several times faster packed).
constexpr int64_t kStreamMinDotK = 32;
constexpr int64_t kStreamChunk = 64;  // columns (rows) per thread task; multiple of 32

// path: stream_nn, stream_nt or stream_tn.
void gemm_stream(const Problem& g, const Ukernels& kernels, Path path, int max_threads);

// sgemm_dx_then_update (fastcnn.h) when both of its GEMMs take the streaming
// paths (stream_nt, then stream_tn).
void dx_then_update(const Ukernels& kernels, int64_t N, int64_t I, int64_t O, const float* dout,
                    const float* x, float alpha, float beta, float* w, float* dx,
                    int max_threads);

}  // namespace gemm
}  // namespace fastcnn
